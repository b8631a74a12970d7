/**
 * Conformance handler of the `videomae_pretrain` case (official OpenGVLab/VideoMAEv2 pre-training):
 * the config, masks, weights and every reference come from the manifest and the sub-case's files. The
 * official `[B, 3, T, H, W]` images are transposed once to our `[B, T, H, W, 3]`; gradients are
 * compared in PyTorch's layout.
 */
import * as tf from '@tensorflow/tfjs';
import { toTorchLayout, type ConformanceContext, type ConformanceHandler } from '@vrepa/core';
import { maskedPerFrame, type PretrainMasks } from './masking.js';
import { pretrainLabels, pretrainLossAndGrads, pretrainTargets, type TargetOptions } from './pretrain-loss.js';
import { pretrainPatchDim, VideoMAEPretrain, type VideoMAEPretrainConfig } from './videomae-pretrain.js';

function need(p: Record<string, any>, key: string, what = key): any {
  if (p[key] === undefined) throw new Error(`videomae_pretrain conformance: params lack ${what}`);
  return p[key];
}

/** A pre-training config from a manifest's params (official argument names). */
export function pretrainConfigFromParams(p: Record<string, any>): VideoMAEPretrainConfig {
  const enc = need(p, 'encoder', 'encoder {embed_dim, depth, num_heads}');
  const dec = need(p, 'decoder', 'decoder {embed_dim, depth, num_heads}');
  const img = need(p, 'img_size');
  if (p.cos_attn) throw new Error('videomae_pretrain conformance: cos_attn (VideoMAEv2 CosAttention) is not supported');
  return {
    name: 'videomae-pretrain-fixture',
    imgSize: Array.isArray(img) ? [Number(img[0]), Number(img[1])] : Number(img),
    numFrames: Number(p.frames ?? p.num_frames ?? need(p, 'all_frames', 'frames')),
    patchSize: Number(need(p, 'patch_size')),
    tubeletSize: Number(need(p, 'tubelet_size')),
    inChans: Number(p.in_chans ?? 3),
    encoderEmbedDim: Number(enc.embed_dim),
    encoderDepth: Number(enc.depth),
    encoderNumHeads: Number(enc.num_heads),
    decoderEmbedDim: Number(dec.embed_dim),
    decoderDepth: Number(dec.depth),
    decoderNumHeads: Number(dec.num_heads),
    mlpRatio: Number(p.mlp_ratio ?? 4),
    qkvBias: Boolean(p.qkv_bias ?? false),
    initValues: Number(p.init_values ?? 0),
    layerNormEps: Number(p.norm_eps ?? p.layer_norm_eps ?? 1e-6),
  };
}

/** The tolerance sentence for a reference tensor: its exact key, else a `prefix.*` pattern that matches it. */
function toleranceFor(ctx: ConformanceContext, name: string): string {
  const tols: Record<string, string> = ctx.subcase.tolerances ?? {};
  if (tols[name]) return tols[name]!;
  const pat = Object.keys(tols).find((k) => k.endsWith('*') && name.startsWith(k.slice(0, -1)));
  if (!pat) throw new Error(`videomae_pretrain conformance: no tolerance for '${name}' in ${JSON.stringify(Object.keys(tols))}`);
  return tols[pat]!;
}

const u8 = (t: tf.Tensor) => Uint8Array.from(t.dataSync() as ArrayLike<number>, (v) => (v ? 1 : 0));

export const pretrainHandler: ConformanceHandler = (ctx) => {
  if (!ctx.weights) throw new Error(`${ctx.caseName}: the sub-case names no weights file`);
  const p = ctx.params;
  const config = pretrainConfigFromParams(p);
  const model = new VideoMAEPretrain(config, { init: 'zeros' });
  try {
    const classes = p.decoder?.num_classes;
    if (classes !== undefined && Number(classes) !== pretrainPatchDim(config))
      throw new Error(`${ctx.caseName}: decoder num_classes ${classes} is not tubelet·patch²·channels = ${pretrainPatchDim(config)}`);
    model.loadStateDict(ctx.weights, { strict: true, source: `${ctx.caseName}/${ctx.subcase.name}` });
    const tensors: Record<string, unknown> = ctx.subcase.tensors ?? {};
    const images = ctx.ref('images');
    if (images.rank !== 5) throw new Error(`${ctx.caseName}: images must be [B, C, T, H, W], got [${images.shape.join(', ')}]`);
    const clip = tf.transpose(images, [0, 2, 3, 4, 1]);
    const enc = ctx.ref('bool_masked_pos');
    const [b, n] = enc.shape as [number, number];
    const masks: PretrainMasks = { batch: b, tokens: n, encoderMask: u8(enc), decoderMask: u8(ctx.ref('decode_masked_pos')) };
    const topts: TargetOptions = { normalizeTarget: Boolean(p.normlize_target ?? true), mean: p.imagenet_mean, std: p.imagenet_std };

    // the tube mask's count per frame slot, as our generator computes it from the ratio
    if (p.masked_per_frame !== undefined && p.mask_ratio !== undefined)
      ctx.compare('masked_per_frame', maskedPerFrame(model.grid, Number(p.mask_ratio)), 'exact', Number(p.masked_per_frame));

    const targets = pretrainTargets(clip, config.tubeletSize, config.patchSize, topts);
    const { labels, weights } = pretrainLabels(targets, masks);
    if ('labels' in tensors) ctx.compare('labels', labels, toleranceFor(ctx, 'labels'));
    tf.dispose([targets, labels, weights]);

    const fwd = model.forward(clip, masks);
    if ('encoder_features' in tensors) ctx.compare('encoder_features', fwd.encoded, toleranceFor(ctx, 'encoder_features'));
    if ('outputs' in tensors) ctx.compare('outputs', fwd.outputs, toleranceFor(ctx, 'outputs'));
    tf.dispose([fwd.encoded, fwd.outputs]);

    const { loss, grads } = pretrainLossAndGrads(model, clip, masks, topts);
    try {
      if ('loss' in tensors) ctx.compare('loss', tf.reshape(loss, [1]), toleranceFor(ctx, 'loss'));
      const layouts = new Map(model.namedParameters().map(([name, prm]) => [name, prm.layout]));
      for (const name of Object.keys(tensors).filter((k) => k.startsWith('grad.'))) {
        const pname = name.slice('grad.'.length);
        const g = grads.get(pname);
        if (!g) throw new Error(`${ctx.caseName}: no gradient for parameter '${pname}' (not a trainable parameter of the model)`);
        ctx.compare(name, toTorchLayout(g, layouts.get(pname)!), toleranceFor(ctx, name));
      }
    } finally {
      tf.dispose([loss, ...grads.values()]);
    }
  } finally {
    model.dispose();
  }
};

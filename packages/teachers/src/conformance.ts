/**
 * Conformance handlers of the teacher cases (`teacher_videomaev2`, `teacher_videomae`, `teacher_vjepa`) and
 * of VideoMAE pre-training (`videomae_pretrain`, in pretrain-conformance.ts).
 * Everything (architecture, grid, which tensors) comes from the manifest's params and the files; the
 * input video is the official `[B, C, T, H, W]`, transposed once to our `[B, T, H, W, C]`.
 */
import * as tf from '@tensorflow/tfjs';
import type { ConformanceContext, ConformanceHandler, SafetensorsFile } from '@vrepa/core';
import { VideoMAE } from './videomae.js';
import { VideoMAEv2 } from './videomaev2.js';
import { VJEPA } from './vjepa.js';
import { pretrainHandler } from './pretrain-conformance.js';
import { loadTeacherWeights, type TeacherConfig, type TeacherFamily, type VideoTeacher, type WeightSource } from './teacher.js';

function num(p: Record<string, any>, keys: string[], what: string, dflt?: number): number {
  for (const k of keys) if (p[k] !== undefined) return Number(p[k]);
  if (dflt !== undefined) return dflt;
  throw new Error(`teacher conformance: params lack ${what} (${keys.join(' / ')})`);
}

/** A teacher config from a manifest's params (official argument names). */
export function configFromParams(family: TeacherFamily, p: Record<string, any>, weightNames: Set<string>, shapeOf?: (name: string) => number[]): TeacherConfig {
  if (p.cos_attn) throw new Error(`teacher conformance: cos_attn (VideoMAEv2 CosAttention) is not supported`);
  const initValues = Number(p.init_values ?? 0);
  const qkv = p.qkv_bias === false ? 'none' : family === 'vjepa' ? 'qkv' : 'qv';
  return {
    family,
    name: `${family}-fixture`,
    official: 'fixture params',
    embedDim: num(p, ['embed', 'embed_dim'], 'the embedding dim'),
    depth: num(p, ['depth'], 'the depth'),
    numHeads: num(p, ['heads', 'num_heads'], 'the head count'),
    mlpRatio: num(p, ['mlp_ratio'], 'the MLP ratio', 4),
    patchSize: num(p, ['patch', 'patch_size'], 'the patch size'),
    tubeletSize: num(p, ['tubelet', 'tubelet_size'], 'the tubelet size'),
    inChans: num(p, ['in_chans'], 'input channels', 3),
    qkvBias: qkv,
    layerNormEps: num(p, ['layer_norm_eps'], 'LayerNorm eps', 1e-6),
    qkScale: p.qk_scale ? Number(p.qk_scale) : undefined,
    layerScale: family !== 'vjepa' && initValues > 0 ? initValues : undefined,
    imgSize: num(p, ['img_size'], 'the pre-training image size'),
    numFrames: num(p, ['all_frames', 'num_frames'], 'the pre-training frame count'),
    uniformPower: family === 'vjepa' ? Boolean(p.uniform_power ?? false) : undefined,
    fcNorm: family === 'videomae' && weightNames.has('fc_norm.weight'),
    numClasses: family === 'videomae' && weightNames.has('head.weight') ? (shapeOf ? shapeOf('head.weight')[0] : Number(p.num_classes)) : undefined,
    finalNorm: family === 'vjepa' && weightNames.has('norm.weight'),
  };
}

export function weightSourceFromSafetensors(f: SafetensorsFile): WeightSource {
  return { names: () => f.keys(), shape: (n) => [...f.info(n).shape], read: (n) => f.read(n) };
}

/** The manifest tolerance sentence for a tensor name (exact key, else the key naming its kind). */
function toleranceFor(ctx: ConformanceContext, name: string): string {
  const tols: Record<string, string> = ctx.subcase.tolerances ?? {};
  if (tols[name]) return tols[name]!;
  const kind = name.startsWith('pos_embed') ? 'position' : name.startsWith('patch_embed') ? 'patch_embed' : /^block\d+/.test(name) ? 'block' : name;
  const key = Object.keys(tols).find((k) => k.toLowerCase().includes(kind));
  if (!key) throw new Error(`teacher conformance: no tolerance for tensor '${name}' in ${JSON.stringify(Object.keys(tols))}`);
  return tols[key]!;
}

function build(family: TeacherFamily, cfg: TeacherConfig): VideoTeacher {
  const opts = { init: 'zeros' as const };
  if (family === 'videomaev2') return new VideoMAEv2(cfg, opts);
  if (family === 'videomae') return new VideoMAE(cfg, opts);
  return new VJEPA(cfg, opts);
}

/** The handler of one teacher family. */
export function teacherHandler(family: TeacherFamily): ConformanceHandler {
  return (ctx) => {
    if (!ctx.weights) throw new Error(`${ctx.caseName}: the sub-case names no weights file`);
    const src = weightSourceFromSafetensors(ctx.weights);
    const model = build(family, configFromParams(family, ctx.params, new Set(src.names()), src.shape));
    try {
      loadTeacherWeights(model, src, `${ctx.caseName}/${ctx.subcase.name}`);
      const tensors: Record<string, unknown> = ctx.subcase.tensors ?? {};
      const input = ctx.ref('input');
      if (input.rank !== 5) throw new Error(`${ctx.caseName}: input must be [B, C, T, H, W], got [${input.shape.join(', ')}]`);
      const clip = tf.transpose(input, [0, 2, 3, 4, 1]);
      const trace = model.encodeTrace(clip);
      const n = trace.grid.frames * trace.grid.height * trace.grid.width;
      const base = model.baseTable();
      try {
        const cmp = (name: string, got: tf.Tensor) => {
          if (name in tensors) ctx.compare(name, got, toleranceFor(ctx, name));
        };
        cmp('features', trace.tokens);
        cmp('patch_embed_out', trace.patchEmbed);
        trace.blocks.forEach((b, i) => cmp(`block${i}_out`, b));
        cmp('pos_embed_table', tf.reshape(base, [1, ...base.shape]));
        cmp('pos_embed_interpolated', tf.reshape(trace.posEmbed, [1, n, model.config.embedDim]));
      } finally {
        tf.dispose([clip, trace.tokens, trace.patchEmbed, trace.posEmbed, ...trace.blocks, base]);
      }
    } finally {
      model.dispose();
    }
  };
}

export const conformanceHandlers: Record<string, ConformanceHandler> = {
  teacher_videomaev2: teacherHandler('videomaev2'),
  teacher_videomae: teacherHandler('videomae'),
  teacher_vjepa: teacherHandler('vjepa'),
  videomae_pretrain: pretrainHandler,
};

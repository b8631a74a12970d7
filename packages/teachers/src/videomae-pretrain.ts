/**
 * VideoMAE / VideoMAEv2 masked video pre-training model (official `PretrainVisionTransformer` of
 * OpenGVLab/VideoMAEv2 `models/modeling_pretrain.py`), parameters under the official state-dict names:
 *
 *   mask_token                       [1, 1, Dd]
 *   encoder.patch_embed.proj.*       Conv3d (tubelet, patch, patch) → De
 *   encoder.blocks.{i}.*             the teachers' ViT block (q_bias/v_bias, optional gamma_1/gamma_2)
 *   encoder.norm.*                   LayerNorm after the last block (pre-training only)
 *   decoder.blocks.{i}.*, decoder.norm.*, decoder.head.*   head: Dd → tubelet·patch²·3 pixels
 *   encoder_to_decoder.weight        Linear De → Dd without bias
 *
 * The encoder adds its fixed sinusoid table (`get_sinusoid_encoding_table(N, De)`, not interpolated: the
 * clip must have the configured size), then keeps only the VISIBLE tokens (what makes MAE cheap). The
 * decoder input is `[visible tokens → encoder_to_decoder, + their decoder positions ; mask_token + the
 * positions of every predicted token]`, both parts in token order; the decoder returns its norm + head
 * on the predicted (last) part only. The two sinusoid tables are fixed tensors, not in the state dict.
 *
 * Clips are ours: `[batch, frames, height, width, 3]`, ImageNet-normalised (the official input
 * `[B, 3, T, H, W]` transposed).
 */
import * as tf from '@tensorflow/tfjs';
import { LayerNorm, Linear, Module, ModuleList, Rng, sinusoidTable, type Parameter } from '@vrepa/core';
import { checkMasks, maskIndices, type PretrainMasks } from './masking.js';
import { PatchEmbed3d, VitBlock, makeBlocks, type TeacherGrid, type VitArch } from './vit.js';

/** A pre-training model's architecture (official `PretrainVisionTransformer` arguments). */
export interface VideoMAEPretrainConfig {
  /** a name for logs and checkpoints, e.g. 'videomae-pretrain-s' */
  name: string;
  /** clip frame size: a number (square) or [height, width] (official `img_size`) */
  imgSize: number | readonly [number, number];
  /** clip length in frames (official `num_frames` / `all_frames`) */
  numFrames: number;
  patchSize: number;
  tubeletSize: number;
  inChans: number;
  encoderEmbedDim: number;
  encoderDepth: number;
  encoderNumHeads: number;
  decoderEmbedDim: number;
  decoderDepth: number;
  decoderNumHeads: number;
  mlpRatio: number;
  /** official `qkv_bias`: separate q_bias / v_bias (k bias zero) in every block; false = no qkv bias */
  qkvBias: boolean;
  /** official `init_values`: > 0 adds layer scale gamma_1 / gamma_2 initialised to it; 0 = none */
  initValues: number;
  layerNormEps: number;
  /** official `qk_scale`: attention score scale; default head_dim^-0.5 */
  qkScale?: number;
  /** attention score budget (elements of one `[B, heads, chunk, N]` block) */
  maxScoreElements?: number;
}

const base = { numFrames: 16, imgSize: 224, patchSize: 16, tubeletSize: 2, inChans: 3, mlpRatio: 4, qkvBias: true, initValues: 0, layerNormEps: 1e-6, decoderDepth: 4 } as const;

/**
 * Registered pre-training configs. `-s`/`-b`/`-l`/`-h`/`-g` mirror the official factories
 * `pretrain_videomae_{small,base,large,huge,giant}_patch16_224` with the official decoder depth 4
 * (`run_mae_pretraining.py --decoder_depth`); `-tiny` is a small CPU model on 16×112×112 clips.
 */
export const PRETRAIN_CONFIGS: Readonly<Record<string, VideoMAEPretrainConfig>> = Object.freeze({
  'videomae-pretrain-tiny': Object.freeze({ ...base, name: 'videomae-pretrain-tiny', imgSize: 112, encoderEmbedDim: 192, encoderDepth: 4, encoderNumHeads: 3, decoderEmbedDim: 96, decoderDepth: 2, decoderNumHeads: 3 }),
  'videomae-pretrain-s': Object.freeze({ ...base, name: 'videomae-pretrain-s', encoderEmbedDim: 384, encoderDepth: 12, encoderNumHeads: 6, decoderEmbedDim: 192, decoderNumHeads: 3 }),
  'videomae-pretrain-b': Object.freeze({ ...base, name: 'videomae-pretrain-b', encoderEmbedDim: 768, encoderDepth: 12, encoderNumHeads: 12, decoderEmbedDim: 384, decoderNumHeads: 6 }),
  'videomae-pretrain-l': Object.freeze({ ...base, name: 'videomae-pretrain-l', encoderEmbedDim: 1024, encoderDepth: 24, encoderNumHeads: 16, decoderEmbedDim: 512, decoderNumHeads: 8 }),
  'videomae-pretrain-h': Object.freeze({ ...base, name: 'videomae-pretrain-h', encoderEmbedDim: 1280, encoderDepth: 32, encoderNumHeads: 16, decoderEmbedDim: 512, decoderNumHeads: 8 }),
  'videomae-pretrain-g': Object.freeze({ ...base, name: 'videomae-pretrain-g', patchSize: 14, mlpRatio: 48 / 11, encoderEmbedDim: 1408, encoderDepth: 40, encoderNumHeads: 16, decoderEmbedDim: 512, decoderNumHeads: 8 }),
});

/** A registered config by name, or a full config (validated), with optional overrides (e.g. `{ imgSize: 64 }`). */
export function pretrainConfig(c: string | VideoMAEPretrainConfig, overrides: Partial<VideoMAEPretrainConfig> = {}): VideoMAEPretrainConfig {
  let found: VideoMAEPretrainConfig | undefined;
  if (typeof c === 'string') {
    found = PRETRAIN_CONFIGS[c];
    if (!found) throw new Error(`pre-training config '${c}' is not registered; known: ${Object.keys(PRETRAIN_CONFIGS).join(', ')}`);
  } else found = c;
  const out = { ...found, ...overrides };
  validatePretrainConfig(out);
  return out;
}

/** `[height, width]` of the configured clip frames. */
export function pretrainImageSize(c: VideoMAEPretrainConfig): [number, number] {
  return typeof c.imgSize === 'number' ? [c.imgSize, c.imgSize] : [c.imgSize[0], c.imgSize[1]];
}

/** The token grid of the configured clip size. */
export function pretrainGrid(c: VideoMAEPretrainConfig): TeacherGrid {
  const [h, w] = pretrainImageSize(c);
  return { frames: c.numFrames / c.tubeletSize, height: h / c.patchSize, width: w / c.patchSize };
}

/** Pixels per token of the decoder's prediction: tubelet · patch² · channels (official `decoder_num_classes`). */
export function pretrainPatchDim(c: VideoMAEPretrainConfig): number {
  return c.tubeletSize * c.patchSize * c.patchSize * c.inChans;
}

/** Throws one clear error for the first thing wrong with a config (sizes, divisibility, ratios). */
export function validatePretrainConfig(c: VideoMAEPretrainConfig): void {
  const name = c?.name ?? '(unnamed)';
  const ints: Array<keyof VideoMAEPretrainConfig> = ['numFrames', 'patchSize', 'tubeletSize', 'inChans', 'encoderEmbedDim', 'encoderDepth', 'encoderNumHeads', 'decoderEmbedDim', 'decoderDepth', 'decoderNumHeads'];
  for (const k of ints) {
    const v = c[k];
    if (!Number.isInteger(v) || (v as number) < 1) throw new Error(`pre-training config ${name}: ${String(k)} must be a positive integer, got ${String(v)}`);
  }
  const size = typeof c.imgSize === 'number' ? [c.imgSize, c.imgSize] : Array.isArray(c.imgSize) ? c.imgSize : [];
  if (size.length !== 2 || !size.every((v) => Number.isInteger(v) && v >= 1))
    throw new Error(`pre-training config ${name}: imgSize must be a positive integer or [height, width], got ${JSON.stringify(c.imgSize)}`);
  const [h, w] = size as [number, number];
  if (h % c.patchSize || w % c.patchSize) throw new Error(`pre-training config ${name}: patch size ${c.patchSize} does not divide the frame size ${h}×${w}`);
  if (c.numFrames % c.tubeletSize) throw new Error(`pre-training config ${name}: tubelet size ${c.tubeletSize} does not divide numFrames ${c.numFrames}`);
  if (c.encoderEmbedDim % c.encoderNumHeads) throw new Error(`pre-training config ${name}: encoderEmbedDim ${c.encoderEmbedDim} is not divisible by encoderNumHeads ${c.encoderNumHeads}`);
  if (c.decoderEmbedDim % c.decoderNumHeads) throw new Error(`pre-training config ${name}: decoderEmbedDim ${c.decoderEmbedDim} is not divisible by decoderNumHeads ${c.decoderNumHeads}`);
  if (!(c.mlpRatio > 0)) throw new Error(`pre-training config ${name}: mlpRatio must be > 0, got ${c.mlpRatio}`);
  if (!(c.initValues >= 0)) throw new Error(`pre-training config ${name}: initValues must be ≥ 0, got ${c.initValues}`);
  if (c.qkScale !== undefined && !(c.qkScale > 0)) throw new Error(`pre-training config ${name}: qkScale must be > 0, got ${c.qkScale}`);
  if (typeof c.qkvBias !== 'boolean') throw new Error(`pre-training config ${name}: qkvBias must be true or false, got ${String(c.qkvBias)}`);
}

/** The ViT architecture of a pre-training model's encoder or decoder (weights loaded next: zero init). */
export function pretrainVitArch(c: VideoMAEPretrainConfig, part: 'encoder' | 'decoder'): VitArch {
  return {
    embedDim: part === 'encoder' ? c.encoderEmbedDim : c.decoderEmbedDim,
    depth: part === 'encoder' ? c.encoderDepth : c.decoderDepth,
    numHeads: part === 'encoder' ? c.encoderNumHeads : c.decoderNumHeads,
    mlpRatio: c.mlpRatio,
    patchSize: c.patchSize,
    tubeletSize: c.tubeletSize,
    inChans: c.inChans,
    qkvBias: c.qkvBias ? 'qv' : 'none',
    layerNormEps: c.layerNormEps,
    maxScoreElements: c.maxScoreElements,
    qkScale: c.qkScale,
    layerScale: c.initValues > 0 ? c.initValues : undefined,
    init: 'zeros',
  };
}

/** Official `PretrainVisionTransformerEncoder` (no classifier head: `encoder_num_classes` = 0). */
export class PretrainEncoder extends Module {
  readonly patchEmbed: PatchEmbed3d;
  readonly blocks: ModuleList<VitBlock>;
  readonly norm: LayerNorm;
  constructor(readonly config: VideoMAEPretrainConfig) {
    super();
    const a = pretrainVitArch(config, 'encoder');
    this.patchEmbed = this.module('patch_embed', new PatchEmbed3d(a.inChans, a.embedDim, a.tubeletSize, a.patchSize, 'zeros'));
    this.blocks = this.module('blocks', makeBlocks(a));
    this.norm = this.module('norm', new LayerNorm(a.embedDim, { eps: a.layerNormEps }));
  }
}

/** Official `PretrainVisionTransformerDecoder`: blocks, norm, head to tubelet·patch²·3 pixels. */
export class PretrainDecoder extends Module {
  readonly blocks: ModuleList<VitBlock>;
  readonly norm: LayerNorm;
  readonly head: Linear;
  constructor(readonly config: VideoMAEPretrainConfig) {
    super();
    const a = pretrainVitArch(config, 'decoder');
    this.blocks = this.module('blocks', makeBlocks(a));
    this.norm = this.module('norm', new LayerNorm(a.embedDim, { eps: a.layerNormEps }));
    this.head = this.module('head', new Linear(a.embedDim, pretrainPatchDim(config), { init: 'zeros' }));
  }
}

/** What `forward` returns (all owned by the caller). */
export interface PretrainForward {
  /** `[B, N_vis, De]` encoder output (after `encoder.norm`) of the visible tokens, in token order */
  encoded: tf.Tensor3D;
  /** `[B, N_pred, tubelet·patch²·3]` decoder prediction of the predicted tokens, in token order */
  outputs: tf.Tensor3D;
}

export interface PretrainForwardOptions {
  /** benchmark baseline only: the encoder runs on every token (see `encode`) */
  encodeAllTokens?: boolean;
}

export interface PretrainModelOptions {
  /** seed of the official initialisation (default 0); ignored with `init: 'zeros'` */
  seed?: number;
  /** 'official' (default): xavier-uniform Linear weights, zero biases, Conv3d default, mask_token trunc-normal(0.02); 'zeros' when weights are loaded next */
  init?: 'official' | 'zeros';
}

/**
 * The pre-training model. `params` maps every official state-dict name to its tf.Variable (Linear
 * weights are stored `[in, out]`, the patch Conv3d `[t, p, p, C, D]`: see `paramLayouts` /
 * `stateDict()` for the PyTorch layout).
 */
export class VideoMAEPretrain extends Module {
  readonly config: VideoMAEPretrainConfig;
  readonly maskToken: Parameter;
  readonly encoder: PretrainEncoder;
  readonly decoder: PretrainDecoder;
  readonly encoderToDecoder: Linear;
  /** the token grid of the configured clip */
  readonly grid: TeacherGrid;
  private tables: { encoder: tf.Tensor2D; decoder: tf.Tensor2D } | null = null;

  constructor(config: string | VideoMAEPretrainConfig = 'videomae-pretrain-tiny', opts: PretrainModelOptions = {}) {
    super();
    this.config = pretrainConfig(config);
    this.grid = pretrainGrid(this.config);
    this.maskToken = this.param('mask_token', () => tf.zeros([1, 1, this.config.decoderEmbedDim]));
    this.encoder = this.module('encoder', new PretrainEncoder(this.config));
    this.decoder = this.module('decoder', new PretrainDecoder(this.config));
    this.encoderToDecoder = this.module('encoder_to_decoder', new Linear(this.config.encoderEmbedDim, this.config.decoderEmbedDim, { bias: false, init: 'zeros' }));
    if ((opts.init ?? 'official') === 'official') this.initOfficial(opts.seed ?? 0);
  }

  /** Every parameter under its official name (the variables themselves, in state-dict order). */
  get params(): Map<string, tf.Variable> {
    this.paramMap ??= new Map(this.namedParameters().map(([n, p]) => [n, p.value]));
    return this.paramMap;
  }
  private paramMap: Map<string, tf.Variable> | null = null;

  /** Tokens per clip (frames/tubelet · height/patch · width/patch). */
  get numTokens(): number {
    return this.grid.frames * this.grid.height * this.grid.width;
  }

  /**
   * The official initialisation from a seeded generator: every nn.Linear (blocks, heads,
   * encoder_to_decoder) xavier-uniform weight and zero bias (`_init_weights`), LayerNorm 1/0, the
   * patch Conv3d PyTorch's default U(±1/√fan_in) for weight and bias, q/v biases 0, gammas
   * `init_values`, `mask_token` truncated normal std 0.02 cut at ±0.02.
   */
  private initOfficial(seed: number): void {
    const rng = Rng.fromSeed(seed);
    tf.tidy(() => {
      for (const [, m] of this.namedModules()) {
        if (m instanceof Linear) {
          const [fin, fout] = m.weight.shape as [number, number];
          const xavier = Math.sqrt(6 / (fin + fout));
          m.weight.value.assign(rng.randomTensor([fin, fout], 'uniform', { low: -xavier, high: xavier }));
        }
      }
      const pe = this.encoder.patchEmbed.proj;
      const [t, p, , c] = pe.weight.shape as number[];
      const bound = 1 / Math.sqrt(t! * p! * p! * c!);
      pe.weight.value.assign(rng.randomTensor(pe.weight.shape, 'uniform', { low: -bound, high: bound }));
      pe.bias.value.assign(rng.randomTensor(pe.bias.shape, 'uniform', { low: -bound, high: bound }));
      const n = this.config.decoderEmbedDim;
      const tn = new Float32Array(n);
      for (let i = 0; i < n; i++) {
        let v: number;
        do v = rng.normal(0, 0.02);
        while (v < -0.02 || v > 0.02);
        tn[i] = v;
      }
      this.maskToken.value.assign(tf.tensor3d(tn, [1, 1, n]));
    });
  }

  /** The fixed sinusoid tables `[N, De]` (encoder) and `[N, Dd]` (decoder), owned by the model. */
  positionTables(): { encoder: tf.Tensor2D; decoder: tf.Tensor2D } {
    if (!this.tables) {
      const n = this.numTokens;
      this.tables = { encoder: tf.keep(sinusoidTable(n, this.config.encoderEmbedDim)), decoder: tf.keep(sinusoidTable(n, this.config.decoderEmbedDim)) };
    }
    return this.tables;
  }

  /** Throws unless `clip` is a float32 `[B, numFrames, H, W, inChans]` of the configured size. Returns B. */
  checkClip(clip: tf.Tensor, what = `${this.config.name}: clip`): number {
    const c = this.config;
    const [h, w] = pretrainImageSize(c);
    if (!(clip instanceof tf.Tensor)) throw new Error(`${what}: expected a tf.Tensor [batch, ${c.numFrames}, ${h}, ${w}, ${c.inChans}]`);
    if (clip.rank !== 5) throw new Error(`${what}: expected rank 5 [batch, frames, height, width, ${c.inChans}], got shape [${clip.shape.join(', ')}]`);
    const [b, f, ch, cw, cc] = clip.shape as number[];
    if (cc !== c.inChans) throw new Error(`${what}: expected ${c.inChans} channels (last axis), got ${cc} in shape [${clip.shape.join(', ')}]`);
    if (f! < c.numFrames) throw new Error(`${what}: the clip has ${f} frames, fewer than numFrames ${c.numFrames}`);
    if (f !== c.numFrames) throw new Error(`${what}: the clip has ${f} frames but the model takes exactly numFrames ${c.numFrames} (sample ${c.numFrames} frames from it)`);
    if (ch !== h || cw !== w) throw new Error(`${what}: frame size ${ch}×${cw} does not match the model's ${h}×${w} (the position table is not interpolated in pre-training)`);
    if (clip.dtype !== 'float32') throw new Error(`${what}: expected float32 values, got ${clip.dtype}`);
    return b!;
  }

  /**
   * The gather indices of `masks` as tensors (see `PretrainMaskTensors`), made now from the masks, after the
   * checks `forward` makes (same errors, same order). The caller disposes them (`disposeMaskTensors`).
   */
  maskTensors(clip: tf.Tensor, masks: PretrainMasks): PretrainMaskTensors {
    const b = this.checkClip(clip);
    const n = this.numTokens;
    checkMasks(masks, b, n, `${this.config.name}.forward`);
    const visible = maskIndices(masks.encoderMask, b, n, 0, `${this.config.name}: encoder mask`);
    const predicted = maskIndices(masks.decoderMask, b, n, 0, `${this.config.name}: decoder mask`);
    if (predicted[0]!.length === 0) throw new Error(`${this.config.name}.forward: the decoder mask leaves no token to predict`);
    if (visible[0]!.length === 0) throw new Error(`${this.config.name}.encode: the encoder mask hides every token`);
    return {
      batch: b,
      tokens: n,
      visible,
      predicted,
      visibleIndex: tf.tensor1d(flatTokenIndices(visible, n), 'int32'),
      predictedIndex: tf.tensor1d(flatTokenIndices(predicted, n), 'int32'),
    };
  }

  /**
   * Encoder on the visible tokens: patch embedding + fixed table, gather the tokens with
   * `encoderMask = 0`, blocks, `encoder.norm` (`opts.norm: false` skips the norm, which is what the
   * teachers' features are). `[B, F, H, W, C]` → `[B, N_vis, De]`. `masks: null` encodes every token.
   */
  encode(clip: tf.Tensor, masks: PretrainMasks | null, opts: { norm?: boolean; encodeAllTokens?: boolean } = {}): tf.Tensor3D {
    const b = this.checkClip(clip);
    const n = this.numTokens;
    let visibleIndex: tf.Tensor1D | null = null;
    if (masks) {
      checkMasks(masks, b, n, `${this.config.name}.encode`);
      const visible = maskIndices(masks.encoderMask, b, n, 0, `${this.config.name}: encoder mask`);
      if (visible[0]!.length === 0) throw new Error(`${this.config.name}.encode: the encoder mask hides every token`);
      visibleIndex = tf.tensor1d(flatTokenIndices(visible, n), 'int32');
    }
    try {
      return this.encodeWith(clip, visibleIndex, opts);
    } finally {
      visibleIndex?.dispose();
    }
  }

  /**
   * `encode` with the visible tokens given as flat gather indices (`PretrainMaskTensors.visibleIndex`; null:
   * every token): makes no tensor from per-call JS values, so it can be traced into a graph.
   */
  encodeWith(clip: tf.Tensor, visibleIndex: tf.Tensor | null, opts: { norm?: boolean; encodeAllTokens?: boolean } = {}): tf.Tensor3D {
    this.checkClip(clip);
    const d = this.config.encoderEmbedDim;
    const { encoder: pos } = this.positionTables();
    return tf.tidy(() => {
      let x: tf.Tensor = tf.add(this.encoder.patchEmbed.forward(clip), pos);
      if (visibleIndex && !opts.encodeAllTokens) x = gatherTokens(x, visibleIndex, d);
      for (const blk of this.encoder.blocks) x = blk.forward(x);
      if (visibleIndex && opts.encodeAllTokens) x = gatherTokens(x, visibleIndex, d);
      return (opts.norm === false ? x : this.encoder.norm.forward(x)) as tf.Tensor3D;
    });
  }

  /**
   * The whole model (official `forward(x, mask, decode_mask)`): `clip [B, F, H, W, C]` and masks →
   * `{ encoded [B, N_vis, De], outputs [B, N_pred, t·p²·C] }`, where the predicted tokens are those with
   * `decoderMask = 0`, in token order.
   */
  forward(clip: tf.Tensor, masks: PretrainMasks, opts: PretrainForwardOptions = {}): PretrainForward {
    const mt = this.maskTensors(clip, masks);
    try {
      return this.forwardWith(clip, mt, opts);
    } finally {
      disposeMaskTensors(mt);
    }
  }

  /**
   * `forward` on masks made into tensors beforehand (`maskTensors`): runs only ops on tensors (no tensor made
   * from per-call JS values), so a step built on it can be traced into one graph (see `compilePretrainStep`).
   */
  forwardWith(clip: tf.Tensor, mt: Pick<PretrainMaskTensors, 'visibleIndex' | 'predictedIndex'>, opts: PretrainForwardOptions = {}): PretrainForward {
    const b = this.checkClip(clip);
    const np = mt.predictedIndex.size / b;
    if (!Number.isInteger(np) || np < 1 || !Number.isInteger(mt.visibleIndex.size / b) || mt.visibleIndex.size < b)
      throw new Error(`${this.config.name}.forward: mask tensors of ${mt.visibleIndex.size} visible and ${mt.predictedIndex.size} predicted indices do not fit a batch of ${b}`);
    const { decoder: dpos } = this.positionTables();
    const dd = this.config.decoderEmbedDim;
    const encoded = this.encodeWith(clip, mt.visibleIndex, { encodeAllTokens: opts.encodeAllTokens });
    const outputs = tf.tidy(() => {
      const xv = this.encoderToDecoder.forward(encoded); // [B, N_vis, Dd]
      const posAll = tf.tile(tf.expandDims(dpos, 0), [b, 1, 1]);
      const posVis = gatherTokens(posAll, mt.visibleIndex, dd);
      const posPred = gatherTokens(posAll, mt.predictedIndex, dd);
      let x: tf.Tensor = tf.concat([tf.add(xv, posVis), tf.add(this.maskToken.value, posPred)], 1);
      for (const blk of this.decoder.blocks) x = blk.forward(x);
      const tail = tf.slice(x, [0, x.shape[1]! - np, 0], [b, np, dd]);
      return this.decoder.head.forward(this.decoder.norm.forward(tail)) as tf.Tensor3D;
    });
    return { encoded, outputs };
  }

  override dispose(): void {
    if (this.tables) tf.dispose([this.tables.encoder, this.tables.decoder]);
    this.tables = null;
    super.dispose();
  }
}

/** Flat gather indices `s·tokens + i` of per-sample token indices (each sample's list of the same length k): `[B·k]`. */
export function flatTokenIndices(indices: number[][], tokens: number): Int32Array {
  const k = indices[0]!.length;
  const flat = new Int32Array(indices.length * k);
  indices.forEach((idx, s) => idx.forEach((i, j) => (flat[s * k + j] = s * tokens + i)));
  return flat;
}

/**
 * A batch's masks as the tensors a forward pass gathers with, made beforehand (`VideoMAEPretrain.maskTensors`):
 * a traced step takes them as inputs, since a tensor made from per-step JS values inside a traced function
 * would be frozen into its graph. Token counts do not change between steps of one run (tube masks hide
 * `int(ratio·h·w)` tokens of every slot, future slots and running cells fixed counts), so neither do the shapes.
 */
export interface PretrainMaskTensors {
  batch: number;
  /** tokens per sample */
  tokens: number;
  /** host copies: per sample, the token indices with encoderMask = 0 / decoderMask = 0 */
  visible: number[][];
  predicted: number[][];
  /** int32 `[B·N_vis]`: `s·N + i` for the visible tokens i of sample s (gatherTokens' flat indices) */
  visibleIndex: tf.Tensor1D;
  /** int32 `[B·N_pred]`: the same for the predicted tokens */
  predictedIndex: tf.Tensor1D;
}

/** Dispose the tensors of a `PretrainMaskTensors` (and of objects extending it). */
export function disposeMaskTensors(mt: { visibleIndex: tf.Tensor; predictedIndex: tf.Tensor } & object): void {
  tf.dispose(Object.values(mt).filter((v): v is tf.Tensor => v instanceof tf.Tensor));
}

/**
 * `[B, N, D]` → `[B, k, D]`: the tokens `indices[b]` (each of length k) of every sample, differentiable
 * (one gather of rows). `indices` may also be the flat int32 indices `[B·k]` (`flatTokenIndices`) as a tensor.
 * Traceable into a graph function: core's GatherV2 kernel leaves the bounds check to TensorFlow.
 */
export function gatherTokens(x: tf.Tensor, indices: number[][] | tf.Tensor, dim: number): tf.Tensor3D {
  return tf.tidy(() => {
    const [b, n] = x.shape as [number, number];
    const index = indices instanceof tf.Tensor ? indices : tf.tensor1d(flatTokenIndices(indices, n), 'int32');
    const k = index.size / b;
    return tf.reshape(tf.gather(tf.reshape(x, [b * n, dim]), index), [b, k, dim]) as tf.Tensor3D;
  });
}

/**
 * Official `get_parameter_groups` rule: no weight decay for 1-D parameters, `*.bias`, and `mask_token` /
 * `pos_embed` / `cls_token` (the model's `no_weight_decay`). `torchShape` is the parameter's PyTorch shape.
 */
export function pretrainNoWeightDecay(name: string, torchShape: readonly number[]): boolean {
  return torchShape.length === 1 || name.endsWith('.bias') || ['mask_token', 'pos_embed', 'cls_token'].includes(name);
}

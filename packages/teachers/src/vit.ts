/**
 * The video ViT shared by the VideoMAE family and V-JEPA: tubelet patch embedding, pre-norm blocks
 * (attention + GELU MLP), parameters named exactly as the official state dicts.
 *
 * Patch embedding is the official Conv3d with kernel = stride = (tubelet, patch, patch); here it is
 * computed as what it is, a patchify (reshape → transpose) followed by one matmul, which is exact and
 * needs no conv kernels (fast on wasm, differentiable everywhere).
 */
import * as tf from '@tensorflow/tfjs';
import { LayerNorm, Linear, MLP, Module, ModuleList, attention, linear, mergeHeads, uniformInit, type InitKind, type Parameter } from '@vrepa/core';

/** A token grid `frames × height × width` (frame-major token order). */
export interface TeacherGrid {
  frames: number;
  height: number;
  width: number;
}

/** How the qkv projection carries its bias: VideoMAE-style separate `q_bias`/`v_bias` (k bias zero), one `qkv.bias`, or none. */
export type QkvBiasKind = 'qv' | 'qkv' | 'none';

export interface VitArch {
  embedDim: number;
  depth: number;
  numHeads: number;
  /** MLP hidden = floor(embedDim · mlpRatio) (PyTorch `int(dim * mlp_ratio)`) */
  mlpRatio: number;
  patchSize: number;
  tubeletSize: number;
  inChans: number;
  qkvBias: QkvBiasKind;
  layerNormEps: number;
  /** attention score budget (elements of one `[B, heads, chunk, N]` block); queries are chunked above it */
  maxScoreElements?: number;
  /** attention score scale; default head_dim^-0.5 (PyTorch `qk_scale`) */
  qkScale?: number;
  /** VideoMAE(v2) `init_values > 0`: per-channel layer scale `gamma_1`, `gamma_2` on the two residual branches */
  layerScale?: number;
  /** 'torch' (default): PyTorch's default init from core's seeded generator; 'zeros' when weights are loaded next */
  init?: InitKind;
}

/** Conv3d(kernel = stride = (t, p, p)) as patchify + matmul. `proj.weight` PyTorch `[D, C, t, p, p]`, stored `[t, p, p, C, D]`. */
export class PatchEmbed3d extends Module {
  readonly proj: PatchProj;
  constructor(
    readonly inChans: number,
    readonly embedDim: number,
    readonly tubelet: number,
    readonly patch: number,
    init: InitKind = 'torch',
    /** OmniMAE: the Conv3d sits at index `seqIndex` of an nn.Sequential (`proj.1.weight`) */
    seqIndex?: number,
  ) {
    super();
    const proj = new PatchProj(inChans, embedDim, tubelet, patch, init);
    if (seqIndex === undefined) this.proj = this.module('proj', proj);
    else {
      this.module('proj', new IndexedChild(seqIndex, proj));
      this.proj = proj;
    }
  }

  /** The token grid of a `[B, F, H, W, C]` video; throws unless F, H, W are divisible by tubelet/patch. */
  gridOf(shape: readonly number[], what = 'video'): TeacherGrid {
    const [, f, h, w, c] = shape as number[];
    if (shape.length !== 5) throw new Error(`${what}: expected [batch, frames, height, width, ${this.inChans}], got shape [${shape.join(', ')}]`);
    if (c !== this.inChans) throw new Error(`${what}: expected ${this.inChans} channels (last axis), got ${c} in shape [${shape.join(', ')}]`);
    if (f! % this.tubelet !== 0 || f! < this.tubelet)
      throw new Error(`${what}: ${f} frames is not a positive multiple of the tubelet size ${this.tubelet}`);
    if (h! % this.patch !== 0 || w! % this.patch !== 0 || h! < this.patch || w! < this.patch)
      throw new Error(`${what}: frame size ${h}×${w} is not a positive multiple of the patch size ${this.patch}`);
    return { frames: f! / this.tubelet, height: h! / this.patch, width: w! / this.patch };
  }

  /** `[B, F, H, W, C]` → `[B, (F/t)·(H/p)·(W/p), D]` frame-major. */
  forward(x: tf.Tensor): tf.Tensor3D {
    const g = this.gridOf(x.shape);
    const [b] = x.shape as number[];
    const { tubelet: t, patch: p, inChans: c } = this;
    return tf.tidy(() => {
      // [B·F', t, H', p, W'·p·C] → [B·F', H', t, p, W'·p·C]
      let y = tf.reshape(x, [b! * g.frames, t, g.height, p, g.width * p * c]);
      y = tf.transpose(y, [0, 2, 1, 3, 4]);
      // [B·F'·H', t·p, W', p·C] → [B·F'·H', W', t·p, p·C]: features ordered (kt, kh, kw, c)
      y = tf.reshape(y, [b! * g.frames * g.height, t * p, g.width, p * c]);
      y = tf.transpose(y, [0, 2, 1, 3]);
      y = tf.reshape(y, [b! * g.frames * g.height * g.width, t * p * p * c]);
      const out = this.proj.apply2d(y);
      return tf.reshape(out, [b!, g.frames * g.height * g.width, this.embedDim]) as tf.Tensor3D;
    });
  }
}

/** A container holding one child under a numeric name (an nn.Sequential whose other items have no parameters). */
class IndexedChild extends Module {
  constructor(index: number, child: Module) {
    super();
    this.module(String(index), child);
  }
}

/** The Conv3d parameters (`weight`, `bias`) of the patch embedding. */
export class PatchProj extends Module {
  readonly weight: Parameter;
  readonly bias: Parameter;
  constructor(inChans: number, embedDim: number, tubelet: number, patch: number, init: InitKind = 'torch') {
    super();
    const fanIn = inChans * tubelet * patch * patch;
    const bound = 1 / Math.sqrt(fanIn);
    this.weight = this.param('weight', () => uniformInit([tubelet, patch, patch, inChans, embedDim], bound, { init }), { layout: 'conv3d' });
    this.bias = this.param('bias', () => uniformInit([embedDim], bound, { init }));
  }
  /** `[rows, t·p·p·C]` → `[rows, D]` */
  apply2d(x: tf.Tensor): tf.Tensor {
    return tf.tidy(() => {
      const [t, p, , c, d] = this.weight.shape as number[];
      return linear(x, tf.reshape(this.weight.value, [t! * p! * p! * c!, d!]), this.bias.value);
    });
  }
}

/** Multi-head self-attention with the official names `qkv`, `q_bias`/`v_bias` or `qkv.bias`, `proj`. */
export class VitAttention extends Module {
  readonly qkv: Linear;
  readonly qBias: Parameter | null = null;
  readonly vBias: Parameter | null = null;
  readonly proj: Linear;
  constructor(
    readonly dim: number,
    readonly numHeads: number,
    readonly biasKind: QkvBiasKind,
    readonly maxScoreElements?: number,
    init: InitKind = 'torch',
    readonly qkScale?: number,
  ) {
    super();
    this.qkv = this.module('qkv', new Linear(dim, 3 * dim, { bias: biasKind === 'qkv', init }));
    if (biasKind === 'qv') {
      this.qBias = this.param('q_bias', () => tf.zeros([dim]));
      this.vBias = this.param('v_bias', () => tf.zeros([dim]));
    }
    this.proj = this.module('proj', new Linear(dim, dim, { init }));
  }

  /** `[B, N, D]` → `[B, N, D]`; scores are computed in query chunks above `maxScoreElements`. */
  forward(x: tf.Tensor): tf.Tensor {
    return tf.tidy(() => {
      const [b, n, d] = x.shape as [number, number, number];
      const h = this.numHeads;
      let bias: tf.Tensor | null = this.qkv.bias?.value ?? null;
      if (this.qBias && this.vBias) bias = tf.concat([this.qBias.value, tf.zeros([d]), this.vBias.value]);
      const qkv = linear(x, this.qkv.weight.value, bias); // [B, N, 3D]
      // [B, N, 3, h, hd] → [3, B, h, N, hd]
      const parts = tf.transpose(tf.reshape(qkv, [b, n, 3, h, d / h]), [2, 0, 3, 1, 4]);
      const [q, k, v] = tf.unstack(parts, 0);
      const o = attention(q!, k!, v!, { chunkSize: 'auto', maxScoreElements: this.maxScoreElements, scale: this.qkScale });
      return this.proj.forward(mergeHeads(o));
    });
  }
}

/** Pre-norm transformer block: x + attn(norm1(x)); x + mlp(norm2(x)). */
export class VitBlock extends Module {
  readonly norm1: LayerNorm;
  readonly attn: VitAttention;
  readonly norm2: LayerNorm;
  readonly mlp: MLP;
  readonly gamma1: Parameter | null = null;
  readonly gamma2: Parameter | null = null;
  constructor(a: VitArch) {
    super();
    if (a.layerScale) {
      this.gamma1 = this.param('gamma_1', () => tf.fill([a.embedDim], a.layerScale!));
      this.gamma2 = this.param('gamma_2', () => tf.fill([a.embedDim], a.layerScale!));
    }
    this.norm1 = this.module('norm1', new LayerNorm(a.embedDim, { eps: a.layerNormEps }));
    this.attn = this.module('attn', new VitAttention(a.embedDim, a.numHeads, a.qkvBias, a.maxScoreElements, a.init, a.qkScale));
    this.norm2 = this.module('norm2', new LayerNorm(a.embedDim, { eps: a.layerNormEps }));
    this.mlp = this.module('mlp', new MLP(a.embedDim, Math.floor(a.embedDim * a.mlpRatio), { activation: 'gelu', init: a.init }));
  }
  forward(x: tf.Tensor): tf.Tensor {
    return tf.tidy(() => {
      let a = this.attn.forward(this.norm1.forward(x));
      if (this.gamma1) a = tf.mul(a, this.gamma1.value);
      const y = tf.add(x, a);
      let m = this.mlp.forward(this.norm2.forward(y));
      if (this.gamma2) m = tf.mul(m, this.gamma2.value);
      return tf.add(y, m);
    });
  }
}

/** `blocks.{i}` */
export function makeBlocks(a: VitArch): ModuleList<VitBlock> {
  return new ModuleList(Array.from({ length: a.depth }, () => new VitBlock(a)));
}

/** Analytic forward FLOPs of a video ViT on `n` tokens (2 per multiply-add; matmuls only). */
export function vitForwardFlops(a: VitArch, grid: TeacherGrid, batch = 1): number {
  const n = grid.frames * grid.height * grid.width;
  const d = a.embedDim;
  const hidden = Math.floor(d * a.mlpRatio);
  const patch = 2 * n * a.tubeletSize * a.patchSize * a.patchSize * a.inChans * d;
  const perBlock = 2 * n * d * 3 * d + 2 * n * n * d * 2 + 2 * n * d * d + 2 * n * d * hidden * 2;
  return batch * (patch + a.depth * perBlock);
}

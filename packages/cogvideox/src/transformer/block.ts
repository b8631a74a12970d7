/**
 * One CogVideoX transformer block (diffusers `CogVideoXBlock`) and its parts, with diffusers'
 * parameter names: `norm1` / `norm2` (CogVideoXLayerNormZero: `linear`, `norm`), `attn1` (`to_q`,
 * `to_k`, `to_v`, `norm_q`, `norm_k`, `to_out.0`), `ff` (`net.0.proj`, `net.2`).
 *
 * The block works on the JOINT sequence `[B, L + N, D]` (L text tokens first, then N vision tokens,
 * frame-major), which is what attention and the feed-forward see; AdaLN-zero modulation uses the text
 * (`enc_*`) or vision chunk of the conditioning for each part.
 */
import * as tf from '@tensorflow/tfjs';
import { Module, ModuleList, Linear, LayerNorm, geluTanh, gelu, silu, attention, splitHeads, mergeHeads, leanAdd, leanConcat, modulate, gatedResidual, type DropoutFn } from '@vrepa/core';
import { LoraLinear } from '../lora/lora-linear.js';
import type { CogVideoXTransformerConfig } from './config.js';
import { innerDim } from './config.js';

/** Rotary tables as tensors: cos / sin `[N, headDim]` for the N vision tokens. */
export interface RotaryTensors {
  cos: tf.Tensor2D;
  sin: tf.Tensor2D;
}

/** diffusers CogVideoXLayerNormZero: `linear` (time_embed → 6·dim) on SiLU(temb), then `norm`. */
export class CogVideoXLayerNormZero extends Module {
  readonly linear: Linear;
  readonly norm: LayerNorm;
  constructor(conditioningDim: number, dim: number, affine: boolean, eps: number, init: 'torch' | 'zeros') {
    super();
    this.linear = this.module('linear', new Linear(conditioningDim, 6 * dim, { init }));
    this.norm = this.module('norm', new LayerNorm(dim, { eps, affine }));
  }
  /** The six modulation chunks, each `[B, 1, D]`: shift, scale, gate, enc_shift, enc_scale, enc_gate. */
  modulation(temb: tf.Tensor): tf.Tensor[] {
    return tf.tidy(() => {
      const m = this.linear.forward(silu(temb));
      const B = m.shape[0]!;
      return tf.split(tf.reshape(m, [B, 1, -1]), 6, 2);
    });
  }
}

/** diffusers Attention with CogVideoXAttnProcessor2_0 (joint self-attention, QK LayerNorm, rotary on vision tokens). */
export class CogVideoXAttention extends Module {
  readonly to_q: LoraLinear;
  readonly to_k: LoraLinear;
  readonly to_v: LoraLinear;
  readonly norm_q: LayerNorm;
  readonly norm_k: LayerNorm;
  readonly to_out: ModuleList<LoraLinear>;
  /** Query chunking of the attention core (core's `attention` chunkSize: 'auto', a number, or 0 = never). */
  chunkSize: number | 'auto' = 'auto';
  constructor(
    readonly dim: number,
    readonly heads: number,
    readonly headDim: number,
    bias: boolean,
    init: 'torch' | 'zeros',
  ) {
    super();
    const inner = heads * headDim;
    this.to_q = this.module('to_q', new LoraLinear(dim, inner, { bias, init }));
    this.to_k = this.module('to_k', new LoraLinear(dim, inner, { bias, init }));
    this.to_v = this.module('to_v', new LoraLinear(dim, inner, { bias, init }));
    // diffusers: qk_norm="layer_norm", eps=1e-6, elementwise_affine=True
    this.norm_q = this.module('norm_q', new LayerNorm(headDim, { eps: 1e-6 }));
    this.norm_k = this.module('norm_k', new LayerNorm(headDim, { eps: 1e-6 }));
    this.to_out = this.module('to_out', new ModuleList([new LoraLinear(inner, dim, { bias: true, init })]));
  }

  /** `x` `[B, L+N, D]` (text first) → `[B, L+N, D]`. Rotary (if given) applies to the last N tokens of q and k. */
  forward(x: tf.Tensor, textLen: number, rotary?: RotaryTensors | null): tf.Tensor {
    return tf.tidy(() => {
      const q = splitHeads(this.to_q.forward(x), this.heads);
      const k = splitHeads(this.to_k.forward(x), this.heads);
      const v = splitHeads(this.to_v.forward(x), this.heads);
      const o = attention(q, k, v, {
        qNorm: (t) => this.norm_q.forward(t),
        kNorm: (t) => this.norm_k.forward(t),
        rotary: rotary ? { cos: rotary.cos, sin: rotary.sin, offset: textLen } : undefined,
        chunkSize: this.chunkSize,
      });
      return this.to_out.at(0).forward(mergeHeads(o));
    });
  }
}

/**
 * diffusers FeedForward(dim, activation_fn, inner 4·dim, final_dropout=True as CogVideoXBlock builds it):
 * `net.0.proj` → GELU → Dropout (`net.1`) → `net.2` → Dropout (`net.3`). Dropout runs only when `drop` is
 * given (training mode); inference and the official fixtures use none.
 */
export class FeedForward extends Module {
  readonly net: ModuleList;
  private readonly proj: Linear;
  private readonly out: Linear;
  private readonly act: (x: tf.Tensor) => tf.Tensor;
  constructor(dim: number, innerDimFF: number, activationFn: string, init: 'torch' | 'zeros') {
    super();
    const net0 = new GeluProj(dim, innerDimFF, init);
    this.proj = net0.proj;
    this.out = new Linear(innerDimFF, dim, { init });
    // net.1 is a Dropout (no parameters): registered as an empty module so that net.2 keeps its index.
    this.net = this.module('net', new ModuleList([net0, new Module(), this.out]));
    this.act = activationFn === 'gelu' ? gelu : geluTanh;
  }
  forward(x: tf.Tensor, drop?: DropoutFn): tf.Tensor {
    return tf.tidy(() => {
      const hidden = this.act(this.proj.forward(x));
      const out = this.out.forward(drop ? drop(hidden) : hidden);
      return drop ? drop(out) : out;
    });
  }
}

class GeluProj extends Module {
  readonly proj: Linear;
  constructor(dim: number, out: number, init: 'torch' | 'zeros') {
    super();
    this.proj = this.module('proj', new Linear(dim, out, { init }));
  }
}

/**
 * Whether the block's AdaLN chains use core's `modulate` / `gatedResidual` (hand-written gradients, the same
 * values with fewer kernels) — the default; VREPA_FUSED_CHAINS=0 keeps tf.mul / tf.add with autodiff's
 * gradients (to compare in benchmarks and tests).
 */
export function fusedChains(): boolean {
  return typeof process === 'undefined' || process.env?.VREPA_FUSED_CHAINS !== '0';
}

/** diffusers CogVideoXBlock. */
export class CogVideoXBlock extends Module {
  readonly norm1: CogVideoXLayerNormZero;
  readonly attn1: CogVideoXAttention;
  readonly norm2: CogVideoXLayerNormZero;
  readonly ff: FeedForward;
  constructor(config: CogVideoXTransformerConfig, init: 'torch' | 'zeros' = 'torch') {
    super();
    const dim = innerDim(config);
    const affine = config.norm_elementwise_affine;
    this.norm1 = this.module('norm1', new CogVideoXLayerNormZero(config.time_embed_dim, dim, affine, config.norm_eps, init));
    this.attn1 = this.module('attn1', new CogVideoXAttention(dim, config.num_attention_heads, config.attention_head_dim, config.attention_bias, init));
    this.norm2 = this.module('norm2', new CogVideoXLayerNormZero(config.time_embed_dim, dim, affine, config.norm_eps, init));
    this.ff = this.module('ff', new FeedForward(dim, 4 * dim, config.activation_fn, init));
  }

  /**
   * `x` `[B, L+N, D]` (L text tokens, then N vision tokens), `temb` `[B, time_embed_dim]` →
   * the block's `[B, L+N, D]` output (text part = diffusers' encoder_hidden_states output).
   * `drop` (training mode with config.dropout > 0): the feed-forward's two dropouts.
   */
  forward(x: tf.Tensor, temb: tf.Tensor, textLen: number, rotary?: RotaryTensors | null, drop?: DropoutFn): tf.Tensor {
    return tf.tidy(() => {
      const S = x.shape[1]!;
      const N = S - textLen;
      let [e, h] = tf.split(x, [textLen, N], 1) as [tf.Tensor, tf.Tensor];
      const [shift, scale, gate, eShift, eScale, eGate] = this.norm1.modulation(temb) as tf.Tensor[];
      // leanAdd / leanConcat: same values as tf.add / tf.concat, but their gradients keep no inputs alive;
      // modulate / gatedResidual: the same ops forward, gradients in fewer kernels (same values)
      const fused = fusedChains();
      const mod = fused
        ? (t: tf.Tensor, norm: LayerNorm, sc: tf.Tensor, sh: tf.Tensor) => modulate(norm.forward(t), sc, sh)
        : (t: tf.Tensor, norm: LayerNorm, sc: tf.Tensor, sh: tf.Tensor) => leanAdd(tf.mul(norm.forward(t), tf.add(sc, 1)), sh);
      const gated = fused ? gatedResidual : (r: tf.Tensor, g: tf.Tensor, y: tf.Tensor) => leanAdd(r, tf.mul(g, y));
      const nh = mod(h, this.norm1.norm, scale!, shift!);
      const ne = mod(e, this.norm1.norm, eScale!, eShift!);
      const a = this.attn1.forward(leanConcat([ne, nh], 1), textLen, rotary);
      const [ae, ah] = tf.split(a, [textLen, N], 1) as [tf.Tensor, tf.Tensor];
      h = gated(h, gate!, ah);
      e = gated(e, eGate!, ae);
      const [shift2, scale2, gate2, eShift2, eScale2, eGate2] = this.norm2.modulation(temb) as tf.Tensor[];
      const nh2 = mod(h, this.norm2.norm, scale2!, shift2!);
      const ne2 = mod(e, this.norm2.norm, eScale2!, eShift2!);
      const f = this.ff.forward(leanConcat([ne2, nh2], 1), drop);
      const [fe, fh] = tf.split(f, [textLen, N], 1) as [tf.Tensor, tf.Tensor];
      h = gated(h, gate2!, fh);
      e = gated(e, eGate2!, fe);
      return leanConcat([e, h], 1);
    });
  }
}

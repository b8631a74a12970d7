/**
 * Normalisation layers with PyTorch semantics and names: LayerNorm (`weight`, `bias`), GroupNorm
 * (channels-last activations), RMSNorm (T5 style, `weight`). Biased variance everywhere, as PyTorch.
 */
import * as tf from '@tensorflow/tfjs';
import { Module, type Parameter } from '../module.js';
import { customOp } from './custom.js';

/**
 * LayerNorm over the last axis with a hand-written gradient (saves x̂ and 1/σ; the backward is
 * dx = (g − mean(g) − x̂·mean(g·x̂))/σ with g = dy·γ). `x` `[..., C]`, `weight`/`bias` `[C]` or null.
 */
export function layerNorm(x: tf.Tensor, weight: tf.Tensor | null | undefined, bias: tf.Tensor | null | undefined, eps = 1e-5): tf.Tensor {
  const c = x.shape[x.rank - 1]!;
  for (const [t, n] of [
    [weight, 'weight'],
    [bias, 'bias'],
  ] as const)
    if (t && (t.rank !== 1 || t.shape[0] !== c)) throw new Error(`layerNorm: ${n} must be [${c}] for input [${x.shape.join(', ')}], got [${t.shape.join(', ')}]`);
  const hasW = !!weight;
  const hasB = !!bias;
  const axis = x.rank - 1;
  const op = customOp((args, save) => {
    const xs = args[0]!;
    const w = hasW ? (args[1] as tf.Tensor) : null;
    const b = hasB ? (args[hasW ? 2 : 1] as tf.Tensor) : null;
    const mean = tf.mean(xs, axis, true);
    const xc = tf.sub(xs, mean);
    const rstd = tf.rsqrt(tf.add(tf.mean(tf.square(xc), axis, true), eps));
    const xhat = tf.mul(xc, rstd);
    save([xhat, rstd]);
    let y = xhat;
    if (w) y = tf.mul(y, w);
    if (b) y = tf.add(y, b);
    return {
      value: y,
      gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => {
        const [xh, rs] = saved as [tf.Tensor, tf.Tensor];
        const grads = [
          () => {
            const g = w ? tf.mul(dy, w) : dy;
            return tf.mul(rs, tf.sub(tf.sub(g, tf.mean(g, axis, true)), tf.mul(xh, tf.mean(tf.mul(g, xh), axis, true))));
          },
        ];
        if (w) grads.push(() => tf.sum(tf.mul(tf.reshape(dy, [-1, c]), tf.reshape(xh, [-1, c])), 0));
        if (b) grads.push(() => tf.sum(tf.reshape(dy, [-1, c]), 0));
        return grads;
      },
    };
  });
  const inputs = [x];
  if (weight) inputs.push(weight);
  if (bias) inputs.push(bias);
  return op(...inputs);
}

/** Plain autodiff LayerNorm (tf.moments), the reference for tests and the benchmark baseline. */
export function layerNormReference(x: tf.Tensor, weight?: tf.Tensor | null, bias?: tf.Tensor | null, eps = 1e-5): tf.Tensor {
  return tf.tidy(() => {
    const { mean, variance } = tf.moments(x, -1, true);
    let y = tf.mul(tf.sub(x, mean), tf.rsqrt(tf.add(variance, eps)));
    if (weight) y = tf.mul(y, weight);
    if (bias) y = tf.add(y, bias);
    return y;
  });
}

export interface NormOptions {
  /** default 1e-5 (PyTorch); ViTs use 1e-6 */
  eps?: number;
  /** learnable weight and bias (PyTorch elementwise_affine / affine); default true */
  affine?: boolean;
  /** LayerNorm only: with affine, whether there is a bias (PyTorch ≥ 2.1 `bias=`); default true */
  bias?: boolean;
}

/** PyTorch nn.LayerNorm(normalized_shape = C): parameters `weight`, `bias` `[C]`. Input `[..., C]`. */
export class LayerNorm extends Module {
  readonly weight: Parameter | null;
  readonly bias: Parameter | null;
  readonly eps: number;
  constructor(
    readonly channels: number,
    opts: NormOptions = {},
  ) {
    super();
    this.eps = opts.eps ?? 1e-5;
    const affine = opts.affine ?? true;
    this.weight = affine ? this.param('weight', () => tf.ones([channels])) : null;
    this.bias = affine && (opts.bias ?? true) ? this.param('bias', () => tf.zeros([channels])) : null;
  }
  forward(x: tf.Tensor): tf.Tensor {
    return layerNorm(x, this.weight?.value, this.bias?.value, this.eps);
  }
}

/**
 * GroupNorm with PyTorch semantics on channels-last input `[B, ..., C]` (any number of spatial axes,
 * including none): channels are split into `groups` contiguous groups; mean and biased variance over
 * each group's channels and all positions of one sample; then per-channel affine.
 */
export function groupNorm(x: tf.Tensor, groups: number, weight?: tf.Tensor | null, bias?: tf.Tensor | null, eps = 1e-5): tf.Tensor {
  const c = x.shape[x.rank - 1]!;
  if (x.rank < 2) throw new Error(`groupNorm: input must be [B, ..., C], got [${x.shape.join(', ')}]`);
  if (!Number.isInteger(groups) || groups < 1 || c % groups !== 0)
    throw new Error(`groupNorm: channels ${c} must be divisible by groups ${groups}`);
  return tf.tidy(() => {
    const b = x.shape[0]!;
    const g = tf.reshape(x, [b, -1, groups, c / groups]);
    const { mean, variance } = tf.moments(g, [1, 3], true);
    let y = tf.reshape(tf.mul(tf.sub(g, mean), tf.rsqrt(tf.add(variance, eps))), x.shape);
    if (weight) y = tf.mul(y, weight);
    if (bias) y = tf.add(y, bias);
    return y;
  });
}

/**
 * groupNorm for inference on large activations: the same result (up to float32 rounding: the affine is
 * folded into one per-channel scale), with at most two input-sized temporaries alive instead of ~4
 * (each freed as soon as it is used). Forward only: no gradient flows through the freed tensors.
 */
export function groupNormInference(x: tf.Tensor, groups: number, weight?: tf.Tensor | null, bias?: tf.Tensor | null, eps = 1e-5): tf.Tensor {
  const c = x.shape[x.rank - 1]!;
  if (x.rank < 2) throw new Error(`groupNormInference: input must be [B, ..., C], got [${x.shape.join(', ')}]`);
  if (!Number.isInteger(groups) || groups < 1 || c % groups !== 0)
    throw new Error(`groupNormInference: channels ${c} must be divisible by groups ${groups}`);
  return tf.tidy(() => {
    const b = x.shape[0]!;
    const cg = c / groups;
    const g = tf.reshape(x, [b, -1, groups, cg]);
    const d = tf.sub(g, tf.mean(g, [1, 3], true));
    const sq = tf.square(d);
    const rstd = tf.rsqrt(tf.add(tf.mean(sq, [1, 3], true), eps));
    sq.dispose();
    const scale = weight ? tf.mul(rstd, tf.reshape(weight, [1, 1, groups, cg])) : rstd;
    let y = tf.mul(d, scale);
    d.dispose();
    if (bias) {
      const shifted = tf.add(y, tf.reshape(bias, [1, 1, groups, cg]));
      y.dispose();
      y = shifted;
    }
    return tf.reshape(y, x.shape);
  });
}

/** PyTorch nn.GroupNorm(num_groups, num_channels): `weight`, `bias` `[C]`; input channels-last `[B, ..., C]`. */
export class GroupNorm extends Module {
  readonly weight: Parameter | null;
  readonly bias: Parameter | null;
  readonly eps: number;
  constructor(
    readonly groups: number,
    readonly channels: number,
    opts: NormOptions = {},
  ) {
    super();
    if (channels % groups !== 0) throw new Error(`GroupNorm: channels ${channels} must be divisible by groups ${groups}`);
    this.eps = opts.eps ?? 1e-5;
    const affine = opts.affine ?? true;
    this.weight = affine ? this.param('weight', () => tf.ones([channels])) : null;
    this.bias = affine ? this.param('bias', () => tf.zeros([channels])) : null;
  }
  forward(x: tf.Tensor): tf.Tensor {
    return groupNorm(x, this.groups, this.weight?.value, this.bias?.value, this.eps);
  }
}

/** T5-style RMS norm: x / √(mean(x²) + eps) · weight (no mean subtraction, no bias). `x` `[..., C]`. */
export function rmsNorm(x: tf.Tensor, weight?: tf.Tensor | null, eps = 1e-6): tf.Tensor {
  return tf.tidy(() => {
    let y = tf.mul(x, tf.rsqrt(tf.add(tf.mean(tf.square(x), -1, true), eps)));
    if (weight) y = tf.mul(y, weight);
    return y;
  });
}

/** T5LayerNorm / RMSNorm: parameter `weight` `[C]`, default eps 1e-6. */
export class RMSNorm extends Module {
  readonly weight: Parameter | null;
  readonly eps: number;
  constructor(
    readonly channels: number,
    opts: { eps?: number; affine?: boolean } = {},
  ) {
    super();
    this.eps = opts.eps ?? 1e-6;
    this.weight = opts.affine ?? true ? this.param('weight', () => tf.ones([channels])) : null;
  }
  forward(x: tf.Tensor): tf.Tensor {
    return rmsNorm(x, this.weight?.value, this.eps);
  }
}

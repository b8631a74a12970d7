/** Linear layer with PyTorch names (`weight`, `bias`) and the stored `[in, out]` weight layout. */
import * as tf from '@tensorflow/tfjs';
import { Module, type Parameter } from '../module.js';
import { uniformInit, type InitOptions } from './init.js';

/**
 * y = x·W + b over the last axis. `x` is `[..., in]`, `weight` is `[in, out]` (stored layout; PyTorch's
 * `[out, in]` transposed), `bias` `[out]`. Leading axes are folded into rows so the product is one 2-D
 * matMul without transpose flags (the fast path on wasm; and tfjs' matMul gradient throws for
 * broadcast batch dims). Returns `[..., out]`.
 */
export function linear(x: tf.Tensor, weight: tf.Tensor, bias?: tf.Tensor | null): tf.Tensor {
  const inF = weight.shape[0]!;
  const outF = weight.shape[1]!;
  if (weight.rank !== 2) throw new Error(`linear: weight must be [in, out], got [${weight.shape.join(', ')}]`);
  if (x.shape[x.rank - 1] !== inF)
    throw new Error(`linear: input last dim ${x.shape[x.rank - 1]} does not match weight in-features ${inF} (input [${x.shape.join(', ')}])`);
  return tf.tidy(() => {
    const lead = x.shape.slice(0, -1);
    const x2 = x.rank === 2 ? x : tf.reshape(x, [-1, inF]);
    let y = tf.matMul(x2, weight);
    if (bias) y = tf.add(y, bias);
    return x.rank === 2 ? y : tf.reshape(y, [...lead, outF]);
  });
}

export interface LinearOptions extends InitOptions {
  /** default true */
  bias?: boolean;
}

/** PyTorch nn.Linear: parameters `weight` (PyTorch `[out, in]`, stored `[in, out]`) and `bias` `[out]`. */
export class Linear extends Module {
  readonly weight: Parameter;
  readonly bias: Parameter | null;
  constructor(
    readonly inFeatures: number,
    readonly outFeatures: number,
    opts: LinearOptions = {},
  ) {
    super();
    const bound = 1 / Math.sqrt(inFeatures);
    this.weight = this.param('weight', () => uniformInit([inFeatures, outFeatures], bound, opts), { layout: 'linear' });
    this.bias = opts.bias ?? true ? this.param('bias', () => uniformInit([outFeatures], bound, opts)) : null;
  }
  /** `[..., in]` → `[..., out]` */
  forward(x: tf.Tensor): tf.Tensor {
    return linear(x, this.weight.value, this.bias?.value);
  }
}

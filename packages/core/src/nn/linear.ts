/** Linear layer with PyTorch names (`weight`, `bias`) and the stored `[in, out]` weight layout. */
import * as tf from '@tensorflow/tfjs';
import { Module, type Parameter } from '../module.js';
import { uniformInit, type InitOptions } from './init.js';
import { customOp } from './custom.js';

/**
 * y = x·W + b over the last axis. `x` is `[..., in]`, `weight` is `[in, out]` (stored layout; PyTorch's
 * `[out, in]` transposed), `bias` `[out]`. Leading axes are folded into rows so the product is one 2-D
 * matMul without transpose flags (the fast path on wasm; and tfjs' matMul gradient throws for
 * broadcast batch dims). Returns `[..., out]`.
 *
 * One op with a hand-written gradient that saves only `x` and `weight` (what dx = dy·Wᵀ and
 * dW = xᵀ·dy need); the autodiff form (`linearReference`) also keeps the matMul output alive for
 * the bias add's gradient and the input and output of both reshapes, about 2–3 extra `[rows, out]`
 * buffers per layer under a gradient tape. Gradients are computed only for the inputs that need one
 * (no dW for a frozen weight).
 */
export function linear(x: tf.Tensor, weight: tf.Tensor, bias?: tf.Tensor | null): tf.Tensor {
  const inF = weight.shape[0]!;
  const outF = weight.shape[1]!;
  if (weight.rank !== 2) throw new Error(`linear: weight must be [in, out], got [${weight.shape.join(', ')}]`);
  if (x.shape[x.rank - 1] !== inF)
    throw new Error(`linear: input last dim ${x.shape[x.rank - 1]} does not match weight in-features ${inF} (input [${x.shape.join(', ')}])`);
  // any other broadcastable bias shape takes the autodiff form (the custom gradient sums dy to [out])
  if (bias && (bias.rank !== 1 || bias.shape[0] !== outF)) return linearReference(x, weight, bias);
  return bias ? linearOp(x, weight, bias) : linearOp(x, weight);
}

const linearForward = ([x, w, b]: tf.Tensor[], save: tf.GradSaveFunc) => {
  const [inF, outF] = w!.shape as [number, number];
  const lead = x!.shape.slice(0, -1);
  const x2 = x!.rank === 2 ? x! : tf.reshape(x!, [-1, inF]);
  let y = tf.matMul(x2, w!);
  if (b) y = tf.add(y, b);
  save([x!, w!]);
  return {
    value: x!.rank === 2 ? y : tf.reshape(y, [...lead, outF]),
    gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => {
      const [xs, ws] = saved as [tf.Tensor, tf.Tensor];
      const dy2 = () => (dy.rank === 2 ? dy : tf.reshape(dy, [-1, outF]));
      const grads = [
        () => (xs.rank === 2 ? tf.matMul(dy2(), ws, false, true) : tf.reshape(tf.matMul(dy2(), ws, false, true), xs.shape)),
        () => tf.matMul(xs.rank === 2 ? xs : tf.reshape(xs, [-1, inF]), dy2(), true, false),
      ];
      if (b) grads.push(() => tf.sum(dy2(), 0));
      return grads;
    },
  };
};
const linearOp = customOp(linearForward);

/** The plain autodiff form of `linear` (reshape, matMul, add, reshape), for tests and the benchmark baseline. */
export function linearReference(x: tf.Tensor, weight: tf.Tensor, bias?: tf.Tensor | null): tf.Tensor {
  const inF = weight.shape[0]!;
  return tf.tidy(() => {
    const x2 = x.rank === 2 ? x : tf.reshape(x, [-1, inF]);
    let y = tf.matMul(x2, weight);
    if (bias) y = tf.add(y, bias);
    return x.rank === 2 ? y : tf.reshape(y, [...x.shape.slice(0, -1), weight.shape[1]!]);
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

/**
 * Activations with hand-written gradients (one saved tensor, the input, instead of the autodiff chain):
 * GELU exact (erf) and tanh forms, SiLU. Each is elementwise, any shape.
 */
import * as tf from '@tensorflow/tfjs';
import { Module } from '../module.js';
import { customOp } from './custom.js';

const SQRT1_2 = Math.SQRT1_2;
const INV_SQRT_2PI = 1 / Math.sqrt(2 * Math.PI);
const SQRT_2_OVER_PI = Math.sqrt(2 / Math.PI);
const GELU_C = 0.044715;

// Each op saves only its input x and recomputes its cheap elementwise intermediate (Φ(x) or σ) in the
// backward: one [.., hidden] buffer held per activation under a gradient tape instead of two (the
// output is not saved either: the next layer keeps what it needs). Gradients are thunks (custom.ts).
const cdfOf = (x: tf.Tensor) => tf.mul(0.5, tf.add(1, tf.erf(tf.mul(x, SQRT1_2))));
const geluErfOp = customOp(([x], save) => {
  save([x!]);
  return {
    value: tf.mul(x!, cdfOf(x!)),
    gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => [
      () => {
        const xs = saved[0]!;
        // d/dx x·Φ(x) = Φ(x) + x·φ(x)
        const pdf = tf.mul(INV_SQRT_2PI, tf.exp(tf.mul(tf.square(xs), -0.5)));
        return tf.mul(dy, tf.add(cdfOf(xs), tf.mul(xs, pdf)));
      },
    ],
  };
});

// 0.5·x·(1 + tanh(u)) = x·σ(2u), u = √(2/π)(x + 0.044715x³); sigmoid is ~5× faster than tanh on wasm
const sigma2u = (x: tf.Tensor) => tf.sigmoid(tf.mul(tf.mul(x, tf.add(1, tf.mul(tf.square(x), GELU_C))), 2 * SQRT_2_OVER_PI));
const geluTanhOp = customOp(([x], save) => {
  save([x!]);
  return {
    value: tf.mul(x!, sigma2u(x!)),
    gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => [
      () => {
        const xs = saved[0]!;
        const sg = sigma2u(xs);
        // d/dx x·σ(2u) = σ + x·σ(1−σ)·2u'(x), 2u' = 2√(2/π)(1 + 3·0.044715x²)
        const du2 = tf.mul(tf.add(1, tf.mul(tf.square(xs), 3 * GELU_C)), 2 * SQRT_2_OVER_PI);
        const ds = tf.mul(tf.mul(sg, tf.sub(1, sg)), tf.mul(xs, du2));
        return tf.mul(dy, tf.add(sg, ds));
      },
    ],
  };
});

const siluOp = customOp(([x], save) => {
  save([x!]);
  return {
    value: tf.mul(x!, tf.sigmoid(x!)),
    gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => [
      () => {
        const xs = saved[0]!;
        const sg = tf.sigmoid(xs);
        // σ(x)·(1 + x·(1 − σ(x)))
        return tf.mul(dy, tf.mul(sg, tf.add(1, tf.mul(xs, tf.sub(1, sg)))));
      },
    ],
  };
});

function checkFloat(x: tf.Tensor, what: string) {
  if (x.dtype !== 'float32') throw new Error(`${what}: expected a float32 tensor, got ${x.dtype}`);
}

/** GELU, exact form x·Φ(x) = 0.5·x·(1 + erf(x/√2)) (PyTorch `gelu`, approximate='none'). */
export function gelu(x: tf.Tensor): tf.Tensor {
  checkFloat(x, 'gelu');
  return geluErfOp(x);
}

/** GELU, tanh form 0.5·x·(1 + tanh(√(2/π)(x + 0.044715x³))) (PyTorch approximate='tanh', diffusers 'gelu-approximate'). */
export function geluTanh(x: tf.Tensor): tf.Tensor {
  checkFloat(x, 'geluTanh');
  return geluTanhOp(x);
}

/** SiLU (swish): x·σ(x). */
export function silu(x: tf.Tensor): tf.Tensor {
  checkFloat(x, 'silu');
  return siluOp(x);
}

/** The autodiff reference forms (no custom gradient), for tests and benchmarks. */
export const reference = {
  gelu: (x: tf.Tensor) => tf.tidy(() => tf.mul(tf.mul(x, 0.5), tf.add(1, tf.erf(tf.mul(x, SQRT1_2))))),
  geluTanh: (x: tf.Tensor) =>
    tf.tidy(() => tf.mul(tf.mul(x, 0.5), tf.add(1, tf.tanh(tf.mul(tf.add(x, tf.mul(tf.pow(x, 3), GELU_C)), SQRT_2_OVER_PI))))),
  silu: (x: tf.Tensor) => tf.tidy(() => tf.mul(x, tf.sigmoid(x))),
};

export type ActivationName = 'gelu' | 'gelu_tanh' | 'silu' | 'relu' | 'identity';

/** The activation function for a name (also accepts diffusers' 'gelu-approximate' and PyTorch's 'swish'). */
export function activation(name: ActivationName | 'gelu-approximate' | 'swish' | 'quick_gelu' | string): (x: tf.Tensor) => tf.Tensor {
  switch (name) {
    case 'gelu':
      return gelu;
    case 'gelu_tanh':
    case 'gelu-approximate':
    case 'gelu_new':
    case 'gelu_pytorch_tanh':
      return geluTanh;
    case 'silu':
    case 'swish':
      return silu;
    case 'relu':
      return tf.relu;
    case 'identity':
      return (x) => x;
    default:
      throw new Error(`activation: unknown activation ${JSON.stringify(name)}; expected gelu, gelu_tanh, silu, relu or identity`);
  }
}

/** An activation as a parameterless module (for Sequential, e.g. `projectors.0.{0,2,4}` with SiLU at 1, 3). */
export class Activation extends Module {
  private readonly fn: (x: tf.Tensor) => tf.Tensor;
  constructor(readonly kind: ActivationName | string) {
    super();
    this.fn = activation(kind);
  }
  forward(x: tf.Tensor): tf.Tensor {
    return this.fn(x);
  }
}

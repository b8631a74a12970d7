/**
 * Inverted dropout, as torch.nn.Dropout in training mode: each entry is zeroed with probability `p` and the
 * others are scaled by 1/(1−p), so the expectation is unchanged. Masks are drawn from a seeded {@link Rng}
 * (not tf's global seed) so that training is reproducible and resumes bit-exactly. `p = 0` returns `x`.
 */
import * as tf from '@tensorflow/tfjs';
import type { Rng } from '../rng.js';

function checkP(p: number, what: string): void {
  if (!(p >= 0 && p < 1)) throw new RangeError(`${what}: dropout probability must be in [0, 1), got ${p}`);
}

/** The mask of one dropout draw: `[...shape]` float32 with entries 0 or 1/(1−p). */
export function dropoutMask(shape: number[], p: number, rng: Rng): tf.Tensor {
  checkP(p, 'dropoutMask');
  const size = shape.reduce((a, b) => a * b, 1);
  const u = rng.fillUniform(new Float32Array(size));
  const keep = 1 / (1 - p);
  for (let i = 0; i < size; i++) u[i] = u[i]! >= p ? keep : 0;
  return tf.tensor(u, shape, 'float32');
}

/** `x · mask` with a fresh mask from `rng` (gradient: `dy · mask`). */
export function dropout(x: tf.Tensor, p: number, rng: Rng): tf.Tensor {
  checkP(p, 'dropout');
  if (p === 0) return x;
  return tf.tidy(() => tf.mul(x, dropoutMask(x.shape, p, rng)));
}

/** A dropout function bound to `p` and a stream (what a module's forward takes in training mode). */
export type DropoutFn = (x: tf.Tensor) => tf.Tensor;

/** Bind `p` and `rng`: `(x) => dropout(x, p, rng)`. */
export function dropoutFn(p: number, rng: Rng): DropoutFn {
  checkP(p, 'dropoutFn');
  return (x) => dropout(x, p, rng);
}

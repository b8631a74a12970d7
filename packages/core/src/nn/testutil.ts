/** Test helpers for the nn tests (not part of the public API). */
import * as tf from '@tensorflow/tfjs';
import { Rng } from '../rng.js';

export const rand = (shape: number[], seed = 0, std = 1) => Rng.fromSeed(seed).randomTensor(shape, 'normal', { std });

export function maxAbsDiff(a: tf.Tensor, b: tf.Tensor): number {
  if (a.shape.join() !== b.shape.join()) throw new Error(`maxAbsDiff: shapes [${a.shape}] vs [${b.shape}]`);
  return tf.tidy(() => tf.max(tf.abs(tf.sub(a, b))).dataSync()[0]!);
}

export function maxAbs(a: tf.Tensor): number {
  return tf.tidy(() => tf.max(tf.abs(a)).dataSync()[0]!);
}

/**
 * Directional finite-difference check of the gradient of L(xs) = Σ f(xs)·r (r a fixed random
 * weighting) with respect to every input, along `dirs` random directions: returns the worst relative
 * error |fd − ⟨g, u⟩| / max(|fd|, scale).
 */
export function gradCheck(f: (...xs: tf.Tensor[]) => tf.Tensor, xs: tf.Tensor[], opts: { eps?: number; dirs?: number; seed?: number } = {}): number {
  const eps = opts.eps ?? 1e-2;
  const rng = Rng.fromSeed(opts.seed ?? 99);
  return tf.tidy(() => {
    const y0 = f(...xs);
    const r = rng.randomTensor(y0.shape);
    const loss = (...a: tf.Tensor[]) => tf.sum(tf.mul(f(...a), r)) as tf.Scalar;
    const grads = tf.grads(loss)(xs);
    let worst = 0;
    for (let d = 0; d < (opts.dirs ?? 3); d++) {
      const us = xs.map((x) => rng.randomTensor(x.shape));
      const plus = loss(...xs.map((x, i) => tf.add(x, tf.mul(us[i]!, eps)))).dataSync()[0]!;
      const minus = loss(...xs.map((x, i) => tf.sub(x, tf.mul(us[i]!, eps)))).dataSync()[0]!;
      const fd = (plus - minus) / (2 * eps);
      const an = grads.reduce((s, g, i) => s + tf.sum(tf.mul(g, us[i]!)).dataSync()[0]!, 0);
      worst = Math.max(worst, Math.abs(fd - an) / Math.max(Math.abs(fd), 1));
    }
    return worst;
  });
}

/** core's modulate / gatedResidual (custom.ts): the same values and gradients as tfjs autodiff over the plain ops. */
import * as tf from '@tensorflow/tfjs';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { gatedResidual, modulate } from './custom.js';
import { profileOps } from '../op-profile.js';

const bits = (t: tf.Tensor) => Buffer.from(t.dataSync().buffer);
const sameBits = (a: tf.Tensor, b: tf.Tensor) => a.shape.join() === b.shape.join() && bits(a).equals(bits(b));

describe('modulate and gatedResidual (AdaLN chains with written-out gradients)', () => {
  const shapes = fc.record({ B: fc.integer({ min: 1, max: 3 }), N: fc.integer({ min: 1, max: 9 }), D: fc.integer({ min: 1, max: 17 }), seed: fc.integer({ min: 1, max: 2 ** 30 }) });

  it('modulate: value and the gradients of x, scale, shift bit-identical to autodiff of x·(1+scale)+shift', () => {
    fc.assert(
      fc.property(shapes, ({ B, N, D, seed }) => {
        const x = tf.randomNormal([B, N, D], 0, 1, 'float32', seed);
        const sc = tf.randomNormal([B, 1, D], 0, 1, 'float32', seed + 1);
        const sh = tf.randomNormal([B, 1, D], 0, 1, 'float32', seed + 2);
        const w = tf.randomNormal([B, N, D], 0, 1, 'float32', seed + 3); // a weighted sum as the loss: dy = w
        const loss = (f: (a: tf.Tensor, b: tf.Tensor, c: tf.Tensor) => tf.Tensor) => (a: tf.Tensor, b: tf.Tensor, c: tf.Tensor) => tf.sum(tf.mul(f(a, b, c), w));
        const ours = tf.grads(loss(modulate))([x, sc, sh]);
        const ref = tf.grads(loss((a, b, c) => tf.add(tf.mul(a, tf.add(b, 1)), c)))([x, sc, sh]);
        const v1 = modulate(x, sc, sh);
        const v2 = tf.add(tf.mul(x, tf.add(sc, 1)), sh);
        const ok = sameBits(v1, v2) && ours.every((g, i) => sameBits(g, ref[i]!));
        tf.dispose([x, sc, sh, w, v1, v2, ...ours, ...ref]);
        return ok;
      }),
      { numRuns: 25 },
    );
  });

  it('gatedResidual: value and the gradients of h, gate, a bit-identical to autodiff of h + gate·a', () => {
    fc.assert(
      fc.property(shapes, ({ B, N, D, seed }) => {
        const h = tf.randomNormal([B, N, D], 0, 1, 'float32', seed);
        const g = tf.randomNormal([B, 1, D], 0, 1, 'float32', seed + 1);
        const a = tf.randomNormal([B, N, D], 0, 1, 'float32', seed + 2);
        const w = tf.randomNormal([B, N, D], 0, 1, 'float32', seed + 3);
        const loss = (f: (p: tf.Tensor, q: tf.Tensor, r: tf.Tensor) => tf.Tensor) => (p: tf.Tensor, q: tf.Tensor, r: tf.Tensor) => tf.sum(tf.mul(f(p, q, r), w));
        const ours = tf.grads(loss(gatedResidual))([h, g, a]);
        const ref = tf.grads(loss((p, q, r) => tf.add(p, tf.mul(q, r))))([h, g, a]);
        const ok = ours.every((x, i) => sameBits(x, ref[i]!));
        tf.dispose([h, g, a, w, ...ours, ...ref]);
        return ok;
      }),
      { numRuns: 25 },
    );
  });

  it('the gradients take fewer kernels than autodiff (modulate 4 vs 9, gatedResidual 3 vs 6, plus the scopes)', () => {
    const x = tf.randomNormal([2, 5, 8]);
    const s = tf.randomNormal([2, 1, 8]);
    const kernels = (f: () => tf.Tensor[]) => {
      const p = profileOps(() => {
        const r = f();
        tf.dispose(r);
      });
      return p.kernels.reduce((n, k) => n + k.count, 0);
    };
    const mOurs = kernels(() => tf.grads((a: tf.Tensor, b: tf.Tensor, c: tf.Tensor) => tf.sum(modulate(a, b, c)))([x, s, s]));
    const mRef = kernels(() => tf.grads((a: tf.Tensor, b: tf.Tensor, c: tf.Tensor) => tf.sum(tf.add(tf.mul(a, tf.add(b, 1)), c)))([x, s, s]));
    const gOurs = kernels(() => tf.grads((a: tf.Tensor, b: tf.Tensor, c: tf.Tensor) => tf.sum(gatedResidual(a, b, c)))([x, s, x]));
    const gRef = kernels(() => tf.grads((a: tf.Tensor, b: tf.Tensor, c: tf.Tensor) => tf.sum(tf.add(a, tf.mul(b, c))))([x, s, x]));
    expect(mOurs).toBeLessThan(mRef);
    expect(gOurs).toBeLessThan(gRef);
    expect(() => modulate(x, tf.zeros([3, 1, 8]), s)).toThrow();
    tf.dispose([x, s]);
  });
});

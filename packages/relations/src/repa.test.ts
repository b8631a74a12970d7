import * as tf from '@tensorflow/tfjs';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { tensorLeakAcross } from '@vrepa/core';
import { l2Normalize, repaLoss } from './index.js';
import { normalize64, rng } from './testing/reference64.js';

function repa64(s: ArrayLike<number>, t: ArrayLike<number>, rows: number, D: number): number {
  const a = normalize64(s, rows, D);
  const b = normalize64(t, rows, D);
  let acc = 0;
  for (let i = 0; i < rows * D; i++) acc -= a[i]! * b[i]!;
  return acc / rows;
}

describe('repaLoss', () => {
  it('equals −mean cos in float64, lies in [−1, 1], and its gradient matches finite differences', () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 2 }), fc.integer({ min: 1, max: 6 }), fc.integer({ min: 1, max: 5 }), fc.integer({ min: 0, max: 1e9 }), (B, N, D, seed) => {
        const { normal } = rng(seed);
        const s = Float32Array.from({ length: B * N * D }, normal);
        const t = Float32Array.from({ length: B * N * D }, normal);
        const st = tf.tensor3d(s, [B, N, D]);
        const tt = tf.tensor3d(t, [B, N, D]);
        const { value, grad } = tf.valueAndGrad((x: tf.Tensor) => repaLoss(x as tf.Tensor3D, tt))(st);
        const v = value.dataSync()[0]!;
        const g = grad.dataSync();
        tf.dispose([st, tt, value, grad]);
        const want = repa64(s, t, B * N, D);
        expect(Math.abs(v - want)).toBeLessThan(1e-6);
        expect(Math.abs(v)).toBeLessThanOrEqual(1 + 1e-6);
        const x = Float64Array.from(s);
        const h = 1e-6;
        for (let i = 0; i < x.length; i++) {
          const x0 = x[i]!;
          x[i] = x0 + h;
          const up = repa64(x, t, B * N, D);
          x[i] = x0 - h;
          const dn = repa64(x, t, B * N, D);
          x[i] = x0;
          expect(Math.abs(g[i]! - (up - dn) / (2 * h))).toBeLessThan(1e-4);
        }
      }),
      { numRuns: 20 },
    );
  });

  it('is −1 for identical directions (any positive scaling) and the teacher gets no gradient', () => {
    const t = tf.randomNormal([2, 5, 4]) as tf.Tensor3D;
    const s = tf.mul(t, 3.5) as tf.Tensor3D;
    expect(repaLoss(s, t).dataSync()[0]).toBeCloseTo(-1, 6);
    const gt = tf.grad((y: tf.Tensor) => repaLoss(s, y as tf.Tensor3D))(t);
    expect(tf.max(tf.abs(gt)).dataSync()[0]).toBe(0);
    tf.dispose([t, s, gt]);
  });

  it('l2Normalize matches torch F.normalize including zero rows (gradient dn/eps there)', () => {
    const x = tf.tensor2d([[3, 4], [0, 0]]);
    expect(Array.from(l2Normalize(x).dataSync())).toEqual([0.6000000238418579, 0.800000011920929, 0, 0]);
    const g = tf.grad((v: tf.Tensor) => tf.sum(tf.mul(l2Normalize(v), tf.tensor2d([[1, 0], [1, 2]]))))(x).dataSync();
    // row 1: (e1 − n·(n·e1))/5 = ([1,0] − 0.6·[0.6,0.8])/5 = [0.128, −0.096]; row 2: [1,2]/1e-12
    expect(g[0]).toBeCloseTo(0.128, 6);
    expect(g[1]).toBeCloseTo(-0.096, 6);
    expect(g[2]! / 1e12).toBeCloseTo(1, 5);
    expect(g[3]! / 1e12).toBeCloseTo(2, 5);
    x.dispose();
  });

  it('leaks no tensors (forward and gradient)', async () => {
    const s = tf.randomNormal([2, 5, 4]) as tf.Tensor3D;
    const t = tf.randomNormal([2, 5, 4]) as tf.Tensor3D;
    expect(await tensorLeakAcross(() => repaLoss(s, t))).toBe(0);
    expect(await tensorLeakAcross(() => tf.valueAndGrad((x: tf.Tensor) => repaLoss(x as tf.Tensor3D, t))(s))).toBe(0);
    tf.dispose([s, t]);
  });
});

import * as tf from '@tensorflow/tfjs';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { Rng } from '../rng.js';
import { tensorLeakAcross } from '../leaks.js';
import { dropout, dropoutMask } from './dropout.js';

describe('dropout (inverted, torch.nn.Dropout in training mode)', () => {
  it('mask entries are 0 or 1/(1−p), the zero fraction is p, and the mean is kept (statistical bounds)', () => {
    fc.assert(
      fc.property(fc.double({ min: 0.05, max: 0.9, noNaN: true }), fc.integer({ min: 0, max: 1000 }), (p, seed) => {
        const n = 20000;
        const m = dropoutMask([n], p, Rng.fromSeed(seed));
        const v = m.dataSync();
        m.dispose();
        const keep = Math.fround(1 / (1 - p));
        let zeros = 0;
        let sum = 0;
        for (const x of v) {
          if (x === 0) zeros++;
          else expect(x).toBe(keep);
          sum += x;
        }
        const sd = Math.sqrt(p * (1 - p) / n);
        expect(Math.abs(zeros / n - p)).toBeLessThan(5 * sd);
        expect(Math.abs(sum / n - 1)).toBeLessThan(5 * sd / (1 - p));
      }),
      { numRuns: 20 },
    );
  });

  it('p = 0 is the identity; the same seed gives the same mask; the stream advances between calls', () => {
    const x = tf.randomNormal([4, 5]);
    expect(dropout(x, 0, Rng.fromSeed(1))).toBe(x);
    const a = dropout(x, 0.3, Rng.fromSeed(7));
    const b = dropout(x, 0.3, Rng.fromSeed(7));
    expect(Array.from(a.dataSync())).toEqual(Array.from(b.dataSync()));
    const r = Rng.fromSeed(7);
    const c1 = dropoutMask([64], 0.5, r);
    const c2 = dropoutMask([64], 0.5, r);
    expect(Array.from(c1.dataSync())).not.toEqual(Array.from(c2.dataSync()));
    tf.dispose([x, a, b, c1, c2]);
  });

  it('the gradient is dy · mask', () => {
    const x = tf.randomNormal([3, 7], 0, 1, 'float32', 2);
    const mask = dropoutMask([3, 7], 0.4, Rng.fromSeed(9));
    const g = tf.grad((t: tf.Tensor) => tf.sum(tf.mul(dropout(t, 0.4, Rng.fromSeed(9)), 3)))(x);
    expect(Array.from(g.dataSync())).toEqual(Array.from(tf.mul(mask, 3).dataSync()));
    tf.dispose([x, mask, g]);
  });

  it('rejects p outside [0, 1) and leaks no tensors', async () => {
    const x = tf.ones([2, 2]);
    expect(() => dropout(x, 1, Rng.fromSeed(0))).toThrow(/\[0, 1\), got 1/);
    expect(() => dropout(x, -0.1, Rng.fromSeed(0))).toThrow(/got -0.1/);
    const r = Rng.fromSeed(3);
    expect(await tensorLeakAcross(() => dropout(x, 0.5, r))).toBe(0);
    x.dispose();
  });
});

import * as tf from '@tensorflow/tfjs';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { GroupNorm, LayerNorm, RMSNorm, groupNorm, groupNormInference, layerNorm, layerNormReference, rmsNorm } from './norm.js';
import { Rng } from '../rng.js';
import { tensorLeakAcross } from '../leaks.js';
import { gradCheck, maxAbsDiff, rand } from './testutil.js';

describe('layerNorm', () => {
  it('each row has mean 0 and variance 1 (no affine), for random shapes and scales', () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 5 }), fc.integer({ min: 2, max: 40 }), fc.double({ min: 0.1, max: 100, noNaN: true }), fc.nat(), (rows, c, s, seed) => {
        tf.tidy(() => {
          const x = tf.add(rand([rows, c], seed, s), 3 * s);
          const y = layerNorm(x, null, null, 1e-12);
          const { mean, variance } = tf.moments(y, -1);
          // float32 cancellation in x − mean: error ≈ ε·max|x| / (row std); allow a few ulps of that
          const rowStd = tf.sqrt(tf.moments(x, -1).variance);
          const cond = tf.max(tf.abs(x)).dataSync()[0]! / tf.min(rowStd).dataSync()[0]!;
          const tol = 1e-5 + 8 * 1.2e-7 * cond;
          expect(tf.max(tf.abs(mean)).dataSync()[0]).toBeLessThan(tol);
          expect(tf.max(tf.abs(tf.sub(variance, 1))).dataSync()[0]).toBeLessThan(10 * tol);
        });
      }),
      { numRuns: 30 },
    );
  });

  it('hand-derived row: [1, 2, 3, 4] → (x − 2.5)/√1.25, then ·w + b', () => {
    const y = layerNorm(tf.tensor2d([[1, 2, 3, 4]]), tf.tensor1d([1, 2, 1, 1]), tf.tensor1d([0, 0, 0, 1]), 0).dataSync();
    const s = Math.sqrt(1.25);
    expect(Array.from(y).map((v) => +v.toFixed(5))).toEqual([-1.5 / s, (2 * -0.5) / s, 0.5 / s, 1.5 / s + 1].map((v) => +v.toFixed(5)));
  });

  it('custom gradient (x, weight, bias) equals autodiff of the tf.moments form and finite differences', () => {
    const x = rand([2, 6, 24], 1, 3);
    const w = tf.add(rand([24], 2, 0.3), 1);
    const b = rand([24], 3, 0.3);
    const f = (a: tf.Tensor, ww: tf.Tensor, bb: tf.Tensor) => layerNorm(a, ww, bb, 1e-5);
    const fr = (a: tf.Tensor, ww: tf.Tensor, bb: tf.Tensor) => layerNormReference(a, ww, bb, 1e-5);
    expect(maxAbsDiff(f(x, w, b), fr(x, w, b))).toBeLessThan(1e-5);
    const r = rand([2, 6, 24], 4);
    const g = tf.grads((a: tf.Tensor, ww: tf.Tensor, bb: tf.Tensor) => tf.sum(tf.mul(f(a, ww, bb), r)))([x, w, b]);
    const gr = tf.grads((a: tf.Tensor, ww: tf.Tensor, bb: tf.Tensor) => tf.sum(tf.mul(fr(a, ww, bb), r)))([x, w, b]);
    g.forEach((gi, i) => expect(maxAbsDiff(gi, gr[i]!)).toBeLessThan(1e-4));
    expect(gradCheck(f, [x, w, b], { eps: 1e-2 })).toBeLessThan(1e-2);
    // without affine
    const g0 = tf.grad((a: tf.Tensor) => tf.sum(tf.mul(layerNorm(a, null, null), r)))(x);
    const g0r = tf.grad((a: tf.Tensor) => tf.sum(tf.mul(layerNormReference(a), r)))(x);
    expect(maxAbsDiff(g0, g0r)).toBeLessThan(1e-4);
    tf.dispose([x, w, b, r, ...g, ...gr, g0, g0r]);
  });

  it('LayerNorm module: PyTorch names, eps, optional affine', () => {
    const m = new LayerNorm(8, { eps: 1e-6 });
    expect([...m.stateDictShapes().keys()]).toEqual(['weight', 'bias']);
    const n = new LayerNorm(8, { affine: false });
    expect(n.numParameters()).toBe(0);
    m.dispose();
  });
});

describe('groupNorm', () => {
  it('with groups = C equals per-channel instance norm over all positions', () => {
    const x = rand([2, 3, 4, 5, 6], 5, 2);
    const y = groupNorm(x, 6, null, null, 1e-5);
    const { mean, variance } = tf.moments(x, [1, 2, 3], true);
    const inst = tf.div(tf.sub(x, mean), tf.sqrt(tf.add(variance, 1e-5)));
    expect(maxAbsDiff(y, inst)).toBeLessThan(1e-5);
    tf.dispose([x, y, mean, variance, inst]);
  });

  it('with one group equals layer norm over (positions, channels) of each sample', () => {
    const x = rand([3, 7, 8], 6, 2);
    const y = groupNorm(x, 1, null, null, 1e-5);
    const ln = tf.reshape(layerNorm(tf.reshape(x, [3, 56]), null, null, 1e-5), [3, 7, 8]);
    expect(maxAbsDiff(y, ln)).toBeLessThan(1e-5);
  });

  it('groups are contiguous channel blocks (PyTorch order), affine per channel', () => {
    // C = 4, G = 2: channels {0,1} and {2,3}; one position. Group 0 = [1, 3] → [−1, 1]; group 1 = [10, 10] → [0, 0]
    const y = groupNorm(tf.tensor3d([[[1, 3, 10, 10]]]), 2, tf.tensor1d([1, 2, 3, 4]), tf.tensor1d([0, 0, 1, 1]), 1e-10).dataSync();
    [-1, 2, 1, 1].forEach((v, i) => expect(y[i]).toBeCloseTo(v, 6));
  });

  it('GroupNorm module gradient matches finite differences, and a bad group count is named', () => {
    const m = new GroupNorm(2, 4);
    const x = rand([2, 3, 3, 4], 7);
    expect(gradCheck((a) => m.forward(a), [x])).toBeLessThan(1e-2);
    expect(() => groupNorm(x, 3)).toThrow(/channels 4 must be divisible by groups 3/);
    m.dispose();
    x.dispose();
  });
});

describe('rmsNorm', () => {
  it('divides by the root mean square without subtracting the mean (T5)', () => {
    // [3, 4]: rms = √12.5
    const y = rmsNorm(tf.tensor2d([[3, 4]]), tf.tensor1d([1, 2]), 0).dataSync();
    expect(y[0]).toBeCloseTo(3 / Math.sqrt(12.5), 6);
    expect(y[1]).toBeCloseTo(8 / Math.sqrt(12.5), 6);
    const m = new RMSNorm(2);
    expect([...m.stateDictShapes().keys()]).toEqual(['weight']);
    expect(m.eps).toBe(1e-6);
    m.dispose();
  });
});

describe('norms are tidy-clean', () => {
  it('forward and backward leak nothing', async () => {
    const x = rand([4, 8]);
    const ln = new LayerNorm(8);
    const gn = new GroupNorm(4, 8);
    const rn = new RMSNorm(8);
    for (const m of [ln, gn, rn]) {
      expect(await tensorLeakAcross(() => m.forward(x))).toBe(0);
      expect(await tensorLeakAcross(() => tf.variableGrads(() => tf.sum(m.forward(x)) as tf.Scalar, m.parameters()))).toBe(0);
    }
    [ln, gn, rn].forEach((m) => m.dispose());
    x.dispose();
  });
});

describe('groupNormInference', () => {
  it('equals groupNorm (float32 rounding), lower peak memory (tf.profile), no leaks', async () => {
    const r = Rng.fromSeed(3);
    const x = tf.add(r.randomTensor([2, 3, 5, 4, 8]), 2);
    const w = r.randomTensor([8]);
    const b = r.randomTensor([8]);
    const want = groupNorm(x, 4, w, b, 1e-6);
    const got = groupNormInference(x, 4, w, b, 1e-6);
    expect(got.shape).toEqual(x.shape);
    expect(tf.max(tf.abs(tf.sub(got, want))).dataSync()[0]).toBeLessThan(1e-5);
    const noAffine = groupNormInference(x, 2);
    expect(tf.max(tf.abs(tf.sub(noAffine, groupNorm(x, 2)))).dataSync()[0]).toBeLessThan(1e-5);
    const peak = async (f: () => tf.Tensor) => (await tf.profile(f)).peakBytes;
    expect(await peak(() => groupNormInference(x, 4, w, b))).toBeLessThan(await peak(() => groupNorm(x, 4, w, b)));
    expect(await tensorLeakAcross(() => groupNormInference(x, 4, w, b))).toBe(0);
    expect(() => groupNormInference(x, 3)).toThrow(/channels 8 must be divisible by groups 3/);
    tf.dispose([x, w, b, want, got, noAffine]);
  });
});

import * as tf from '@tensorflow/tfjs';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { tensorLeakAcross } from '@vrepa/core';
import { autoChunkSize, relationMatrix, relationRows, trdFormWeights, trdLoss, trdLossNaive, type TrdOptions } from './trd.js';
import type { TrdForm } from './validate.js';
import { kinkGap64, randomOrthogonal, relations64, rng, trd64, trdFiniteDiff64, type Pair64 } from './testing/reference64.js';

const FORMS: TrdForm[] = ['official', 'paper', 'spatial', 'temporal'];
const RUNS = 10;

interface Case {
  B: number;
  F: number;
  h: number;
  w: number;
  Ds: number;
  Dt: number;
  margin: number;
  chunkFrac: number;
  seed: number;
}

const caseArb = (maxF = 4, maxHW = 3, maxD = 6): fc.Arbitrary<Case> =>
  fc.record({
    B: fc.integer({ min: 1, max: 2 }),
    F: fc.integer({ min: 1, max: maxF }),
    h: fc.integer({ min: 1, max: maxHW }),
    w: fc.integer({ min: 1, max: maxHW }),
    Ds: fc.integer({ min: 1, max: maxD }),
    Dt: fc.integer({ min: 1, max: maxD }),
    margin: fc.oneof(fc.constant(0), fc.double({ min: 0, max: 0.6, noNaN: true })),
    chunkFrac: fc.double({ min: 0, max: 1, noNaN: true }),
    seed: fc.integer({ min: 0, max: 2 ** 31 - 1 }),
  });

/** Float32-exact random tokens (so the float64 reference sees exactly what tf sees). */
function tokens(B: number, N: number, D: number, seed: number): Float32Array {
  const { normal } = rng(seed);
  return Float32Array.from({ length: B * N * D }, normal);
}

function setup(c: Case) {
  const N = c.F * c.h * c.w;
  const s = tokens(c.B, N, c.Ds, c.seed);
  const t = tokens(c.B, N, c.Dt, c.seed + 7919);
  const chunk = 1 + Math.floor(c.chunkFrac * (N - 1));
  const pair: Pair64 = { B: c.B, N, Ds: c.Ds, Dt: c.Dt, student: Float64Array.from(s), teacher: Float64Array.from(t), frames: c.F };
  const grid = { frames: c.F, height: c.h, width: c.w };
  return { N, s, t, chunk, pair, grid };
}

const T3 = (x: ArrayLike<number>, B: number, N: number, D: number) => tf.tensor3d(Float32Array.from(x), [B, N, D]);

function lossOf(s: ArrayLike<number>, t: ArrayLike<number>, c: Case, opts: Omit<TrdOptions, 'grid'>, naive = false): number {
  const N = c.F * c.h * c.w;
  return tf.tidy(() => {
    const fn = naive ? trdLossNaive : trdLoss;
    return fn(T3(s, c.B, N, c.Ds), T3(t, c.B, N, c.Dt), { grid: { frames: c.F, height: c.h, width: c.w }, ...opts });
  }).dataSync()[0]!;
}

function gradOf(s: ArrayLike<number>, t: ArrayLike<number>, c: Case, opts: Omit<TrdOptions, 'grid'>, naive = false) {
  const N = c.F * c.h * c.w;
  const st = T3(s, c.B, N, c.Ds);
  const tt = T3(t, c.B, N, c.Dt);
  const fn = naive ? trdLossNaive : trdLoss;
  const { value, grad } = tf.valueAndGrad((x: tf.Tensor) => fn(x as tf.Tensor3D, tt, { grid: { frames: c.F, height: c.h, width: c.w }, ...opts }))(st);
  const out = { value: value.dataSync()[0]!, grad: Float64Array.from(grad.dataSync()) };
  tf.dispose([st, tt, value, grad]);
  return out;
}

const formsFor = (F: number) => FORMS.filter((f) => f !== 'temporal' || F >= 2);
// Relation entries are float32 cosines in [−1, 1], each off by a few ulps of 1 (2^-23); where the exact loss is ~0
// (a single token's diagonal, margin 0) two evaluation orders can differ by that much in absolute terms.
const ABS = 4 * 2 ** -23;
const close = (a: number, b: number, rel = 1e-5, abs = ABS) => Math.abs(a - b) <= abs + rel * Math.max(Math.abs(a), Math.abs(b));
function maxAbs(a: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]!));
  return m;
}
function maxDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
}

describe('relationMatrix', () => {
  it('is symmetric with unit diagonal and entries in [−1, 1], and equals the float64 reference', () => {
    fc.assert(
      fc.property(caseArb(3, 4, 8), (c) => {
        const { N, s } = setup(c);
        const S = tf.tidy(() => relationMatrix(T3(s, c.B, N, c.Ds)));
        const v = S.dataSync();
        S.dispose();
        const ref = relations64(s, c.B, N, c.Ds);
        for (let b = 0; b < c.B; b++)
          for (let i = 0; i < N; i++) {
            expect(Math.abs(v[(b * N + i) * N + i]! - 1)).toBeLessThan(2e-6);
            for (let j = 0; j < N; j++) {
              const x = v[(b * N + i) * N + j]!;
              expect(Math.abs(x - v[(b * N + j) * N + i]!)).toBeLessThan(1e-6);
              expect(Math.abs(x)).toBeLessThanOrEqual(1 + 2e-6);
            }
          }
        expect(maxDiff(v, ref)).toBeLessThan(2e-6);
      }),
      { numRuns: RUNS },
    );
  });
});

describe('relationRows', () => {
  it('equals the selected rows of the float64 relation matrix, in the order asked, without leaking tensors', () => {
    fc.assert(
      fc.property(caseArb(3, 4, 8), fc.array(fc.nat(), { minLength: 1, maxLength: 5 }), (c, picks) => {
        const { N, s } = setup(c);
        const rows = picks.map((p) => p % N);
        const x = T3(s, c.B, N, c.Ds);
        const before = tf.memory().numTensors;
        const R = relationRows(x, rows);
        expect(tf.memory().numTensors).toBe(before + 1);
        expect(R.shape).toEqual([c.B, rows.length, N]);
        const v = R.dataSync();
        tf.dispose([R, x]);
        const ref = relations64(s, c.B, N, c.Ds);
        for (let b = 0; b < c.B; b++)
          rows.forEach((r, k) => {
            for (let j = 0; j < N; j++) expect(Math.abs(v[(b * rows.length + k) * N + j]! - ref[(b * N + r) * N + j]!)).toBeLessThan(2e-6);
          });
      }),
      { numRuns: RUNS },
    );
  });

  it('names a bad row index', () => {
    const x = tf.ones([1, 6, 2]) as tf.Tensor3D;
    expect(() => relationRows(x, [6])).toThrow('relationRows: row 6 is not a token index in 0..5');
    expect(() => relationRows(x, [])).toThrow(/non-empty/);
    x.dispose();
  });
});

describe('trdLoss properties (fast-check over B, F, h, w, D, margin, chunk sizes)', () => {
  it('equals the independent float64 reference for every form, at any chunk size', () => {
    fc.assert(
      fc.property(caseArb(), (c) => {
        const { s, t, chunk, pair } = setup(c);
        for (const form of formsFor(c.F)) {
          const want = trd64(pair, c.margin, form);
          expect(close(lossOf(s, t, c, { margin: c.margin, form, chunkSize: chunk }), want, 2e-5, ABS), `${form}`).toBe(true);
          expect(close(lossOf(s, t, c, { margin: c.margin, form }, true), want, 2e-5, ABS), `${form} naive`).toBe(true);
        }
      }),
      { numRuns: RUNS },
    );
  });

  it('is ≥ 0 for every form', () => {
    fc.assert(
      fc.property(caseArb(), (c) => {
        const { s, t, chunk } = setup(c);
        for (const form of formsFor(c.F)) expect(lossOf(s, t, c, { margin: c.margin, form, chunkSize: chunk })).toBeGreaterThanOrEqual(0);
      }),
      { numRuns: RUNS },
    );
  });

  it('is 0 when the relations agree: student = teacher·R (R orthogonal) with positive per-token rescaling', () => {
    fc.assert(
      fc.property(caseArb(), fc.double({ min: 1e-3, max: 0.5, noNaN: true }), (c0, margin) => {
        const c = { ...c0, Ds: c0.Dt, margin };
        const { N, t, chunk } = setup(c);
        const D = c.Dt;
        const R = randomOrthogonal(D, c.seed + 1);
        const { uniform } = rng(c.seed + 2);
        const s = new Float32Array(c.B * N * D);
        for (let r = 0; r < c.B * N; r++) {
          const scale = 0.1 + 10 * uniform();
          for (let k = 0; k < D; k++) {
            let acc = 0;
            for (let j = 0; j < D; j++) acc += t[r * D + j]! * R[j * D + k]!;
            s[r * D + k] = scale * acc;
          }
        }
        for (const form of formsFor(c.F)) expect(lossOf(s, t, c, { margin, form, chunkSize: chunk })).toBeLessThanOrEqual(1e-9);
      }),
      { numRuns: RUNS },
    );
  });

  it('is symmetric in (student, teacher)', () => {
    fc.assert(
      fc.property(caseArb(), (c) => {
        const { s, t, chunk } = setup(c);
        const swapped = { ...c, Ds: c.Dt, Dt: c.Ds };
        for (const form of formsFor(c.F)) {
          const a = lossOf(s, t, c, { margin: c.margin, form, chunkSize: chunk });
          const b = lossOf(t, s, swapped, { margin: c.margin, form, chunkSize: chunk });
          expect(close(a, b, 1e-5, ABS), `${form}: ${a} vs ${b}`).toBe(true);
        }
      }),
      { numRuns: RUNS },
    );
  });

  it('is non-increasing in the margin', () => {
    fc.assert(
      fc.property(caseArb(), fc.double({ min: 0, max: 0.6, noNaN: true }), (c, m2) => {
        const { s, t, chunk } = setup(c);
        const [lo, hi] = c.margin <= m2 ? [c.margin, m2] : [m2, c.margin];
        for (const form of formsFor(c.F)) {
          const a = lossOf(s, t, c, { margin: lo, form, chunkSize: chunk });
          const b = lossOf(s, t, c, { margin: hi, form, chunkSize: chunk });
          expect(b).toBeLessThanOrEqual(a + 1e-6 * Math.abs(a) + 1e-8);
        }
      }),
      { numRuns: RUNS },
    );
  });

  it('is invariant under the same token permutation of both (official form)', () => {
    fc.assert(
      fc.property(caseArb(), fc.integer({ min: 0, max: 2 ** 31 - 1 }), (c, pseed) => {
        const { N, s, t, chunk } = setup(c);
        const { uniform } = rng(pseed);
        const perm = Array.from({ length: N }, (_, i) => i);
        for (let i = N - 1; i > 0; i--) {
          const j = Math.floor(uniform() * (i + 1));
          [perm[i], perm[j]] = [perm[j]!, perm[i]!];
        }
        const permute = (x: Float32Array, D: number) => {
          const out = new Float32Array(x.length);
          for (let b = 0; b < c.B; b++) for (let i = 0; i < N; i++) for (let k = 0; k < D; k++) out[(b * N + i) * D + k] = x[(b * N + perm[i]!) * D + k]!;
          return out;
        };
        const a = lossOf(s, t, c, { margin: c.margin, chunkSize: chunk });
        const b = lossOf(permute(s, c.Ds), permute(t, c.Dt), c, { margin: c.margin, chunkSize: chunk });
        expect(close(a, b, 1e-5, ABS), `${a} vs ${b}`).toBe(true);
      }),
      { numRuns: RUNS },
    );
  });

  it('is invariant under the same frame permutation of both (every form)', () => {
    fc.assert(
      fc.property(caseArb(), fc.integer({ min: 0, max: 2 ** 31 - 1 }), (c, pseed) => {
        const { N, s, t, chunk } = setup(c);
        const P = c.h * c.w;
        const { uniform } = rng(pseed);
        const fperm = Array.from({ length: c.F }, (_, i) => i);
        for (let i = c.F - 1; i > 0; i--) {
          const j = Math.floor(uniform() * (i + 1));
          [fperm[i], fperm[j]] = [fperm[j]!, fperm[i]!];
        }
        const permute = (x: Float32Array, D: number) => {
          const out = new Float32Array(x.length);
          for (let b = 0; b < c.B; b++)
            for (let f = 0; f < c.F; f++)
              for (let p = 0; p < P; p++)
                for (let k = 0; k < D; k++) out[(b * N + f * P + p) * D + k] = x[(b * N + fperm[f]! * P + p) * D + k]!;
          return out;
        };
        for (const form of formsFor(c.F)) {
          const a = lossOf(s, t, c, { margin: c.margin, form, chunkSize: chunk });
          const b = lossOf(permute(s, c.Ds), permute(t, c.Dt), c, { margin: c.margin, form, chunkSize: chunk });
          expect(close(a, b, 1e-5, ABS), `${form}: ${a} vs ${b}`).toBe(true);
        }
      }),
      { numRuns: RUNS },
    );
  });

  it('official = spatial/F + temporal·(F−1)/F, and paper = spatial + temporal', () => {
    fc.assert(
      fc.property(caseArb(5), (c0) => {
        const c = { ...c0, F: Math.max(2, c0.F) };
        const { s, t, chunk } = setup(c);
        const L = (form: TrdForm) => lossOf(s, t, c, { margin: c.margin, form, chunkSize: chunk });
        const [off, sp, te, pa] = [L('official'), L('spatial'), L('temporal'), L('paper')];
        expect(close(off, sp / c.F + (te * (c.F - 1)) / c.F, 2e-5, ABS), `${off} vs ${sp}/F + ${te}(F−1)/F`).toBe(true);
        expect(close(pa, sp + te, 2e-5, ABS), `${pa} vs ${sp} + ${te}`).toBe(true);
      }),
      { numRuns: RUNS },
    );
  });

  it('chunked = naive in value and gradient (chunk sizes that need not divide N)', () => {
    fc.assert(
      fc.property(caseArb(4, 3, 6), (c) => {
        const { s, t, chunk, pair } = setup(c);
        fc.pre(kinkGap64(pair, c.margin) > 1e-5); // no pair within float32 rounding of the hinge
        for (const form of formsFor(c.F)) {
          const a = gradOf(s, t, c, { margin: c.margin, form, chunkSize: chunk });
          const b = gradOf(s, t, c, { margin: c.margin, form }, true);
          expect(close(a.value, b.value, 1e-5, ABS), `${form} value`).toBe(true);
          expect(maxDiff(a.grad, b.grad), `${form} grad`).toBeLessThanOrEqual(1e-5 * maxAbs(b.grad) + 1e-6); // + float32 noise of on-hinge diagonals at margin 0
        }
      }),
      { numRuns: RUNS },
    );
  });

  it('gradient = finite differences of the float64 reference (small inputs)', () => {
    fc.assert(
      fc.property(caseArb(3, 2, 4), (c) => {
        const { s, t, chunk, pair } = setup(c);
        fc.pre(kinkGap64(pair, c.margin) > 1e-3); // the ±h steps never cross the hinge
        for (const form of formsFor(c.F)) {
          const { grad } = gradOf(s, t, c, { margin: c.margin, form, chunkSize: chunk });
          const fd = trdFiniteDiff64(pair, c.margin, form, 1e-6);
          // + 1e-6: with margin 0 the diagonal pairs sit on the hinge (|S_s − S_t| is float32 noise there); their
          // analytic gradient is 0 but float32 leaves ~1e-7 after the projection of the normalisation.
          expect(maxDiff(grad, fd), `${form}`).toBeLessThanOrEqual(1e-4 * maxAbs(fd) + 1e-6);
        }
      }),
      { numRuns: RUNS },
    );
  });
});

describe('trdLoss details', () => {
  it('differentiates when the teacher is an intermediate of the differentiated function', () => {
    const grid = { frames: 2, height: 2, width: 2 };
    const s = tf.randomNormal([1, 8, 6], 0, 1, 'float32', 11);
    const base = tf.randomNormal([1, 8, 5], 0, 1, 'float32', 12);
    // The teacher is made inside f (as strategies that move the teacher do), so tf.grad disposes it early.
    const f = (x: tf.Tensor) => trdLoss(x as tf.Tensor3D, tf.mul(base, 2) as tf.Tensor3D, { grid, margin: 0.05 });
    const g = tf.grad(f)(s);
    const want = tf.grad((x: tf.Tensor) => trdLossNaive(x as tf.Tensor3D, tf.mul(base, 2) as tf.Tensor3D, { grid, margin: 0.05 }))(s);
    expect(tf.max(tf.abs(tf.sub(g, want))).dataSync()[0]!).toBeLessThan(1e-6);
    tf.dispose([s, base, g, want]);
  });

  it('the teacher is a constant: its gradient is zero (chunked and naive)', () => {
    const s = tf.randomNormal([1, 6, 4]) as tf.Tensor3D;
    const t = tf.randomNormal([1, 6, 3]) as tf.Tensor3D;
    const opts = { grid: { frames: 2, height: 1, width: 3 }, margin: 0.05 };
    for (const fn of [trdLoss, trdLossNaive]) {
      const g = tf.grad((y: tf.Tensor) => fn(s, y as tf.Tensor3D, opts))(t);
      expect(maxAbs(g.dataSync())).toBe(0);
      g.dispose();
    }
    tf.dispose([s, t]);
  });

  it('value without a gradient tape equals the value under tf.grad, and the gradient scales with dy', () => {
    const s = tf.randomNormal([2, 12, 5], 0, 1, 'float32', 3) as tf.Tensor3D;
    const t = tf.randomNormal([2, 12, 7], 0, 1, 'float32', 4) as tf.Tensor3D;
    const opts = { grid: { frames: 3, height: 2, width: 2 }, margin: 0.1, chunkSize: 5 };
    const plain = trdLoss(s, t, opts);
    const { value, grad } = tf.valueAndGrad((x: tf.Tensor) => trdLoss(x as tf.Tensor3D, t, opts))(s);
    expect(plain.dataSync()[0]).toBeCloseTo(value.dataSync()[0]!, 7);
    const g3 = tf.grad((x: tf.Tensor) => tf.mul(trdLoss(x as tf.Tensor3D, t, opts), 3))(s);
    expect(maxDiff(g3.dataSync(), Array.from(grad.dataSync(), (v) => 3 * v))).toBeLessThan(1e-9 + 1e-6 * maxAbs(g3.dataSync()));
    tf.dispose([s, t, plain, value, grad, g3]);
  });

  it('a margin that rounds to 0 in float32 behaves as 0 (the wasm clamp rejects min = max)', () => {
    const s = tf.randomNormal([1, 6, 3], 0, 1, 'float32', 5) as tf.Tensor3D;
    const t = tf.randomNormal([1, 6, 2], 0, 1, 'float32', 6) as tf.Tensor3D;
    const grid = { frames: 2, height: 3, width: 1 };
    for (const form of FORMS) {
      const a = trdLoss(s, t, { grid, form, margin: 1e-300, chunkSize: 4 });
      const b = trdLoss(s, t, { grid, form, margin: 0, chunkSize: 4 });
      expect(a.dataSync()[0]).toBe(b.dataSync()[0]);
      expect(Number.isFinite(a.dataSync()[0])).toBe(true);
      tf.dispose([a, b]);
    }
    tf.dispose([s, t]);
  });

  it('form weights sum to 1 over the entries each form averages', () => {
    for (const [B, F, P] of [
      [1, 24, 150],
      [2, 3, 6],
      [1, 1, 4],
    ] as const) {
      const N = F * P;
      const nSame = B * F * P * P;
      const nOff = B * N * N - nSame;
      const o = trdFormWeights('official', B, F, P);
      expect(o.wSame * nSame + o.wOff * nOff).toBeCloseTo(1, 12);
      expect(trdFormWeights('spatial', B, F, P).wSame * nSame).toBeCloseTo(1, 12);
      if (F > 1) {
        expect(trdFormWeights('temporal', B, F, P).wOff * nOff).toBeCloseTo(1, 12);
        const p = trdFormWeights('paper', B, F, P);
        expect(p.wSame * nSame + p.wOff * nOff).toBeCloseTo(2, 12);
      }
    }
  });

  it('autoChunkSize follows the documented rule', () => {
    expect(autoChunkSize(3600, 768)).toBe(450); // ⌈3600/512⌉ = 8 blocks of 450
    expect(autoChunkSize(36000, 768)).toBe(508); // 71 blocks
    expect(autoChunkSize(1200, 16)).toBe(600); // small dim: ~1024-row blocks, balanced
    expect(autoChunkSize(100, 768)).toBe(100);
  });
});

describe('no tensor leaks', () => {
  const s = tf.randomNormal([2, 12, 5]) as tf.Tensor3D;
  const t = tf.randomNormal([2, 12, 4]) as tf.Tensor3D;
  const grid = { frames: 3, height: 2, width: 2 };
  for (const form of FORMS) {
    it(`trdLoss '${form}' forward and gradient, trdLossNaive, relationMatrix`, async () => {
      for (const chunkSize of [undefined, 5]) {
        expect(await tensorLeakAcross(() => trdLoss(s, t, { grid, form, chunkSize }))).toBe(0);
        expect(await tensorLeakAcross(() => tf.valueAndGrad((x: tf.Tensor) => trdLoss(x as tf.Tensor3D, t, { grid, form, chunkSize }))(s))).toBe(0);
      }
      expect(await tensorLeakAcross(() => trdLossNaive(s, t, { grid, form }))).toBe(0);
      expect(await tensorLeakAcross(() => tf.valueAndGrad((x: tf.Tensor) => trdLossNaive(x as tf.Tensor3D, t, { grid, form }))(s))).toBe(0);
      expect(await tensorLeakAcross(() => relationMatrix(s))).toBe(0);
      expect(await tensorLeakAcross(() => tf.grad((x: tf.Tensor) => tf.sum(relationMatrix(x as tf.Tensor3D)))(s))).toBe(0);
    });
  }
});

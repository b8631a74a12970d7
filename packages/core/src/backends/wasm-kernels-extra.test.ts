// ClipByValue, Sum, Mean and Sign on wasm (./wasm-kernels-extra.ts) against the cpu backend, a float64
// reference, and the stock wasm kernels.
import * as tf from '@tensorflow/tfjs';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { switchBackend } from '../backend.js';
import { tensorLeakAcross } from '../leaks.js';
import { ACCURATE_REDUCE_FROM, installWasmExtraKernels, withStockWasmExtraKernels } from './wasm-kernels-extra.js';

/** Deterministic uniform data in [lo, hi). */
function rand(seed: number, n: number, lo = -1, hi = 1): Float32Array {
  let s = seed >>> 0 || 1;
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    out[i] = lo + (((t ^ (t >>> 14)) >>> 0) / 2 ** 32) * (hi - lo);
  }
  return out;
}
const size = (s: number[]) => s.reduce((a, b) => a * b, 1);

async function on(backend: 'wasm' | 'cpu', fn: () => tf.Tensor): Promise<Float32Array | Int32Array> {
  await switchBackend(backend);
  const t = tf.tidy(fn);
  const d = t.dataSync().slice() as Float32Array | Int32Array;
  t.dispose();
  return d;
}

/** Float64 reduction of `x` (row-major `shape`) over `axes`; returns values and Σ|x| per output. */
function refReduce(x: Float32Array, shape: number[], axes: number[], mean: boolean): { v: Float64Array; abs: Float64Array } {
  const rank = shape.length;
  const outDims = shape.map((s, d) => (axes.includes(d) ? 1 : s));
  const n = size(outDims);
  const v = new Float64Array(n);
  const abs = new Float64Array(n);
  const idx = new Array(rank).fill(0);
  for (let i = 0; i < x.length; i++) {
    let o = 0;
    for (let d = 0; d < rank; d++) o = o * outDims[d]! + (axes.includes(d) ? 0 : idx[d]!);
    v[o] += x[i]!;
    abs[o] += Math.abs(x[i]!);
    for (let d = rank - 1; d >= 0; d--) {
      if (++idx[d] < shape[d]!) break;
      idx[d] = 0;
    }
  }
  if (mean) {
    const red = size(axes.map((a) => shape[a]!));
    for (let i = 0; i < n; i++) {
      v[i] /= red;
      abs[i] /= red;
    }
  }
  return { v, abs };
}

let before = '';
beforeAll(async () => {
  before = tf.getBackend();
  await switchBackend('wasm');
  installWasmExtraKernels(); // idempotent (initBackend installs them when wasm comes up)
});
afterAll(async () => {
  if (before && before !== tf.getBackend()) await switchBackend(before as 'wasm' | 'cpu' | 'tensorflow');
});

describe('ClipByValue on wasm', () => {
  it('bounds equal in float32 but not as numbers: the bound everywhere, NaN kept (as cpu), on every call', async () => {
    await fc.assert(
      fc.asyncProperty(fc.float({ min: -1e6, max: 1e6, noNaN: true, noDefaultInfinity: true }), fc.integer({ min: 1, max: 300 }), fc.nat(), async (f, n, seed) => {
        const lo = Math.fround(f);
        // The largest double that still rounds to lo: half an ulp above (minus a bit).
        const ulp = Math.abs(lo) > 0 ? Math.abs(lo) * 2 ** -24 : 2 ** -149;
        const hi = lo + ulp * 0.49;
        fc.pre(hi !== lo && Math.fround(hi) === lo);
        const data = rand(seed, n, -2 * Math.abs(lo) - 1, 2 * Math.abs(lo) + 1);
        data[0] = NaN;
        if (n > 2) data[1] = Infinity;
        if (n > 3) data[2] = -Infinity;
        const op = () => tf.clipByValue(tf.tensor(data), lo, hi);
        const want = await on('cpu', op);
        expect(Array.from(await on('wasm', op))).toEqual(Array.from(want));
        expect(Array.from(await on('wasm', op))).toEqual(Array.from(want)); // the same bounds again
      }),
      { numRuns: 25 },
    );
    // A regular clamp afterwards is untouched.
    const x = rand(5, 1000, -3, 3);
    const op = () => tf.clipByValue(tf.tensor(x), -0.5, 0.75);
    expect(Array.from(await on('wasm', op))).toEqual(Array.from(await on('cpu', op)));
  });

  it('regular float32 bounds: identical to the stock kernel', async () => {
    await switchBackend('wasm');
    const x = tf.tensor(rand(9, 5000, -4, 4), [50, 100]);
    const ours = tf.clipByValue(x, -1.25, 2.5);
    const st = await withStockWasmExtraKernels(() => tf.clipByValue(x, -1.25, 2.5));
    expect(Array.from(ours.dataSync())).toEqual(Array.from(st.dataSync()));
    tf.dispose([x, ours, st]);
  });

  it('int32 equals the cpu backend (the stock kernel clamps the raw bits as floats)', async () => {
    const v = Int32Array.from(rand(3, 200, -50, 50), (f) => Math.trunc(f));
    for (const [lo, hi] of [[-1, 4], [-7.5, 12.25], [3, 3], [-100, 100]] as const) {
      const op = () => tf.clipByValue(tf.tensor(v, [10, 20], 'int32'), lo, hi);
      const got = await on('wasm', op);
      expect(got).toBeInstanceOf(Int32Array);
      expect(Array.from(got)).toEqual(Array.from(await on('cpu', op)));
    }
  });
});

describe('Sum / Mean on wasm', () => {
  it(`long reductions: relative error ≤ 1e-6 against a float64 sum (the stock kernel misses it)`, async () => {
    await switchBackend('wasm');
    for (const [n, lo] of [[1_000_000, 0], [4_000_000, 0], [3_000_001, -1]] as const) {
      const data = rand(n, n, lo, 1);
      const { v, abs } = refReduce(data, [n], [0], false);
      const x = tf.tensor(data);
      const s = tf.sum(x);
      const m = tf.mean(x);
      const errSum = Math.abs(s.dataSync()[0]! - v[0]!) / abs[0]!;
      const errMean = Math.abs(m.dataSync()[0]! - v[0]! / n) / (abs[0]! / n);
      expect(errSum, `sum of ${n}`).toBeLessThanOrEqual(1e-6);
      expect(errMean, `mean of ${n}`).toBeLessThanOrEqual(1e-6);
      if (n === 4_000_000) {
        // The same data through the stock kernel: sequential float32 accumulation.
        const st = await withStockWasmExtraKernels(() => tf.sum(x));
        expect(Math.abs(st.dataSync()[0]! - v[0]!) / abs[0]!).toBeGreaterThan(1e-6);
        st.dispose();
      }
      tf.dispose([x, s, m]);
    }
  });

  it('long reductions over any axes, keepDims: within 1e-7·Σ|x| of the float64 reference (both stages, or float64 only)', async () => {
    const cases: Array<[number[], number[], boolean]> = [
      [[3000, 5], [0], false],
      [[3, 2000, 4], [1], true],
      [[2, 3, 700], [1, 2], false],
      [[40, 3, 50], [0, 2], false],
      [[1100], [-1], true],
      [[2, 1031], [1], false], // a prime length: no block, accumulated in float64 directly
      [[1031, 3], [0], true], // the same, over columns
      [[2, 600, 2, 3], [1, 3], true],
    ];
    await switchBackend('wasm');
    for (const [k, [shape, axes, keepDims]] of cases.entries()) {
      const data = rand(100 + k, size(shape));
      const norm = axes.map((a) => (a < 0 ? a + shape.length : a));
      for (const mean of [false, true]) {
        const { v, abs } = refReduce(data, shape, norm, mean);
        const x = tf.tensor(data, shape);
        const y = mean ? tf.mean(x, axes, keepDims) : tf.sum(x, axes, keepDims);
        const want = keepDims ? shape.map((s, d) => (norm.includes(d) ? 1 : s)) : shape.filter((_, d) => !norm.includes(d));
        expect(y.shape, `${shape} over ${axes}`).toEqual(want);
        const got = y.dataSync();
        for (let i = 0; i < v.length; i++) expect(Math.abs(got[i]! - v[i]!), `${shape} over ${axes}, entry ${i}`).toBeLessThanOrEqual(1e-7 * abs[i]! + 1e-30);
        tf.dispose([x, y]);
      }
    }
  });

  it(`reductions shorter than ${ACCURATE_REDUCE_FROM}: identical to the stock kernel (random shapes, axes, keepDims)`, async () => {
    await switchBackend('wasm');
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.integer({ min: 1, max: 12 }), { minLength: 1, maxLength: 4 }),
        fc.array(fc.boolean(), { minLength: 4, maxLength: 4 }),
        fc.boolean(),
        fc.boolean(),
        fc.nat(),
        async (shape, pick, keepDims, mean, seed) => {
          let axes = shape.map((_, d) => d).filter((d) => pick[d]);
          if (!axes.length) axes = [shape.length - 1];
          fc.pre(size(axes.map((a) => shape[a]!)) < ACCURATE_REDUCE_FROM);
          const x = tf.tensor(rand(seed, size(shape), -5, 5), shape);
          const f = () => (mean ? tf.mean(x, axes, keepDims) : tf.sum(x, axes, keepDims));
          const ours = f();
          const st = await withStockWasmExtraKernels(f);
          expect(ours.shape).toEqual(st.shape);
          expect(Array.from(ours.dataSync())).toEqual(Array.from(st.dataSync()));
          tf.dispose([x, ours, st]);
        },
      ),
      { numRuns: 40 },
    );
  });

  it('int32 sums and the gradient of a long mean are unchanged', async () => {
    const v = Int32Array.from(rand(4, 5000, -1000, 1000), (f) => Math.trunc(f));
    const op = () => tf.sum(tf.tensor(v, [5, 1000], 'int32'), 1);
    expect(Array.from(await on('wasm', op))).toEqual(Array.from(await on('cpu', op)));
    await switchBackend('wasm');
    const x = tf.tensor(rand(6, 3000), [3, 1000]);
    const g = tf.grad((t: tf.Tensor) => tf.mean(t))(x);
    expect(Array.from(new Set(g.dataSync()))).toEqual([Math.fround(1 / 3000)]);
    tf.dispose([x, g]);
  });
});

describe('Sign on wasm', () => {
  it('exact: ±1 by sign bit (subnormals and infinities included), sign(±0) = 0, sign(NaN) = NaN; cpu agrees off NaN', async () => {
    const special = [0, -0, NaN, Infinity, -Infinity, 1e-40, -1e-40, 2 ** -149, -(2 ** -149), 3.4e38, -3.4e38, 1, -1];
    const data = Float32Array.from([...special, ...rand(8, 5000, -2, 2), ...rand(9, 100, -1e-38, 1e-38)]);
    const got = await on('wasm', () => tf.sign(tf.tensor(data)));
    const cpu = await on('cpu', () => tf.sign(tf.tensor(data)));
    for (let i = 0; i < data.length; i++) {
      const x = data[i]!;
      const want = Number.isNaN(x) ? NaN : x > 0 ? 1 : x < 0 ? -1 : 0;
      expect(Object.is(got[i], want), `sign(${x}) = ${got[i]}`).toBe(true);
      if (!Number.isNaN(x)) expect(got[i], `cpu sign(${x})`).toBe(cpu[i]);
    }
    const vi = Int32Array.from([-5, 0, 7, -2147483648]);
    expect(Array.from(await on('wasm', () => tf.sign(tf.tensor(vi, [4], 'int32'))))).toEqual([-1, 0, 1, -1]);
  });
});

describe('extra wasm kernels', () => {
  it('keep no tensors across calls', async () => {
    await switchBackend('wasm');
    const x = tf.tensor(rand(11, 6000), [2, 3000]);
    const xi = tf.tensor(Int32Array.from([1, -9, 4]), [3], 'int32');
    const step = () =>
      tf.tidy(() => [
        tf.sum(x),
        tf.mean(x, 1, true),
        tf.sum(tf.reshape(x, [2, 30, 100]), [0, 2]),
        tf.sum(x, 0),
        tf.clipByValue(x, 0.1, 0.1 + 1e-9),
        tf.clipByValue(xi, -2, 2),
        tf.sign(x),
      ]).forEach((t) => t.dispose());
    expect(await tensorLeakAcross(step)).toBe(0);
    tf.dispose([x, xi]);
  });
});

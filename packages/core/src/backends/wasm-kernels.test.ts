// Core's wasm kernels against the cpu backend (and the stock wasm kernels), on random shapes: rank 2–4,
// broadcast batch dims, transposes, odd sizes; forward and gradient.
import * as tf from '@tensorflow/tfjs';
import fc from 'fast-check';
import { beforeAll, describe, expect, it } from 'vitest';
import { switchBackend } from '../backend.js';
import { tensorLeakAcross } from '../leaks.js';
import { installWasmKernels, wasmKernelsInstalled, withStockWasmKernels } from './wasm-kernels.js';

/** Deterministic uniform data in [-1, 1). */
function rand(seed: number, n: number): Float32Array {
  let s = seed >>> 0 || 1;
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    out[i] = ((t ^ (t >>> 14)) >>> 0) / 2 ** 31 - 1;
  }
  return out;
}
const size = (s: number[]) => s.reduce((a, b) => a * b, 1);
const T = (seed: number, shape: number[]) => tf.tensor(rand(seed, size(shape)), shape);

/** Run `fn` on a backend and read its outputs back. */
async function on(backend: 'wasm' | 'cpu', fn: () => tf.Tensor | tf.Tensor[]): Promise<Float32Array[]> {
  await switchBackend(backend);
  const out = tf.tidy(fn);
  const list = Array.isArray(out) ? out : [out];
  const data = list.map((t) => Float32Array.from(t.dataSync()));
  tf.dispose(list);
  return data;
}

/** Max |got − want| relative to the reference's scale. */
function relErr(got: Float32Array[], want: Float32Array[]): number {
  let worst = 0;
  expect(got.length).toBe(want.length);
  got.forEach((g, k) => {
    const w = want[k]!;
    expect(g.length).toBe(w.length);
    let scale = 1;
    for (const v of w) scale = Math.max(scale, Math.abs(v));
    for (let i = 0; i < g.length; i++) worst = Math.max(worst, Math.abs(g[i]! - w[i]!) / scale);
  });
  return worst;
}

/** Batched matmul with numpy broadcasting of the batch dims, written out. */
function refMatMul(a: Float32Array, aShape: number[], b: Float32Array, bShape: number[], tA: boolean, tB: boolean): Float32Array {
  const ra = aShape.length;
  const rb = bShape.length;
  const M = tA ? aShape[ra - 1]! : aShape[ra - 2]!;
  const K = tA ? aShape[ra - 2]! : aShape[ra - 1]!;
  const N = tB ? bShape[rb - 2]! : bShape[rb - 1]!;
  const oa = aShape.slice(0, -2);
  const ob = bShape.slice(0, -2);
  const rank = Math.max(oa.length, ob.length);
  const pa = [...new Array(rank - oa.length).fill(1), ...oa];
  const pb = [...new Array(rank - ob.length).fill(1), ...ob];
  const outer = pa.map((d, i) => Math.max(d, pb[i]!));
  const out = new Float32Array(size(outer) * M * N);
  for (let o = 0; o < size(outer); o++) {
    let rem = o;
    let ia = 0;
    let ib = 0;
    let sa = 1;
    let sb = 1;
    for (let d = rank - 1; d >= 0; d--) {
      const idx = rem % outer[d]!;
      rem = Math.floor(rem / outer[d]!);
      if (pa[d]! > 1) ia += idx * sa;
      if (pb[d]! > 1) ib += idx * sb;
      sa *= pa[d]!;
      sb *= pb[d]!;
    }
    for (let i = 0; i < M; i++)
      for (let j = 0; j < N; j++) {
        let acc = 0;
        for (let k = 0; k < K; k++) {
          const av = a[ia * M * K + (tA ? k * M + i : i * K + k)]!;
          const bv = b[ib * K * N + (tB ? j * K + k : k * N + j)]!;
          acc += av * bv;
        }
        out[(o * M + i) * N + j] = acc;
      }
  }
  return out;
}

async function sameOnWasmAndCpu(fn: () => tf.Tensor | tf.Tensor[], tol = 2e-5): Promise<void> {
  const got = await on('wasm', fn);
  const want = await on('cpu', fn);
  expect(relErr(got, want)).toBeLessThan(tol);
}

beforeAll(async () => {
  await switchBackend('wasm');
});

const dim = fc.oneof(fc.integer({ min: 1, max: 9 }), fc.constant(17));
const batchPairs: Array<[number[], number[]]> = [
  [[], []],
  [[3], []],
  [[], [3]],
  [[3], [3]],
  [[1], [4]],
  [[2, 3], [2, 3]],
  [[2, 1], [1, 3]],
  [[2, 3], [3]],
];

describe('wasm kernel fixes', () => {
  it('are registered when the wasm backend comes up', () => {
    expect(wasmKernelsInstalled()).toBe(true);
    installWasmKernels(); // idempotent
    for (const k of ['BatchMatMul', '_FusedMatMul', 'Conv2DBackpropFilter', 'UnsortedSegmentSum', 'Conv3D']) {
      expect(tf.getKernel(k, 'wasm'), k).toBeDefined();
    }
  });

  it('BatchMatMul equals the cpu backend: transposes, broadcast batch dims, rank 2–4, forward and gradient', async () => {
    await fc.assert(
      fc.asyncProperty(dim, dim, dim, fc.integer({ min: 0, max: batchPairs.length - 1 }), fc.boolean(), fc.boolean(), fc.nat(), async (M, K, N, bi, tA, tB, seed) => {
        const [oa, ob] = batchPairs[bi]!;
        const aShape = [...oa, ...(tA ? [K, M] : [M, K])];
        const bShape = [...ob, ...(tB ? [N, K] : [K, N])];
        // Forward against a plain JS reference (the cpu backend itself gets two-sided broadcasting wrong:
        // [2,1,M,K]·[1,3,K,N] returns 3 matrices instead of 6).
        const got = await on('wasm', () => tf.matMul(T(seed, aShape), T(seed + 1, bShape), tA, tB));
        expect(relErr(got, [refMatMul(rand(seed, size(aShape)), aShape, rand(seed + 1, size(bShape)), bShape, tA, tB)])).toBeLessThan(2e-5);
        if (size(oa) === size(ob) || size(oa) === 1 || size(ob) === 1) {
          await sameOnWasmAndCpu(() => tf.matMul(T(seed, aShape), T(seed + 1, bShape), tA, tB));
        }
        if (oa.join() === ob.join()) {
          // core's matMul gradient does not support broadcast batch dims on any backend.
          const outShape = [...oa, M, N];
          await sameOnWasmAndCpu(() => {
            const w = T(seed + 2, outShape);
            const g = tf.grads((a: tf.Tensor, b: tf.Tensor) => tf.sum(tf.mul(tf.matMul(a, b, tA, tB), w)));
            return g([T(seed, aShape), T(seed + 1, bShape)]);
          });
        }
      }),
      { numRuns: 40 },
    );
  });

  it('_FusedMatMul equals the cpu backend for every activation, bias [N] or broadcast, transposes and batches', async () => {
    const acts = ['linear', 'relu', 'relu6', 'elu', 'sigmoid', 'leakyrelu', 'prelu'] as const;
    await fc.assert(
      fc.asyncProperty(
        dim, dim, dim, fc.constantFrom<number[]>([], [1], [3]), fc.boolean(), fc.boolean(),
        fc.constantFrom('none', 'N', 'MN', '1'), fc.constantFrom(...acts), fc.nat(),
        async (M, K, N, outer, tA, tB, biasKind, activation, seed) => {
          const aShape = [...outer, ...(tA ? [K, M] : [M, K])];
          const bShape = [...outer, ...(tB ? [N, K] : [K, N])];
          const biasShape = biasKind === 'N' ? [N] : biasKind === 'MN' ? [M, N] : biasKind === '1' ? [1] : undefined;
          await sameOnWasmAndCpu(() =>
            tf.fused.matMul({
              a: T(seed, aShape) as tf.Tensor3D,
              b: T(seed + 1, bShape) as tf.Tensor3D,
              transposeA: tA,
              transposeB: tB,
              bias: biasShape ? T(seed + 2, biasShape) : undefined,
              activation,
              preluActivationWeights: activation === 'prelu' ? T(seed + 3, [N]) : undefined,
              leakyreluAlpha: 0.15,
            }),
          );
          if ((activation === 'linear' || activation === 'relu') && outer.length === 0) {
            await sameOnWasmAndCpu(() =>
              tf.grads((a: tf.Tensor, b: tf.Tensor) =>
                tf.sum(tf.mul(tf.fused.matMul({ a: a as tf.Tensor2D, b: b as tf.Tensor2D, transposeA: tA, transposeB: tB, bias: biasShape ? T(seed + 2, biasShape) : undefined, activation }), T(seed + 4, [M, N]))),
              )([T(seed, aShape), T(seed + 1, bShape)]),
            );
          }
        },
      ),
      { numRuns: 40 },
    );
  });

  it('equals the stock wasm kernel where that one is right, and fixes its fused bias on the slow path', async () => {
    await switchBackend('wasm');
    const a = T(1, [2, 37, 53]);
    const b = T(2, [2, 29, 53]);
    const bias = T(3, [29]);
    const ours = tf.matMul(a, b, false, true);
    const stock = await withStockWasmKernels(() => tf.matMul(a, b, false, true));
    expect(relErr([ours.dataSync() as Float32Array], [stock.dataSync() as Float32Array])).toBeLessThan(1e-5);
    const fusedOurs = tf.fused.matMul({ a: a as tf.Tensor3D, b: b as tf.Tensor3D, transposeB: true, bias, activation: 'relu' });
    const fusedStock = await withStockWasmKernels(() => tf.fused.matMul({ a: a as tf.Tensor3D, b: b as tf.Tensor3D, transposeB: true, bias, activation: 'relu' }));
    const want = tf.relu(tf.add(ours, bias));
    expect(relErr([fusedOurs.dataSync() as Float32Array], [want.dataSync() as Float32Array])).toBeLessThan(1e-6);
    // The stock slow path adds bias[N-1] to every row after the first (../shared/notes/wasm-kernels.md §1).
    expect(relErr([fusedStock.dataSync() as Float32Array], [want.dataSync() as Float32Array])).toBeGreaterThan(1e-2);
    tf.dispose([a, b, bias, ours, stock, fusedOurs, fusedStock, want]);
  });

  it('Conv2DBackpropFilter (missing on stock wasm) and Conv2DBackpropInput equal the cpu backend: strides, same/valid/explicit pads, odd sizes', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.integer({ min: 1, max: 2 }), fc.integer({ min: 1, max: 9 }), fc.integer({ min: 1, max: 9 }), fc.integer({ min: 1, max: 5 }), fc.integer({ min: 1, max: 4 }),
        fc.integer({ min: 1, max: 3 }), fc.integer({ min: 1, max: 3 }), fc.integer({ min: 1, max: 3 }), fc.integer({ min: 1, max: 3 }),
        fc.constantFrom('same', 'valid', 'explicit'), fc.nat(),
        async (n, h, w, cin, cout, fh, fw, sh, sw, padKind, seed) => {
          fc.pre(fh <= h && fw <= w);
          const pad: 'same' | 'valid' | tf.backend_util.ExplicitPadding =
            padKind === 'explicit' ? [[0, 0], [seed % 2, (seed >> 1) % 3], [(seed >> 2) % 2, 1], [0, 0]] : (padKind as 'same' | 'valid');
          const info = tf.backend_util.computeConv2DInfo([n, h, w, cin], [fh, fw, cin, cout], [sh, sw], 1, pad);
          fc.pre(info.outHeight > 0 && info.outWidth > 0);
          await sameOnWasmAndCpu(() =>
            tf.grads((x: tf.Tensor, f: tf.Tensor) =>
              tf.sum(tf.mul(tf.conv2d(x as tf.Tensor4D, f as tf.Tensor4D, [sh, sw], pad), T(seed + 2, [n, info.outHeight, info.outWidth, cout]))),
            )([T(seed, [n, h, w, cin]), T(seed + 1, [fh, fw, cin, cout])]),
          );
          if (padKind !== 'explicit') {
            // conv2dTranspose runs Conv2DBackpropInput forward; equal to the stock wasm kernel as well.
            const op = () => tf.conv2dTranspose(T(seed + 2, [n, info.outHeight, info.outWidth, cout]) as tf.Tensor4D, T(seed + 1, [fh, fw, cin, cout]) as tf.Tensor4D, [n, h, w, cin], [sh, sw], pad as 'same');
            await sameOnWasmAndCpu(op);
            const ours = await on('wasm', op);
            const stock = await withStockWasmKernels(() => on('wasm', op));
            expect(relErr(ours, stock)).toBeLessThan(2e-5);
          }
        },
      ),
      { numRuns: 40 },
    );
  });

  it('UnsortedSegmentSum (missing on stock wasm) and the gather gradient equal the cpu backend', async () => {
    await fc.assert(
      fc.asyncProperty(fc.integer({ min: 1, max: 20 }), fc.integer({ min: 1, max: 6 }), fc.constantFrom<number[]>([], [3], [2, 5]), fc.nat(), async (n, segs, inner, seed) => {
        const ids = Array.from(rand(seed + 5, n), (v) => Math.floor(((v + 1) / 2) * segs));
        await sameOnWasmAndCpu(() => tf.unsortedSegmentSum(T(seed, [n, ...inner]), tf.tensor1d(ids, 'int32'), segs), 1e-6);
        await sameOnWasmAndCpu(() => {
          const idx = tf.tensor1d(ids, 'int32');
          return tf.grad((x: tf.Tensor) => tf.sum(tf.mul(tf.gather(x, idx, 1), T(seed + 3, [4, n]))))(T(seed, [4, segs]));
        }, 1e-6);
      }),
      { numRuns: 30 },
    );
    await switchBackend('wasm');
    const int = tf.unsortedSegmentSum(tf.tensor1d([1, 2, 3, 4], 'int32'), tf.tensor1d([1, 0, 1, -1], 'int32'), 2);
    expect(int.dtype).toBe('int32');
    expect(Array.from(int.dataSync())).toEqual([2, 4]); // negative ids are dropped, as in TensorFlow
    int.dispose();
  });

  it('Slice equals the cpu backend for every rank, dtype and window, and is fast on big inputs', async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(fc.integer({ min: 1, max: 5 }), { minLength: 1, maxLength: 5 }), fc.array(fc.double({ min: 0, max: 1, noNaN: true }), { minLength: 10, maxLength: 10 }), fc.constantFrom('float32', 'int32', 'bool'), fc.nat(), async (shape, u, dtype, seed) => {
        const begin = shape.map((d, i) => Math.min(d - 1, Math.floor(u[i]! * d)));
        const size = shape.map((d, i) => (u[i + 5]! < 0.2 ? -1 : 1 + Math.floor(u[i + 5]! * (d - begin[i]!) * 0.999)));
        const make = () => {
          const v = T(seed, shape);
          return dtype === 'float32' ? v : dtype === 'int32' ? tf.cast(tf.mul(v, 100), 'int32') : tf.greater(v, 0);
        };
        await sameOnWasmAndCpu(() => tf.cast(tf.slice(make(), begin, size), 'float32'), 1e-9); // exact
      }),
      { numRuns: 60 },
    );
    await switchBackend('wasm');
    const big = tf.zeros([4096, 4096]); // 64 MiB
    tf.slice(big, [5, 0], [1, -1]).dispose(); // warm-up
    const t0 = performance.now();
    for (let i = 0; i < 10; i++) tf.slice(big, [i, 0], [1, -1]).dispose();
    // The stock kernel copies the whole input per call (~10 ms each here); core's copies 4096 floats.
    expect((performance.now() - t0) / 10).toBeLessThan(2);
    big.dispose();
  });

  it('Conv3D and both of its gradients (conv2d over the temporal taps) equal the cpu backend', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.integer({ min: 1, max: 2 }), fc.integer({ min: 1, max: 5 }), fc.integer({ min: 1, max: 6 }), fc.integer({ min: 1, max: 6 }),
        fc.integer({ min: 1, max: 3 }), fc.integer({ min: 1, max: 3 }),
        fc.integer({ min: 1, max: 3 }), fc.integer({ min: 1, max: 3 }), fc.integer({ min: 1, max: 3 }),
        fc.integer({ min: 1, max: 2 }), fc.integer({ min: 1, max: 2 }), fc.constantFrom('same', 'valid'), fc.nat(),
        async (n, d, h, w, cin, cout, fd, fh, fw, sd, ss, pad, seed) => {
          fc.pre(fd <= d && fh <= h && fw <= w);
          const info = tf.backend_util.computeConv3DInfo([n, d, h, w, cin], [fd, fh, fw, cin, cout], [sd, ss, ss], 1, pad as 'same' | 'valid');
          const outShape = [n, info.outDepth, info.outHeight, info.outWidth, cout];
          await sameOnWasmAndCpu(() => tf.conv3d(T(seed, [n, d, h, w, cin]) as tf.Tensor5D, T(seed + 1, [fd, fh, fw, cin, cout]) as tf.Tensor5D, [sd, ss, ss], pad as 'same'));
          await sameOnWasmAndCpu(() =>
            tf.grads((x: tf.Tensor, f: tf.Tensor) =>
              tf.sum(tf.mul(tf.conv3d(x as tf.Tensor5D, f as tf.Tensor5D, [sd, ss, ss], pad as 'same'), T(seed + 2, outShape))),
            )([T(seed, [n, d, h, w, cin]), T(seed + 1, [fd, fh, fw, cin, cout])]),
          );
        },
      ),
      { numRuns: 30 },
    );
  });

  it('leaks no tensors and no wasm memory across calls', async () => {
    await switchBackend('wasm');
    const a = T(1, [3, 13, 7]);
    const b = T(2, [3, 11, 7]);
    const x = T(3, [1, 4, 9, 9, 3]);
    const f = T(4, [3, 3, 3, 3, 2]);
    const ids = tf.tensor1d([0, 2, 2], 'int32');
    const img = T(5, [1, 8, 8, 3]);
    const k = T(6, [2, 2, 3, 4]);
    const step = () =>
      tf.tidy(() => [
        tf.grads((p: tf.Tensor, q: tf.Tensor) => tf.sum(tf.matMul(p, q, false, true)))([a, b]),
        tf.fused.matMul({ a: a as tf.Tensor3D, b: b as tf.Tensor3D, transposeB: true, bias: tf.ones([11]), activation: 'relu' }),
        tf.grads((p: tf.Tensor, q: tf.Tensor) => tf.sum(tf.conv3d(p as tf.Tensor5D, q as tf.Tensor5D, 1, 'same')))([x, f]),
        tf.grads((p: tf.Tensor, q: tf.Tensor) => tf.sum(tf.conv2d(p as tf.Tensor4D, q as tf.Tensor4D, 2, 'valid')))([img, k]),
        tf.unsortedSegmentSum(a, ids, 4),
      ]);
    expect(await tensorLeakAcross(step)).toBe(0);
    const backend = tf.backend() as unknown as { numDataIds(): number };
    const before = backend.numDataIds();
    tf.dispose(step());
    expect(backend.numDataIds()).toBe(before);
    tf.dispose([a, b, x, f, ids, img, k]);
  });
});

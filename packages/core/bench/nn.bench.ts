/**
 * nn block benchmarks: softmax, layer norm, GELU/SiLU forms, Linear (matMul + add vs fused), attention
 * chunked vs unchunked at [1, 12, 3600, 64], conv3d (taps vs tf.conv3d). Each table has its baseline
 * row measured in the same run and a ratio column. `VREPA_BENCH_QUICK=1` uses smaller sizes.
 */
import * as tf from '@tensorflow/tfjs';
import {
  attention,
  conv3d,
  gelu,
  geluTanh,
  layerNorm,
  layerNormReference,
  linear,
  printBenchTable,
  reference,
  Rng,
  silu,
  timeIt,
  type BenchRow,
} from '../src/index.js';

const quick = process.env.VREPA_BENCH_QUICK === '1';
const rnd = (shape: number[], seed = 0) => Rng.fromSeed(seed).randomTensor(shape);

interface Case {
  name: string;
  fn: () => unknown;
  /** work per call: elements (Melem/s) or flops (GFLOP/s) */
  elems?: number;
  flops?: number;
  baseline?: boolean;
}

async function table(title: string, cases: Case[], runs = 3): Promise<void> {
  const rows: BenchRow[] = [];
  let base: number | undefined;
  for (const c of cases) {
    const t = await timeIt(c.fn, { warmup: 1, runs, maxMs: 20_000 });
    if (c.baseline || base === undefined) base ??= t.medianMs;
    const row: BenchRow = { name: c.name + (c.baseline ? ' (baseline)' : ''), 'median ms': t.medianMs };
    if (c.elems) row['Melem/s'] = c.elems / t.medianMs / 1e3;
    if (c.flops) row['GFLOP/s'] = c.flops / t.medianMs / 1e6;
    row['× baseline time'] = t.medianMs / base;
    rows.push(row);
  }
  printBenchTable(title, rows);
}

/** fwd + bwd of Σ f(x)·r: returns the gradient (the harness reads and disposes it). */
const fwdBwd = (f: (x: tf.Tensor) => tf.Tensor, x: tf.Tensor) => () => tf.grad((a: tf.Tensor) => tf.sum(f(a)))(x);

export async function run(): Promise<void> {
  // --- softmax at attention-score sizes
  {
    const shape = quick ? [12, 300, 3600] : [12, 900, 3600];
    const x = rnd(shape, 1);
    const n = x.size;
    await table(`softmax over the last axis, [${shape.join(', ')}]`, [
      { name: 'tf.exp (one elementwise pass)', fn: () => tf.exp(x), elems: n, baseline: true },
      { name: 'tf.softmax', fn: () => tf.softmax(x), elems: n },
      { name: 'tf.softmax fwd+bwd', fn: fwdBwd((a) => tf.mul(tf.softmax(a), x), x), elems: n },
    ]);
    x.dispose();
  }

  // --- layer norm and activations at transformer sizes (CogVideoX-2B width 1920)
  const rows = quick ? 2048 : 8192;
  const width = 1920;
  const x = rnd([rows, width], 2);
  const w = tf.add(rnd([width], 3), 1);
  const b = rnd([width], 4);
  const n = x.size;
  await table(`LayerNorm [${rows}, ${width}] with weight and bias`, [
    { name: 'tf.moments composite, fwd', fn: () => layerNormReference(x, w, b, 1e-5), elems: n, baseline: true },
    { name: 'layerNorm (custom grad), fwd', fn: () => layerNorm(x, w, b, 1e-5), elems: n },
    { name: 'tf.moments composite, fwd+bwd (dx)', fn: fwdBwd((a) => layerNormReference(a, w, b, 1e-5), x), elems: n },
    { name: 'layerNorm (custom grad), fwd+bwd (dx)', fn: fwdBwd((a) => layerNorm(a, w, b, 1e-5), x), elems: n },
  ]);
  await table(`activations [${rows}, ${width}]`, [
    { name: 'GELU erf, autodiff formula, fwd', fn: () => reference.gelu(x), elems: n, baseline: true },
    { name: 'gelu (erf, custom grad), fwd', fn: () => gelu(x), elems: n },
    { name: 'GELU tanh, tanh+pow formula, fwd', fn: () => reference.geluTanh(x), elems: n },
    { name: 'geluTanh (x·σ(2u), custom grad), fwd', fn: () => geluTanh(x), elems: n },
    { name: 'silu, fwd', fn: () => silu(x), elems: n },
    { name: 'GELU erf, autodiff formula, fwd+bwd', fn: fwdBwd(reference.gelu, x), elems: n },
    { name: 'gelu (erf, custom grad), fwd+bwd', fn: fwdBwd(gelu, x), elems: n },
    { name: 'GELU tanh, tanh+pow formula, fwd+bwd', fn: fwdBwd(reference.geluTanh, x), elems: n },
    { name: 'geluTanh (custom grad), fwd+bwd', fn: fwdBwd(geluTanh, x), elems: n },
    { name: 'silu x·σ(x) autodiff, fwd+bwd', fn: fwdBwd(reference.silu, x), elems: n },
    { name: 'silu (custom grad), fwd+bwd', fn: fwdBwd(silu, x), elems: n },
  ]);
  tf.dispose([w, b]);

  // --- Linear: the stored [in, out] layout (no transpose) vs PyTorch's [out, in] with transposeB
  {
    const wIO = rnd([width, 3 * 768], 5);
    const wOI = tf.transpose(wIO);
    const bias = rnd([3 * 768], 6);
    const flops = 2 * rows * width * 3 * 768;
    await table(`Linear [${rows}, ${width}] → ${3 * 768}`, [
      { name: 'matMul(x, Wᵀ, transposeB) + b (PyTorch layout)', fn: () => tf.add(tf.matMul(x, wOI, false, true), bias), flops, baseline: true },
      { name: 'linear: matMul(x, W[in,out]) + b', fn: () => linear(x, wIO, bias), flops },
      { name: 'tf.fused.matMul(x, W[in,out], bias)', fn: () => tf.fused.matMul({ a: x, b: wIO, bias }), flops },
    ]);
    tf.dispose([wIO, wOI, bias]);
  }
  x.dispose();

  // --- attention at the TRD/teacher size [1, 12, 3600, 64]
  {
    const N = quick ? 1200 : 3600;
    const [H, d] = [12, 64];
    const q = rnd([1, H, N, d], 7);
    const k = rnd([1, H, N, d], 8);
    const v = rnd([1, H, N, d], 9);
    const flops = 4 * H * N * N * d;
    const att = (chunkSize: number | 'auto') => () => attention(q, k, v, { chunkSize });
    await table(
      `attention fwd, q/k/v [1, ${H}, ${N}, ${d}] (GFLOP/s counts the two matmuls)`,
      [
        { name: 'unchunked ([1,12,N,N] scores)', fn: att(0), flops, baseline: true },
        { name: "chunked 'auto' (head groups × query chunks, ≤ 2^24 score elements)", fn: att('auto'), flops },
        { name: 'chunked 388 queries, all heads', fn: att(388), flops },
      ],
      2,
    );
    // tf.profile's peakBytes is absolute: subtract what was live before the call
    const peakOf = async (f: () => void) => {
      const live = tf.memory().numBytes;
      return ((await tf.profile(f)).peakBytes - live) / 2 ** 20;
    };
    const peak = (f: () => tf.Tensor) => peakOf(() => f().dispose());
    const grad = (chunkSize: number | 'auto') => () =>
      tf.grads((a: tf.Tensor, bb: tf.Tensor, c: tf.Tensor) => tf.sum(attention(a, bb, c, { chunkSize })))([q, k, v]);
    // fwd+bwd (recompute) chunked vs the autodiff unchunked path at a size where the latter fits
    const Nb = quick ? 900 : 1800;
    const qb = rnd([1, H, Nb, d], 10);
    const kb = rnd([1, H, Nb, d], 13);
    const vb = rnd([1, H, Nb, d], 14);
    const gradB = (chunkSize: number | 'auto') => () =>
      tf.grads((a: tf.Tensor, bb: tf.Tensor, c: tf.Tensor) => tf.sum(attention(a, bb, c, { chunkSize })))([qb, kb, vb]);
    const flopsB = 4 * H * Nb * Nb * d;
    await table(
      `attention fwd+bwd (dq, dk, dv); GFLOP/s counts forward matmul flops ×3`,
      [
        { name: `unchunked autodiff, N=${Nb}`, fn: gradB(0), flops: 3 * flopsB, baseline: true },
        { name: `chunked 'auto' (recompute backward), N=${Nb}`, fn: gradB('auto'), flops: 3 * flopsB },
        { name: `chunked 256 (recompute backward), N=${Nb}`, fn: gradB(256), flops: 3 * flopsB },
        { name: `chunked 'auto' (recompute backward), N=${N}`, fn: grad('auto'), flops: 3 * flops },
      ],
      2,
    );
    printBenchTable(`attention peak tensor memory above what was live (tf.profile), q/k/v [1, ${H}, N, ${d}]`, [
      { name: `fwd unchunked N=${N} (baseline)`, 'peak MiB': await peak(att(0) as () => tf.Tensor) },
      { name: `fwd chunked 'auto' N=${N}`, 'peak MiB': await peak(att('auto') as () => tf.Tensor) },
      { name: `fwd chunked 256 N=${N}`, 'peak MiB': await peak(att(256) as () => tf.Tensor) },
      { name: `fwd+bwd unchunked N=${Nb}`, 'peak MiB': await peakOf(() => tf.dispose(gradB(0)())) },
      { name: `fwd+bwd chunked 'auto' N=${Nb}`, 'peak MiB': await peakOf(() => tf.dispose(gradB('auto')())) },
      { name: `fwd+bwd chunked 256 N=${Nb}`, 'peak MiB': await peakOf(() => tf.dispose(gradB(256)())) },
      { name: `fwd+bwd chunked 'auto' N=${N}`, 'peak MiB': await peakOf(() => tf.dispose(grad('auto')())) },
    ]);
    tf.dispose([q, k, v, qb, kb, vb]);
  }

  // --- conv3d 3×3×3 (VAE-like) via time taps vs tf.conv3d
  {
    const shape = quick ? [1, 3, 30, 45, 64] : [1, 5, 60, 90, 64];
    const xc = rnd(shape, 11);
    const wc = rnd([3, 3, 3, 64, 64], 12);
    const flops = 2 * shape[1]! * shape[2]! * shape[3]! * 64 * 64 * 27;
    const opts = { padding: 1 as const };
    await table(`conv3d 3×3×3 pad 1, [${shape.join(', ')}] → 64`, [
      { name: 'tf.conv3d (backend kernel)', fn: () => conv3d(xc, wc, null, { ...opts, impl: 'native' }), flops, baseline: true },
      { name: 'conv3d via time taps (3 conv2d)', fn: () => conv3d(xc, wc, null, opts), flops },
    ]);
    tf.dispose([xc, wc]);
  }
}

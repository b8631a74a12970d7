/**
 * nn block benchmarks: softmax, layer norm, GELU/SiLU forms, Linear (matMul + add vs fused), attention
 * chunked vs unchunked at [1, 12, 3600, 64], conv3d (taps vs tf.conv3d), and a transformer block at
 * the CogVideoX-2B width: bytes held from forward to backward and step time, core's lean ops vs the
 * autodiff forms they replaced. Each table has its baseline row measured in the same run and a ratio
 * column. `VREPA_BENCH_QUICK=1` uses smaller sizes; `VREPA_BENCH_NN=block` runs only the block table.
 */
import * as tf from '@tensorflow/tfjs';
import {
  attention,
  conv3d,
  gelu,
  geluTanh,
  layerNorm,
  layerNormReference,
  leanAdd,
  linear,
  linearReference,
  mergeHeads,
  savedForBackward,
  splitHeads,
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

/** The activation as it was before core's lean ops: a custom gradient saving x and σ(2u). */
const geluTanhSavingTwo = (() => {
  const c = Math.sqrt(2 / Math.PI);
  return tf.customGrad(((x: tf.Tensor, save: tf.GradSaveFunc) => {
    const s = tf.sigmoid(tf.mul(tf.mul(x, tf.add(1, tf.mul(tf.square(x), 0.044715))), 2 * c));
    save([x, s]);
    return {
      value: tf.mul(x, s),
      gradFunc: (dy: tf.Tensor, [xs, sg]: tf.Tensor[]) => {
        const du2 = tf.mul(tf.add(1, tf.mul(tf.square(xs!), 3 * 0.044715)), 2 * c);
        return tf.mul(dy, tf.add(sg!, tf.mul(tf.mul(sg!, tf.sub(1, sg!)), tf.mul(xs!, du2))));
      },
    };
  }) as unknown as Parameters<typeof tf.customGrad>[0]) as (x: tf.Tensor) => tf.Tensor;
})();

/**
 * A pre-LN transformer block at the CogVideoX-2B width (D 1920, 30 heads × 64, QK LayerNorm, FF 4·D,
 * GELU tanh), forward + backward for every weight: core's ops now ('lean') vs the forms before
 * (autodiff linear with 2-D reshapes, tf.reshape head split/merge, tf.add residuals, an activation
 * saving two tensors). Held MB = distinct buffers the tape keeps from forward to backward
 * (savedForBackward); tf.memory MB = what tf.memory().numBytes / tf.profile count for the same state
 * (every saved clone and every reshape again).
 */
async function blockTable(): Promise<void> {
  const [D, H, F] = [1920, 30, 4 * 1920];
  const S = quick ? 512 : 1226;
  const rng = Rng.fromSeed(21);
  const w = (i: number, o: number) => tf.variable(tf.mul(rng.randomTensor([i, o]), 1 / Math.sqrt(i)));
  const z = (n: number) => tf.variable(tf.zeros([n]));
  const o1 = (n: number) => tf.variable(tf.ones([n]));
  const P = {
    ln1: [o1(D), z(D)], q: [w(D, D), z(D)], k: [w(D, D), z(D)], v: [w(D, D), z(D)], out: [w(D, D), z(D)],
    nq: [o1(64), z(64)], nk: [o1(64), z(64)], ln2: [o1(D), z(D)], fc1: [w(D, F), z(F)], fc2: [w(F, D), z(D)],
  };
  const vars = Object.values(P).flat();
  const x = rng.randomTensor([1, S, D]);
  const forward = (lean: boolean) => {
    const lin = (t: tf.Tensor, [wt, b]: tf.Variable[]) => (lean ? linear : linearReference)(t, wt!, b);
    const add = lean ? leanAdd : tf.add;
    const split = (t: tf.Tensor) => (lean ? splitHeads(t, H) : tf.transpose(tf.reshape(t, [1, S, H, D / H]), [0, 2, 1, 3]));
    const merge = (t: tf.Tensor) => (lean ? mergeHeads(t) : tf.reshape(tf.transpose(t, [0, 2, 1, 3]), [1, S, D]));
    const ln = (t: tf.Tensor, [g, b]: tf.Variable[], eps = 1e-5) => layerNorm(t, g, b, eps);
    const h = ln(x, P.ln1);
    const o = attention(split(lin(h, P.q)), split(lin(h, P.k)), split(lin(h, P.v)), { qNorm: (t) => ln(t, P.nq, 1e-6), kNorm: (t) => ln(t, P.nk, 1e-6) });
    const x1 = add(x, lin(merge(o), P.out));
    return add(x1, lin((lean ? geluTanh : geluTanhSavingTwo)(lin(ln(x1, P.ln2), P.fc1)), P.fc2));
  };
  const held = (lean: boolean) => {
    let r = { held: 0, engine: 0 };
    const before = tf.memory().numBytes;
    const g = tf.variableGrads(() => {
      const y = forward(lean);
      r = { held: savedForBackward([x, ...vars]).bytes, engine: tf.memory().numBytes - before - y.size * 4 };
      return tf.mean(tf.square(y)) as tf.Scalar;
    }, vars);
    tf.dispose([g.value, ...Object.values(g.grads)]);
    return r;
  };
  const step = (lean: boolean) => () => {
    const g = tf.variableGrads(() => tf.mean(tf.square(forward(lean))) as tf.Scalar, vars);
    return [g.value, ...Object.values(g.grads)];
  };
  const act = S * D * 4;
  const mem = [held(false), held(true)];
  // the two forms alternate (one warm-up each, then rounds of one run each) so that load from other
  // processes on the shared cores hits both alike; the median per form is reported
  const times: number[][] = [[], []];
  for (const lean of [false, true]) await timeIt(step(lean), { warmup: 0, runs: 1 });
  for (let r = 0; r < (quick ? 3 : 4); r++)
    for (const [i, lean] of [false, true].entries()) times[i]!.push((await timeIt(step(lean), { warmup: 0, runs: 1 })).medianMs);
  const median = (a: number[]) => a.slice().sort((x, y) => x - y)[Math.floor(a.length / 2)]!;
  const rows: BenchRow[] = [false, true].map((lean, i) => ({
    name: lean ? "core's lean ops (now)" : 'autodiff forms (before) (baseline)',
    tokens: S,
    'held MB': mem[i]!.held / 2 ** 20,
    'held / [S,D]': mem[i]!.held / act,
    'tf.memory MB': mem[i]!.engine / 2 ** 20,
    'fwd+bwd ms (median)': median(times[i]!),
    'runs ms': times[i]!.map((t) => t.toFixed(0)).join(' '),
    '× baseline held': mem[i]!.held / mem[0]!.held,
    '× baseline time': median(times[i]!) / median(times[0]!),
  }));
  printBenchTable(`transformer block D ${D}, ${H} heads, FF ${F}, ${S} tokens: bytes held forward → backward, step time (${tf.getBackend()}; times noisy on shared cores)`, rows);
  tf.dispose([x, ...vars]);
}

export async function run(): Promise<void> {
  if (process.env.VREPA_BENCH_NN === 'block') return blockTable();
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

  await blockTable();
}

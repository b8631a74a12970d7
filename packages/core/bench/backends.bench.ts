/**
 * Backend benchmark: one table per available backend, each measured in its own child process (tfjs
 * backends share a process-wide registry). On wasm, core's kernels ("ours") run side by side with the stock
 * tfjs-backend-wasm kernels ("stock", the baseline measured in the same process); stock cases that take
 * the ~3 GFLOP/s scalar path are measured once on a smaller M (noted in the shape column) to keep the run
 * short: that loop's rate does not depend on M. Targets: every wasm matmul form ≥ 25 GFLOP/s single-threaded
 * (≥ 50 with VREPA_WASM_THREADS=2), every native form ≥ 150.
 */
import os from 'node:os';
import * as tf from '@tensorflow/tfjs';
import { printBenchTable, runInChild, switchBackend, timeIt, withStockWasmExtraKernels, withStockWasmKernels, wasmThreadsCount, type BenchRow } from '../src/index.js';

type Mode = 'wasm' | 'tensorflow';

interface Case {
  name: string;
  shape: string;
  /** FLOPs of one call (GFLOP/s columns), or elements (Melem/s) when `elems` */
  flop?: number;
  elems?: number;
  matmul?: boolean;
  /** ours (and native) */
  op: () => tf.Tensor | tf.Tensor[];
  /** the stock wasm measurement: same op unless a smaller proxy is given; null = stock kernel missing */
  stock?: { op: () => tf.Tensor | tf.Tensor[]; flop?: number; elems?: number; shape: string } | null;
  runs?: number;
}

const rnd = (shape: number[]) => tf.randomUniform(shape, -1, 1);

function matmulCase(name: string, B: number, M: number, K: number, N: number, tA: boolean, tB: boolean, stockM?: number): Case {
  const mk = (m: number) => {
    const a = rnd(B > 1 ? [B, ...(tA ? [K, m] : [m, K])] : tA ? [K, m] : [m, K]);
    const b = rnd(B > 1 ? [B, ...(tB ? [N, K] : [K, N])] : tB ? [N, K] : [K, N]);
    return { a, b };
  };
  const full = mk(M);
  const small = stockM ? mk(stockM) : full;
  const flags = `${tA ? 'T' : 'F'}${tB ? 'T' : 'F'}`;
  const shape = `${B > 1 ? `${B}×` : ''}${M}×${K}×${N} ${flags}`;
  return {
    name,
    shape,
    flop: 2 * B * M * K * N,
    matmul: true,
    op: () => tf.matMul(full.a, full.b, tA, tB),
    stock: stockM ? { op: () => tf.matMul(small.a, small.b, tA, tB), flop: 2 * B * stockM * K * N, shape: `${B > 1 ? `${B}×` : ''}${stockM}×${K}×${N} ${flags}` } : undefined,
  };
}

function cases(): Case[] {
  const out: Case[] = [
    matmulCase('matMul 1024²', 1, 1024, 1024, 1024, false, false),
    matmulCase('matMul 1024², transposeB', 1, 1024, 1024, 1024, false, true),
    matmulCase('matMul', 1, 3600, 768, 3600, false, false),
    matmulCase('matMul transposeB', 1, 3600, 768, 3600, false, true, 900),
    matmulCase('matMul transposeA', 1, 3600, 768, 3600, true, false, 900),
    matmulCase('matMul both', 1, 3600, 768, 3600, true, true, 900),
    matmulCase('batched matMul', 4, 3600, 768, 3600, false, false, 450),
    matmulCase('batched matMul transposeB', 4, 3600, 768, 3600, false, true, 450),
  ];
  {
    const x = rnd([3600, 768]);
    const xs = rnd([1200, 768]);
    const g = (v: tf.Tensor) => tf.grad((y: tf.Tensor) => tf.sum(tf.matMul(y, y, false, true)))(v);
    out.push({ name: 'grad of sum(x·xᵀ) (3 matmuls)', shape: 'x 3600×768', flop: 3 * 2 * 3600 * 3600 * 768, matmul: true, op: () => g(x), stock: { op: () => g(xs), flop: 3 * 2 * 1200 * 1200 * 768, shape: 'x 1200×768' } });
  }
  {
    const x = rnd([1, 30, 45, 768]);
    const w = rnd([3, 3, 768, 768]);
    const flop = 2 * 10 * 15 * 768 * 9 * 768;
    out.push({ name: 'conv2d 3×3/s3 fwd', shape: '[1,30,45,768]→768', flop, op: () => tf.conv2d(x as tf.Tensor4D, w as tf.Tensor4D, 3, 'valid') });
    const dy = rnd([1, 10, 15, 768]);
    out.push({
      name: 'conv2d 3×3/s3 dx',
      shape: 'same',
      flop,
      op: () => tf.conv2dTranspose(dy as tf.Tensor4D, w as tf.Tensor4D, [1, 30, 45, 768], 3, 'valid'),
    });
    out.push({
      name: 'conv2d 3×3/s3 fwd+dW',
      shape: 'same',
      flop: 2 * flop,
      op: () => tf.tidy(() => tf.grad((ww: tf.Tensor) => tf.sum(tf.mul(tf.conv2d(x as tf.Tensor4D, ww as tf.Tensor4D, 3, 'valid'), dy)))(w)),
      stock: null,
    });
  }
  {
    const x = rnd([1, 9, 60, 90, 128]);
    const w = rnd([3, 3, 3, 128, 128]);
    const xs = rnd([1, 3, 30, 45, 128]);
    const flop = (s: number[]) => 2 * s[1]! * s[2]! * s[3]! * 128 * 27 * 128;
    out.push({
      name: 'conv3d 3×3×3 same fwd',
      shape: '[1,9,60,90,128]→128',
      flop: flop([1, 9, 60, 90]),
      op: () => tf.conv3d(x as tf.Tensor5D, w as tf.Tensor5D, 1, 'same'),
      stock: { op: () => tf.conv3d(xs as tf.Tensor5D, w as tf.Tensor5D, 1, 'same'), flop: flop([1, 3, 30, 45]), shape: '[1,3,30,45,128]' },
    });
    const g3 = (a0: tf.Tensor, b0: tf.Tensor) => tf.grads((a: tf.Tensor, b: tf.Tensor) => tf.sum(tf.conv3d(a as tf.Tensor5D, b as tf.Tensor5D, 1, 'same')))([a0, b0]);
    const xt = rnd([1, 2, 15, 22, 128]);
    out.push({
      name: 'conv3d 3×3×3 same fwd+dx+dW',
      shape: '[1,3,30,45,128]→128',
      flop: 3 * flop([1, 3, 30, 45]),
      op: () => g3(xs, w),
      stock: { op: () => g3(xt, w), flop: 3 * flop([1, 2, 15, 22]), shape: '[1,2,15,22,128]' },
      runs: 2,
    });
  }
  {
    const big = rnd([21600, 768]);
    out.push({ name: 'slice 100 rows', shape: '[21600,768]', elems: 100 * 768, op: () => tf.slice(big, [1000, 0], [100, -1]) });
  }
  {
    const s = rnd([12, 900, 3600]);
    out.push({ name: 'softmax (last axis)', shape: '[12,900,3600]', elems: 12 * 900 * 3600, op: () => tf.softmax(s) });
    const h = rnd([16200, 1152]);
    const gamma = rnd([1152]);
    const beta = rnd([1152]);
    const ln = (v: tf.Tensor) => {
      const { mean, variance } = tf.moments(v, -1, true);
      return tf.add(tf.mul(tf.div(tf.sub(v, mean), tf.sqrt(tf.add(variance, 1e-5))), gamma), beta);
    };
    out.push({ name: 'layer norm', shape: '[16200,1152]', elems: 16200 * 1152, op: () => tf.tidy(() => ln(h)) });
    out.push({ name: 'layer norm grad', shape: '[16200,1152]', elems: 16200 * 1152, op: () => tf.grad((v: tf.Tensor) => tf.sum(ln(v)))(h), runs: 2 });
    // Reductions (core's wasm Sum/Mean accumulate reductions of ≥ 1024 entries in float64; stock: float32).
    out.push({ name: 'mean(-1)', shape: '[16200,1152]', elems: 16200 * 1152, op: () => tf.mean(h, -1) });
    out.push({ name: 'sum(0) (bias grad)', shape: '[16200,1152]', elems: 16200 * 1152, op: () => tf.sum(h, 0) });
  }
  {
    const v = tf.randomUniform([10_000_000], -1, 1);
    out.push({ name: 'sum (all)', shape: '10M', elems: 1e7, op: () => tf.sum(v) });
    out.push({ name: 'mean (all)', shape: '10M', elems: 1e7, op: () => tf.mean(v) });
    out.push({ name: 'sign', shape: '10M', elems: 1e7, op: () => tf.sign(v) });
    out.push({ name: 'clipByValue', shape: '10M', elems: 1e7, op: () => tf.clipByValue(v, -0.5, 0.5) });
    // Stock: XNNPACK rejects the clamp and returns uninitialised memory (timed for completeness; wrong values).
    out.push({ name: 'clipByValue, bounds equal in f32', shape: '10M', elems: 1e7, op: () => tf.clipByValue(v, 0.1, 0.1 + 1e-9) });
  }
  // VREPA_BENCH_FILTER=text1,text2 keeps the cases whose name contains one of the texts.
  const filter = process.env.VREPA_BENCH_FILTER?.split(',');
  return filter ? out.filter((c) => filter.some((f) => c.name.includes(f))) : out;
}

/**
 * Median of `runs` timed calls after one warm-up; a call slower than 2 s is measured once, its warm-up
 * call counting as the measurement (keeps the whole bench within a few minutes).
 */
async function timeAdaptive(fn: () => unknown, runs: number): Promise<{ medianMs: number }> {
  const first = await timeIt(fn, { warmup: 0, runs: 1 });
  if (first.medianMs > 2000 || runs <= 1) return first;
  return timeIt(fn, { warmup: 0, runs, maxMs: 6000 });
}

const rate = (c: { flop?: number; elems?: number }, ms: number) => (c.flop ? c.flop / ms / 1e6 : (c.elems ?? 0) / ms / 1e3);

/** Child side: measure every case on `mode` (wasm: ours and stock). Returns printable rows. */
export async function measure(mode: Mode, withStock = true): Promise<{ rows: BenchRow[]; threads?: number; unit: string }> {
  await switchBackend(mode);
  const threads = mode === 'wasm' ? wasmThreadsCount() : undefined;
  const target = mode === 'tensorflow' ? 150 : threads && threads >= 2 ? 50 : 25;
  const rows: BenchRow[] = [];
  for (const c of cases()) {
    const unit = c.flop ? 'GFLOP/s' : 'Melem/s';
    const ours = await timeAdaptive(c.op, c.runs ?? 3);
    const row: BenchRow = { name: c.name, shape: c.shape, unit };
    if (mode === 'wasm' && withStock) {
      if (c.stock === null) {
        row['stock ms'] = 'missing';
      } else {
        const s = c.stock ?? { op: c.op, flop: c.flop, elems: c.elems, shape: c.shape };
        const proxy = s.shape !== c.shape;
        // Proxies exist for the cases the stock kernels run slowly: those, and single-run cases, run once cold.
        const stockOp = () => withStockWasmKernels(() => withStockWasmExtraKernels(s.op));
        const st = proxy ? await timeIt(stockOp, { warmup: 0, runs: 1 }) : await timeAdaptive(stockOp, c.runs ?? 3);
        row['stock ms'] = st.medianMs;
        row['stock rate'] = rate(s, st.medianMs);
        if (proxy) row['stock shape'] = s.shape;
        row['ours ms'] = ours.medianMs;
        row['ours rate'] = rate(c, ours.medianMs);
        row['speed-up'] = (row['ours rate'] as number) / (row['stock rate'] as number);
      }
      if (row['ours ms'] === undefined) {
        row['ours ms'] = ours.medianMs;
        row['ours rate'] = rate(c, ours.medianMs);
      }
    } else if (mode === 'wasm') {
      row['ours ms'] = ours.medianMs;
      row['ours rate'] = rate(c, ours.medianMs);
    } else {
      row['ms'] = ours.medianMs;
      row['rate'] = rate(c, ours.medianMs);
    }
    if (c.matmul) {
      const r = (mode === 'wasm' ? row['ours rate'] : row['rate']) as number;
      row.target = `≥ ${target}`;
      row.met = r >= target ? 'yes' : 'NO';
    }
    rows.push(row);
    tf.disposeVariables();
  }
  return { rows, threads, unit: 'GFLOP/s for matmul/conv rows (2·M·K·N per matmul), Melem/s otherwise' };
}

/** Parent side (`pnpm bench`): one child per available backend, one table each. */
export async function run(): Promise<void> {
  const self = import.meta.url;
  const plan: Array<{ title: string; mode: Mode; stock: boolean; env: NodeJS.ProcessEnv }> = [
    { title: 'tensorflow (tfjs-node, native)', mode: 'tensorflow', stock: false, env: { VREPA_BACKEND: 'tensorflow' } },
    { title: "wasm, 1 thread: stock tfjs-backend-wasm kernels (baseline) vs core's", mode: 'wasm', stock: true, env: { VREPA_BACKEND: 'wasm', VREPA_WASM_THREADS: '1' } },
  ];
  plan.push({ title: "wasm, VREPA_WASM_THREADS=2 (experimental), core's kernels", mode: 'wasm', stock: false, env: { VREPA_BACKEND: 'wasm', VREPA_WASM_THREADS: '2' } });
  // VREPA_BENCH_TABLES=tensorflow,wasm,wasm2 picks tables (default: all).
  const pick = process.env.VREPA_BENCH_TABLES?.split(',');
  const keys = ['tensorflow', 'wasm', 'wasm2'];
  const load = () => os.loadavg().map((v) => v.toFixed(1)).join(' / ');
  process.stdout.write(`\nbackends bench: load average ${load()} (1/5/15 min) on ${os.cpus().length} cores at the start\n`);
  for (const [i, p] of plan.entries()) {
    if (pick && !pick.includes(keys[i]!)) continue;
    const r = await runInChild<{ rows: BenchRow[]; threads?: number; unit: string }>(
      `const m = await import(${JSON.stringify(self)}); emit(await m.measure(${JSON.stringify(p.mode)}, ${p.stock}));`,
      p.env,
      600_000,
    );
    if (!r.value) {
      process.stdout.write(`\n### backends: ${p.title}\nnot available here: ${r.error}\n`);
      continue;
    }
    printBenchTable(
      `backends: ${p.title}${r.value.threads !== undefined ? ` (threads: ${r.value.threads})` : ''} — ${r.value.unit}; child ${r.wallSeconds.toFixed(0)} s`,
      r.value.rows,
      // The environment line names the parent's backend; this table ran in a child on another one.
      (text) => process.stdout.write(text.replace(/^backend \S+/m, `backend ${p.mode}`)),
    );
  }
  process.stdout.write(`\nload average at the end: ${load()}; numbers taken under load are proportionally lower than on an idle machine.\n`);
  process.stdout.write(
    '\ncpu backend: not benchmarked (about 0.2 GFLOP/s; these shapes would take minutes). Numbers vary with other load on the machine; compare rows within one table.\n',
  );
}

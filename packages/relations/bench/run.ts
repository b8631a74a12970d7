/**
 * `pnpm bench` for @vrepa/relations: TRD forward + backward (official form, B=1, D=768 for student and
 * teacher, grid F×10×15) at N = 900, 3600 (the paper's shape), 14400, 36000.
 *
 * Columns: naive (full [N,N] matrices + tf autograd) and chunked (trdLoss) median ms; peak MB of each; the
 * baseline "2 Gram matmuls" (S_s and S_t formed by plain 2-D matmuls, in row strips of ≤ 3600 rows so that
 * no N×N tensor is needed: the same 2·2N²D flops as the chunked path's minimum) measured in the same run,
 * and the ratio chunked / baseline; PyTorch's official form when VREPA_TORCH_PYTHON names a python with torch.
 *
 * Peak MB = high-water of tf.memory().numBytes during the step minus the bytes live before it (the inputs),
 * sampled on every tensor allocation (the engine's trackTensor is wrapped for the measurement), i.e. live
 * tensor bytes, not the wasm heap (which never shrinks) or the process RSS. Naive is not run where its
 * estimated peak (bytes per N² measured at the previous N, scaled by N²) exceeds the memory the backend can
 * hold (wasm: 3 GiB of its 4 GiB heap; native: half the machine's RAM); the row then says "out of memory".
 *
 * Env: VREPA_BENCH_MAX_N (skip larger N), VREPA_TORCH_PYTHON, VREPA_BACKEND.
 * Numbers taken while other jobs use the 2 cores are noisy (±30 % and more): compare within one run.
 */
import { spawnSync } from 'node:child_process';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import * as tf from '@tensorflow/tfjs';
import { initBackend, printBenchTable, timeIt, type BenchRow } from '@vrepa/core';
import { autoChunkSize, trdLoss, trdLossNaive } from '../src/index.js';

const here = path.dirname(fileURLToPath(import.meta.url));
const D = 768;
const HW = 150;
const MARGIN = 0.1;
const maxN = Number(process.env.VREPA_BENCH_MAX_N ?? Infinity);
const SIZES = [900, 3600, 14400, 36000].filter((n) => n <= maxN);

// ---- peak live-tensor bytes, sampled at every allocation
let high = 0;
const engine = tf.engine() as unknown as { trackTensor: (...a: unknown[]) => void };
const origTrack = engine.trackTensor.bind(engine);
engine.trackTensor = (...a: unknown[]) => {
  origTrack(...a);
  const b = tf.memory().numBytes;
  if (b > high) high = b;
};
async function peakMB(fn: () => unknown): Promise<number> {
  const base = tf.memory().numBytes;
  high = base;
  const out = await fn();
  tf.dispose(out as tf.Tensor[]);
  return (high - base) / 2 ** 20;
}

function runsFor(n: number): { warmup: number; runs: number } {
  return n <= 1000 ? { warmup: 1, runs: 5 } : n <= 4000 ? { warmup: 1, runs: 3 } : { warmup: 0, runs: 1 };
}

function step(fn: typeof trdLoss, s: tf.Tensor3D, t: tf.Tensor3D, grid: { frames: number; height: number; width: number }, chunkSize?: number) {
  return () => {
    const { value, grad } = tf.valueAndGrad((x: tf.Tensor) => fn(x as tf.Tensor3D, t, { grid, margin: MARGIN, chunkSize }))(s);
    return [value, grad];
  };
}

/** S_s and S_t by 2-D no-flag matmuls in row strips: the matmul work TRD cannot avoid (as 2 full Grams). */
function twoGrams(hn: tf.Tensor2D, hnT: tf.Tensor2D, yn: tf.Tensor2D, ynT: tf.Tensor2D, strip: tf.Tensor2D[][]) {
  return () => {
    for (const [rowsH, rowsY] of strip) {
      const a = tf.matMul(rowsH!, hnT);
      a.dataSync();
      a.dispose();
      const b = tf.matMul(rowsY!, ynT);
      b.dataSync();
      b.dispose();
    }
    void hn;
    void yn;
    return [];
  };
}

/**
 * The matmul roofline: the best GFLOP/s of the plain 2-D matmul shapes TRD needs ([c,2D]·[2D,c] forward,
 * [c,c]·[c,D] backward, and a 512-block), measured now. Roofline time of TRD = 4N²D / that rate (the
 * minimum flops: half of each Gram by symmetry + one N×N×D matmul for the gradient).
 */
function matmulPeak(): { gflops: number; shape: string } {
  let best = { gflops: 0, shape: '' };
  const c = autoChunkSize(3600, D);
  for (const [m, k, n] of [
    [c, 2 * D, c],
    [c, c, D],
    [512, D, 512],
  ] as const) {
    const a = tf.randomNormal([m, k]);
    const b = tf.randomNormal([k, n]);
    const once = () => {
      const t0 = performance.now();
      const r = tf.matMul(a, b);
      r.dataSync();
      r.dispose();
      return performance.now() - t0;
    };
    once();
    const ms = Math.min(once(), once(), once(), once(), once());
    const gflops = (2 * m * k * n) / ms / 1e6;
    if (gflops > best.gflops) best = { gflops, shape: `[${m},${k}]·[${k},${n}]` };
    tf.dispose([a, b]);
  }
  process.stderr.write(`[bench] matmul roofline ${best.gflops.toFixed(1)} GFLOP/s (${best.shape})\n`);
  return best;
}

/** PyTorch's official form, one python process per N (a large N that runs too long is reported, not awaited). */
function torchTimes(): Map<number, string | number> {
  const py = process.env.VREPA_TORCH_PYTHON;
  const out = new Map<number, string | number>();
  if (!py) return out;
  for (const N of SIZES) {
    const limit = N <= 4000 ? 180_000 : 90_000;
    const r = spawnSync(py, [path.join(here, 'torch_trd.py'), '--N', String(N), '--D', String(D), '--hw', String(HW), '--runs', '3', '--max-bytes', String(os.totalmem() / 2)], {
      encoding: 'utf8',
      timeout: limit,
    });
    if (r.error && (r.error as NodeJS.ErrnoException).code === 'ETIMEDOUT') {
      out.set(N, `timed out (> ${limit / 1000} s)`);
      continue;
    }
    if (r.status !== 0) {
      process.stderr.write(`[bench] PyTorch baseline failed at N=${N}: ${r.stderr || r.error}\n`);
      out.set(N, 'failed');
      continue;
    }
    const j = JSON.parse(r.stdout.trim().split('\n').pop()!);
    out.set(N, j.skipped ?? j.ms_median);
  }
  return out;
}

async function main() {
  const info = await initBackend();
  const memLimit = info.name === 'wasm' ? 3 * 2 ** 30 : os.totalmem() / 2;
  const torch = torchTimes();
  const peak = matmulPeak();
  const rows: BenchRow[] = [];
  let naiveBytesPerN2: number | undefined;
  let lastGram: { N: number; ms: number } | undefined;

  for (const N of SIZES) {
    const grid = { frames: N / HW, height: 10, width: 15 };
    const s = tf.randomNormal([1, N, D], 0, 1, 'float32', 1) as tf.Tensor3D;
    const t = tf.randomNormal([1, N, D], 0, 1, 'float32', 2) as tf.Tensor3D;
    const { warmup, runs } = runsFor(N);
    const row: BenchRow = { name: `N=${N}` };

    // baseline: 2 Gram matmuls (same flops as the chunked path's minimum: 2·2N²D). Above 14400 tokens it is
    // scaled from the largest measured N by N² (its cost is exactly quadratic) to keep the run short.
    let gramMs: number;
    let gramNote = '';
    if (N > 14400 && lastGram) {
      gramMs = lastGram.ms * (N / lastGram.N) ** 2;
      gramNote = ` (scaled from N=${lastGram.N})`;
    } else {
      const hn = tf.tidy(() => tf.reshape(tf.div(s, tf.norm(s, 2, -1, true)), [N, D])) as tf.Tensor2D;
      const yn = tf.tidy(() => tf.reshape(tf.div(t, tf.norm(t, 2, -1, true)), [N, D])) as tf.Tensor2D;
      const hnT = tf.transpose(hn);
      const ynT = tf.transpose(yn);
      const stripRows = Math.min(N, 3600);
      const nStrips = Math.ceil(N / stripRows);
      const hs = nStrips === 1 ? [hn] : (tf.split(hn, nStrips, 0) as tf.Tensor2D[]);
      const ys = nStrips === 1 ? [yn] : (tf.split(yn, nStrips, 0) as tf.Tensor2D[]);
      const strips = hs.map((h, i) => [h, ys[i]!]);
      gramMs = (await timeIt(twoGrams(hn, hnT, yn, ynT, strips), { warmup: N <= 4000 ? 1 : 0, runs: N <= 4000 ? 3 : 1 })).medianMs;
      if (nStrips > 1) tf.dispose([...hs, ...ys]);
      tf.dispose([hn, yn, hnT, ynT]);
      lastGram = { N, ms: gramMs };
    }

    // naive, unless it cannot fit
    const est = naiveBytesPerN2 !== undefined ? naiveBytesPerN2 * N * N : 0;
    if (est > memLimit) {
      row['naive ms'] = `out of memory (est. ${(est / 2 ** 20).toFixed(0)} MB)`;
      row['naive peak MB'] = '–';
    } else {
      const peak = await peakMB(step(trdLossNaive, s, t, grid));
      naiveBytesPerN2 = (peak * 2 ** 20) / (N * N); // the latest measured N predicts the next
      row['naive ms'] = (await timeIt(step(trdLossNaive, s, t, grid), { warmup: 0, runs: Math.min(runs, 2) })).medianMs;
      row['naive peak MB'] = peak;
    }

    // chunked: large N get one timed run whose peak is sampled in the same run
    let chunkPeak: number;
    let chunkedMs: number;
    if (runs === 1) {
      const t0 = performance.now();
      chunkPeak = await peakMB(step(trdLoss, s, t, grid));
      chunkedMs = performance.now() - t0;
    } else {
      chunkPeak = await peakMB(step(trdLoss, s, t, grid));
      chunkedMs = (await timeIt(step(trdLoss, s, t, grid), { warmup: Math.max(0, warmup - 1), runs })).medianMs;
    }
    row['chunked ms'] = chunkedMs;
    row['chunk'] = autoChunkSize(N, D);
    row['chunked peak MB'] = chunkPeak;
    if (typeof row['naive peak MB'] === 'number') row['peak chunked/naive'] = chunkPeak / (row['naive peak MB'] as number);
    row['2 Gram matmuls ms'] = gramNote ? `${gramMs.toFixed(0)}${gramNote}` : gramMs;
    row['chunked / 2 Grams'] = chunkedMs / gramMs;
    row['GFLOP/s (4N²D / chunked)'] = (4 * N * N * D) / chunkedMs / 1e6;
    row['chunked / roofline'] = chunkedMs / ((4 * N * N * D) / peak.gflops / 1e6);
    if (torch.size) {
      const tv = torch.get(N);
      row['PyTorch official ms'] = tv ?? 'n/a';
      if (typeof tv === 'number') row['chunked / PyTorch'] = chunkedMs / tv;
    }
    rows.push(row);
    tf.dispose([s, t]);
    process.stderr.write(`[bench] N=${N} done\n`);
  }
  printBenchTable(`TRD forward + backward, official form, B=1, D=768, grid F×10×15 (median ms; roofline = 4N²D at ${peak.gflops.toFixed(1)} GFLOP/s, the best plain matmul ${peak.shape} measured in this run)`, rows);

  // block-size sweep at the paper's shape (why the automatic rule picks what it picks)
  if (SIZES.includes(3600)) {
    const N = 3600;
    const grid = { frames: N / HW, height: 10, width: 15 };
    const s = tf.randomNormal([1, N, D], 0, 1, 'float32', 1) as tf.Tensor3D;
    const t = tf.randomNormal([1, N, D], 0, 1, 'float32', 2) as tf.Tensor3D;
    const sweep: BenchRow[] = [];
    let base: number | undefined;
    for (const c of [autoChunkSize(N, D), 256, 900, 1800]) {
      const ms = (await timeIt(step(trdLoss, s, t, grid, c), { warmup: 0, runs: 2 })).medianMs;
      base ??= ms;
      sweep.push({ name: c === autoChunkSize(N, D) ? `chunk ${c} (auto)` : `chunk ${c}`, 'fwd+bwd ms': ms, 'ratio to auto': ms / base, 'blocks per side': Math.ceil(N / c) });
    }
    printBenchTable('trdLoss block size at N=3600, D=768 (fwd + bwd, median of 2)', sweep);
    tf.dispose([s, t]);
  }
}

await main();

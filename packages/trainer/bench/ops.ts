/**
 * `pnpm --filter @vrepa/trainer bench:ops`: where the tiny training step's time goes, op by op.
 *
 * 1. CPU µs per call (process CPU time, minimum of 5 rounds: wall time on a loaded machine measures the
 *    other jobs) of a few primitives (add and ·scalar on [8, 16], sum, transpose, matMul 64³ and 256³,
 *    a small batched matMul) and one AdamW update over the tiny preset's parameters (the default path — on
 *    tfjs-node one native call —, the multi-tensor op chain, and every parameter alone), on each backend that
 *    loads here, next to PyTorch's (bench/torch_primitives.py; VREPA_TORCH_PYTHON names a python with
 *    torch) in the same run. PyTorch runs at 1 and at 2 threads: under load its 2-thread barriers on tiny
 *    ops stall, so the ratio is taken against the faster of the two (the stronger anchor).
 * 2. The tiny preset's VideoREPA step (batch 2, λ = 0.5) profiled per kernel (core's profileOps): count
 *    per kernel type per step, µs per call, share of the step; and on the native backend the calls into the
 *    binding (eager TF ops, tensor creations from JS values, deletions).
 *
 * VREPA_BENCH_OPS_TOP (default 25) rows per step table. Numbers on a shared machine are noisy: compare
 * rows within one run; the load average is printed with each table.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import * as tf from '@tensorflow/tfjs';
import { initBackend, microsPerOp, printBenchTable, profileOps, switchBackend, type BenchRow } from '@vrepa/core';
import { AdamW, Trainer, oneDnnFor, presetConfig } from '../src/index.js';

const TOP = Number(process.env.VREPA_BENCH_OPS_TOP ?? 25);
const REPS = Number(process.env.VREPA_BENCH_OPS_REPS ?? 1000);
const PROFILED_STEPS = 4;
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'vrepa-ops-bench-'));
const load = () => `load average ${os.loadavg().map((l) => l.toFixed(1)).join(' / ')}`;

const info = await initBackend({ quiet: true, oneDnn: oneDnnFor(presetConfig('tiny')) }); // as `vrepa train --preset tiny`
const backends = [...new Set([info.name, 'wasm'])].filter((b) => b === 'tensorflow' || b === 'wasm' || b === 'cpu') as Array<'tensorflow' | 'wasm' | 'cpu'>;

/** The tiny preset's trainable parameter shapes (λ = 0.5: transformer + projector). */
function tinyShapes(): number[][] {
  const t = new Trainer(presetConfig('tiny'), { out: fs.mkdtempSync(path.join(tmp, 'shapes-')), progress: false, log: () => {}, maxSteps: 1 });
  try {
    return [...t.params.values()].map((p) => p.shape);
  } finally {
    t.dispose();
  }
}
const shapes = tinyShapes();

function torchPrimitives(threads: number): Record<string, number> | string {
  const py = process.env.VREPA_TORCH_PYTHON;
  if (!py) return 'skipped: VREPA_TORCH_PYTHON is not set (point it at a python with torch)';
  const script = path.join(path.dirname(fileURLToPath(import.meta.url)), 'torch_primitives.py');
  const r = spawnSync(py, [script, '--threads', String(threads), '--reps', String(REPS), '--shapes', JSON.stringify(shapes)], { encoding: 'utf8', timeout: 300_000 });
  if (r.status !== 0) return `skipped: ${py} torch_primitives.py failed: ${(r.stderr || r.error?.message || '').trim().split('\n').pop()}`;
  return JSON.parse(r.stdout.trim().split('\n').pop()!) as Record<string, number>;
}

// ---- 1. primitives
const torch1 = torchPrimitives(1);
const torch2 = torchPrimitives(2);
type Prim = { key: string; label: string; make: () => { op: () => tf.Tensor | tf.Tensor[]; inputs: tf.Tensor[] }; reps?: number };
const rand = (s: number[]) => tf.randomNormal(s, 0, 1, 'float32', 0);
const prims: Prim[] = [
  { key: 'add_8x16', label: 'add [8,16]+[8,16]', make: () => { const a = rand([8, 16]), b = rand([8, 16]); return { op: () => tf.add(a, b), inputs: [a, b] }; } },
  { key: 'mul_scalar_8x16', label: 'mul [8,16]·0.9 (JS scalar)', make: () => { const a = rand([8, 16]); return { op: () => tf.mul(a, 0.9), inputs: [a] }; } },
  { key: 'sum_8x16', label: 'sum [8,16] → scalar', make: () => { const a = rand([8, 16]); return { op: () => tf.sum(a), inputs: [a] }; } },
  { key: 'transpose_8x16', label: 'transpose [8,16]', make: () => { const a = rand([8, 16]); return { op: () => tf.transpose(a), inputs: [a] }; } },
  { key: 'matmul_64', label: 'matMul 64×64×64', make: () => { const a = rand([64, 64]), b = rand([64, 64]); return { op: () => tf.matMul(a, b), inputs: [a, b] }; } },
  { key: 'matmul_256', label: 'matMul 256×256×256', reps: Math.max(50, REPS / 20), make: () => { const a = rand([256, 256]), b = rand([256, 256]); return { op: () => tf.matMul(a, b), inputs: [a, b] }; } },
  { key: 'bmm_4x64x16x64', label: 'batched matMul [4,64,16]×[4,16,64]', make: () => { const a = rand([4, 64, 16]), b = rand([4, 16, 64]); return { op: () => tf.matMul(a, b), inputs: [a, b] }; } },
];

/**
 * One AdamW update over the tiny model's parameter shapes (our AdamW; gradients fixed). `native` false: the
 * multi-tensor op chain; `fuseMaxElements` 0: every parameter alone (the op chain as before fusing).
 */
function adamwMicros(reps: number, o: { native?: boolean; fuseMaxElements?: number }): number {
  const params = new Map(shapes.map((s, i) => [`p${i}`, tf.variable(rand(s))] as const));
  const grads = new Map(shapes.map((s, i) => [`p${i}`, rand(s)] as const));
  const opt = new AdamW(params, { lr: 1e-3, beta1: 0.9, beta2: 0.95, eps: 1e-8, weightDecay: 1e-4, ...o });
  try {
    return microsPerOp(() => {
      opt.apply(grads, 1e-3);
      return [];
    }, { reps, stat: 'min', clock: 'cpu' });
  } finally {
    opt.dispose();
    tf.dispose([...params.values(), ...grads.values()]);
  }
}

const perBackend = new Map<string, Record<string, number>>();
for (const b of backends) {
  try {
    await switchBackend(b);
  } catch (e) {
    console.log(`${b}: not available (${(e as Error).message.split('\n')[0]})`);
    continue;
  }
  const res: Record<string, number> = {};
  for (const p of prims) {
    const { op, inputs } = p.make();
    res[p.key] = microsPerOp(op, { reps: p.reps ?? REPS, stat: 'min', clock: 'cpu' });
    tf.dispose(inputs);
  }
  res.adamwNative = adamwMicros(Math.max(20, REPS / 20), { native: true });
  res.adamw = adamwMicros(Math.max(20, REPS / 20), { native: false });
  res.adamwUnfused = adamwMicros(Math.max(20, REPS / 20), { fuseMaxElements: 0 });
  perBackend.set(b, res);
}
const anchor = (k: string) => {
  const v = [torch1, torch2].filter((t): t is Record<string, number> => typeof t !== 'string').map((t) => t[k]).filter((x): x is number => typeof x === 'number');
  return v.length ? Math.min(...v) : undefined;
};
const primRows: BenchRow[] = [
  ...prims.map((p) => [p.key, p.label] as const),
  ['adamwNative', `AdamW step over the tiny model (${shapes.length} tensors, ${shapes.reduce((s, x) => s + x.reduce((a, b) => a * b, 1), 0)} params), default: tfjs-node one native call (binding patch 30), wasm the multi-tensor op chain; PyTorch: fused`] as const,
  ['adamw', 'the same AdamW, multi-tensor op chain (VREPA_ADAMW_NATIVE=0); PyTorch: fused'] as const,
  ['adamwUnfused', 'the same AdamW, every parameter alone (fuseMaxElements 0, as before fusing); PyTorch: fused'] as const,
].map(([key, label]) => {
  const row: BenchRow = { name: label };
  for (const [b, r] of perBackend) row[`${b} µs`] = r[key];
  const tk = key.startsWith('adamw') ? 'adamw_fused' : key;
  if (typeof torch1 !== 'string') row['PyTorch 1 thr µs'] = torch1[tk];
  if (typeof torch2 !== 'string') row['PyTorch 2 thr µs'] = torch2[tk];
  const a = anchor(tk);
  for (const [b, r] of perBackend) if (a) row[`${b} / PyTorch`] = r[key]! / a;
  return row;
});
if (typeof torch1 !== 'string') {
  for (const k of ['adamw_default', 'adamw_foreach'] as const) {
    primRows.push({ name: `PyTorch AdamW ${k.slice(6)} (for reference)`, 'PyTorch 1 thr µs': torch1[k], ...(typeof torch2 !== 'string' ? { 'PyTorch 2 thr µs': torch2[k] } : {}) });
  }
} else primRows.push({ name: `PyTorch anchor ${torch1}` });
printBenchTable(`CPU µs per call (this process's CPU time, all threads; minimum of 5 rounds of ${REPS} calls) · ${load()}${typeof torch1 !== 'string' ? ` · torch ${torch1.torch}` : ''}`, primRows);

// ---- 2. the tiny step, kernel by kernel
for (const b of backends) {
  try {
    await switchBackend(b);
  } catch {
    continue;
  }
  const t = new Trainer(presetConfig('tiny'), { out: fs.mkdtempSync(path.join(tmp, 'run-')), progress: false, log: () => {}, maxSteps: PROFILED_STEPS + 3 });
  try {
    t.trainStep();
    t.trainStep();
    const kernels = new Map<string, { count: number; ms: number }>();
    const binding = new Map<string, { count: number; ms: number }>();
    let wall = 0;
    let outside = 0;
    let fwdBwd = 0;
    let opt = 0;
    for (let i = 0; i < PROFILED_STEPS; i++) {
      const p = profileOps(() => t.trainStep());
      wall += p.wallMs;
      outside += p.outsideMs;
      fwdBwd += p.result.ms_fwd_bwd;
      opt += p.result.ms_opt;
      for (const [m, list] of [[kernels, p.kernels], [binding, p.binding]] as const) {
        for (const k of list) {
          const e = m.get(k.name) ?? { count: 0, ms: 0 };
          e.count += k.count;
          e.ms += k.totalMs;
          m.set(k.name, e);
        }
      }
    }
    const n = PROFILED_STEPS;
    const stepMs = wall / n;
    const table = (m: Map<string, { count: number; ms: number }>) => {
      const all = [...m].sort((x, y) => y[1].ms - x[1].ms);
      const rows: BenchRow[] = all.slice(0, TOP).map(([name, e]) => ({ name, 'calls/step': e.count / n, 'µs/call': (1000 * e.ms) / e.count, 'ms/step': e.ms / n, 'share of step': `${((100 * e.ms) / wall).toFixed(1)}%` }));
      const rest = all.slice(TOP);
      if (rest.length) {
        const c = rest.reduce((s, [, e]) => s + e.count, 0), ms = rest.reduce((s, [, e]) => s + e.ms, 0);
        rows.push({ name: `(${rest.length} other kinds)`, 'calls/step': c / n, 'µs/call': (1000 * ms) / c, 'ms/step': ms / n, 'share of step': `${((100 * ms) / wall).toFixed(1)}%` });
      }
      const c = all.reduce((s, [, e]) => s + e.count, 0), ms = all.reduce((s, [, e]) => s + e.ms, 0);
      rows.push({ name: `all (${all.length} kinds)`, 'calls/step': c / n, 'µs/call': (1000 * ms) / c, 'ms/step': ms / n, 'share of step': `${((100 * ms) / wall).toFixed(1)}%` });
      return rows;
    };
    const kRows = table(kernels);
    kRows.push({ name: 'outside kernels (tape, tidy, JS)', 'ms/step': outside / n, 'share of step': `${((100 * outside) / wall).toFixed(1)}%` });
    kRows.push({ name: `step: ${stepMs.toFixed(1)} ms (fwd+bwd ${(fwdBwd / n).toFixed(1)}, optimizer ${(opt / n).toFixed(1)}), profiled` });
    printBenchTable(`${b} · tiny VideoREPA step (batch 2, λ 0.5), top-level tfjs kernels per step (mean of ${n} profiled steps) · ${load()}`, kRows);
    if (binding.size) printBenchTable(`${b} · the same steps: calls into the native binding per step (eager TF ops; createTensor = a tensor from JS values)`, table(binding));
  } finally {
    t.dispose();
  }
}
fs.rmSync(tmp, { recursive: true, force: true });

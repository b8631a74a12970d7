/**
 * `pnpm --filter @vrepa/repro bench`: issue 15's third target, "the training step at the toy reproduction's
 * model size within 1.5× of PyTorch".
 *
 * Ours: the Trainer config `trainStudent` builds (models.ts `studentTrainConfig`, the same function) for the
 * toy preset's student (`transformerConfig(student, latentShape)`, a fresh seeded model: the study starts the
 * arms from the pretrained folder, same sizes) and finetune settings, on a MemoryDataset of random latents
 * `[F, h, w, C]` (space-to-depth of the preset's clips), text `[L, D]` and teacher tokens on the teacher's grid
 * (frames−1 over the tubelet, height and width over the patch), all read from reproPreset('toy'). Two arms,
 * their steps interleaved in one process: +TRD (official, λ 0.5, margin 0.1) and diffusion only (λ 0, no
 * teacher, as the study runs it). Per arm: median wall ms and median process-CPU ms per step over the timed
 * steps (after warm-up), and from core's profileOps over 3 more steps: top-level kernels per step, the time
 * inside them and outside (the tape, tidy, JS).
 * One child process per oneDNN setting: TensorFlow's default (on, as `vrepa repro` runs: it calls initBackend
 * without a oneDnn choice) and off (TF_ENABLE_ONEDNN_OPTS=0, as `vrepa train` picks for models this narrow).
 *
 * PyTorch: @vrepa/trainer's bench/torch_tiny_step.py with the matching sizes and --drop-first-frame (the
 * student's latent frame 0 dropped before the ×2 time resize onto the teacher grid, as our matchGrids), at 1 and
 * 2 threads, before and after ours; per λ and metric the fastest is the reference. Needs VREPA_TORCH_PYTHON
 * (a python with torch); without it the PyTorch rows say they are skipped.
 *
 * VREPA_BENCH_STEPS (timed steps per arm, default 20), VREPA_BENCH_WARMUP (default 3).
 *
 * Build variants, each arm run under each, all steps interleaved in the same process (the env toggles are read
 * per call): "default" (this build's defaults: with oneDNN off the steps run as one TensorFlow graph, issue 15's
 * fifth wave), "wave 3" (smallBinary limited to 65,536 elements, as the third wave left it), eager steps
 * (VREPA_TF_GRAPH=0: the fourth wave's state) and graph steps also with oneDNN on (VREPA_TF_GRAPH=1, opt-in
 * there: oneDNN's graph rewrite changes the values in rounding). The fourth wave's split and mulAdd variants
 * are measured in @vrepa/trainer's bench:elementwise. VREPA_BENCH_VARIANTS=default keeps only the first.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import * as tf from '@tensorflow/tfjs';
import { initBackend, printBenchTable, profileOps, type BenchRow } from '@vrepa/core';
import { Trainer } from '@vrepa/trainer';
import { MemoryDataset, latentChannels, latentFrames, reproPreset, studentTrainConfig, transformerConfig } from '../src/index.js';

const STEPS = Number(process.env.VREPA_BENCH_STEPS ?? 20);
const WARMUP = Number(process.env.VREPA_BENCH_WARMUP ?? 3);
const LAMBDA = 0.5;
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const load = () => os.loadavg().map((l) => l.toFixed(1)).join(' / ');

/** The toy preset's sizes, as the study derives them. */
function toySizes() {
  const c = reproPreset('toy');
  const F = latentFrames(c.data.frames, c.latent.temporal);
  const latentShape = [F, c.data.height / c.latent.spatial, c.data.width / c.latent.spatial, latentChannels(c.latent)];
  const t = c.teacher;
  const teacherGrid = { frames: (c.data.frames - 1) / t.tubeletSize, height: c.data.height / t.patchSize, width: c.data.width / t.patchSize };
  return { c, latentShape, teacherGrid };
}

type KernelStat = { name: string; count: number; ms: number };
type Variant = { name: string; env: Record<string, string> };
const VARIANTS: Variant[] = ([
  { name: 'default', env: {} },
  { name: 'wave 3 (VREPA_TF_SMALL_BINARY_MAX=65536)', env: { VREPA_TF_SMALL_BINARY_MAX: '65536' } },
  { name: 'eager steps (VREPA_TF_GRAPH=0)', env: { VREPA_TF_GRAPH: '0' } },
  { name: 'graph steps even with oneDNN (VREPA_TF_GRAPH=1)', env: { VREPA_TF_GRAPH: '1' } },
] as Variant[]).filter((v) => process.env.VREPA_BENCH_VARIANTS !== 'default' || v.name === 'default');
/** Run `f` with `env` set on top of the process's environment, then restore it. */
function withEnv<T>(env: Record<string, string>, f: () => T): T {
  const saved = Object.fromEntries(Object.keys(env).map((k) => [k, process.env[k]]));
  Object.assign(process.env, env);
  try {
    return f();
  } finally {
    for (const [k, v] of Object.entries(saved)) if (v === undefined) delete process.env[k]; else process.env[k] = v;
  }
}
type ArmResult = { variant: string; lambda: number; wall: number; cpu: number; kernels: number; kernelMs: number; outsideMs: number; params: number; top: KernelStat[] };

function ours(): ArmResult[] {
  const { c, latentShape, teacherGrid } = toySizes();
  const n = 8;
  const N = teacherGrid.frames * teacherGrid.height * teacherGrid.width;
  const latents = tf.randomNormal([n, ...latentShape], 0, 1, 'float32', 1);
  const text = tf.randomNormal([n, c.student.textLength, c.student.textDim], 0, 1, 'float32', 2);
  const teacher = tf.randomNormal([n, N, c.teacher.embedDim], 0, 1, 'float32', 3);
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'vrepa-toy-step-'));
  const arms = [LAMBDA, 0].flatMap((lambda) => VARIANTS.map((variant) => {
    const data = new MemoryDataset(latents, text, lambda > 0 ? teacher : undefined, teacherGrid);
    const config = studentTrainConfig({
      from: transformerConfig(c.student, latentShape),
      student: c.student,
      teacherDim: c.teacher.embedDim,
      train: { ...c.finetune, steps: c.finetune.steps, seed: 1, lambda, loss: 'trd', margin: 0.1 },
      data,
    });
    const trainer = new Trainer(config, { out: fs.mkdtempSync(path.join(tmp, 'arm-')), dataset: data, progress: false, log: () => {}, maxSteps: WARMUP + STEPS + 100 });
    return { variant, lambda, trainer, wall: [] as number[], cpu: [] as number[] };
  }));
  for (let i = 0; i < WARMUP + STEPS; i++) {
    for (const a of arms) {
      const c0 = process.cpuUsage();
      const t0 = performance.now();
      withEnv(a.variant.env, () => a.trainer.trainStep());
      const wall = performance.now() - t0;
      const cu = process.cpuUsage(c0);
      if (i < WARMUP) continue;
      a.wall.push(wall);
      a.cpu.push((cu.user + cu.system) / 1000);
    }
  }
  const out = arms.map((a) => {
    let kernels = 0;
    let kernelMs = 0;
    let outsideMs = 0;
    const by = new Map<string, KernelStat>();
    for (let i = 0; i < 3; i++) {
      const p = withEnv(a.variant.env, () => profileOps(() => a.trainer.trainStep()));
      for (const k of p.kernels) {
        const e = by.get(k.name) ?? { name: k.name, count: 0, ms: 0 };
        e.count += k.count / 3;
        e.ms += k.totalMs / 3;
        by.set(k.name, e);
      }
      kernels += p.kernels.reduce((s, x) => s + x.count, 0);
      kernelMs += p.kernels.reduce((s, x) => s + x.totalMs, 0);
      outsideMs += p.outsideMs;
    }
    const params = [...(a.trainer as unknown as { params: Map<string, tf.Variable> }).params.values()].reduce((s, v) => s + v.size, 0);
    return { variant: a.variant.name, lambda: a.lambda, wall: median(a.wall), cpu: median(a.cpu), kernels: kernels / 3, kernelMs: kernelMs / 3, outsideMs: outsideMs / 3, params, top: [...by.values()].sort((x, y) => y.ms - x.ms).slice(0, 10) };
  });
  arms.forEach((a) => a.trainer.dispose());
  tf.dispose([latents, text, teacher]);
  fs.rmSync(tmp, { recursive: true, force: true });
  return out;
}

if (process.argv[2] === '--ours') {
  const info = await initBackend({ backend: 'tensorflow', quiet: true });
  const rows = ours();
  process.stdout.write(`@@${JSON.stringify({ oneDnn: info.oneDnn, rows })}\n`);
  process.exit(0);
}

const self = fileURLToPath(import.meta.url);
function child(oneDnnOff: boolean): { oneDnn: boolean | undefined; rows: ArmResult[] } {
  const env: NodeJS.ProcessEnv = { ...process.env, TF_CPP_MIN_LOG_LEVEL: '2' };
  if (oneDnnOff) env.TF_ENABLE_ONEDNN_OPTS = '0';
  else delete env.TF_ENABLE_ONEDNN_OPTS;
  const r = spawnSync(process.execPath, [...process.execArgv, self, '--ours'], { encoding: 'utf8', env, timeout: 1_800_000, maxBuffer: 1 << 26 });
  const line = (r.stdout ?? '').split('\n').find((l) => l.startsWith('@@'));
  if (!line) throw new Error(`ours (oneDNN ${oneDnnOff ? 'off' : 'default'}) failed: ${(r.stderr || '').trim().split('\n').slice(-3).join(' | ')}`);
  return JSON.parse(line.slice(2));
}

type TorchArm = { wall: number; cpu: number; params: number; threads: number; ops?: number };
/** PyTorch's toy step at `threads`: per λ, step wall and CPU medians. */
function torch(threads: number): Map<number, TorchArm> | string {
  const py = process.env.VREPA_TORCH_PYTHON;
  if (!py) return 'skipped: VREPA_TORCH_PYTHON is not set (point it at a python with torch)';
  const { c, latentShape, teacherGrid } = toySizes();
  const s = c.student;
  const [F, H, W, C] = latentShape as [number, number, number, number];
  const script = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', '..', 'trainer', 'bench', 'torch_tiny_step.py');
  const args = [
    script,
    ...['--heads', s.heads, '--head-dim', s.headDim, '--layers', s.layers, '--in-channels', C, '--text-dim', s.textDim, '--time-dim', s.timeEmbedDim, '--patch', 2],
    ...['--text-len', s.textLength, '--batch', c.finetune.batch, '--align-layer', s.alignLayer, '--proj-dim', s.projectorDim, '--teacher-dim', c.teacher.embedDim],
    ...['--margin', 0.1, '--lr', c.finetune.lr, '--latent', F, H, W, '--teacher-grid', teacherGrid.frames, teacherGrid.height, teacherGrid.width],
    ...['--lambdas', LAMBDA, 0, '--steps', STEPS, '--warmup', WARMUP, '--threads', threads, '--drop-first-frame', '--count-ops'],
  ].map(String);
  const r = spawnSync(py, args, { encoding: 'utf8', timeout: 600_000 });
  if (r.error) return `skipped: ${py} torch_tiny_step.py failed (${r.error.message})`;
  if (r.status !== 0) return `skipped: torch_tiny_step.py exited with ${r.status}: ${(r.stderr || '').trim().split('\n').pop()}`;
  const out = new Map<number, TorchArm>();
  for (const l of r.stdout.trim().split('\n')) {
    const j = JSON.parse(l) as { lambda: number; ms_each: number[]; cpu_ms_each: number[]; params: number; threads: number; ops_per_step?: number };
    out.set(j.lambda, { wall: median(j.ms_each), cpu: median(j.cpu_ms_each), params: j.params, threads: j.threads, ops: j.ops_per_step });
  }
  return out;
}

const loadBefore = load();
const torchRuns: Array<Map<number, TorchArm> | string> = [torch(1), torch(2)];
const variants = [
  { label: "TensorFlow's default oneDNN (on; as `vrepa repro` runs)", r: child(false) },
  { label: 'oneDNN off (TF_ENABLE_ONEDNN_OPTS=0)', r: child(true) },
];
torchRuns.push(torch(1), torch(2));
const skipped = torchRuns.find((t) => typeof t === 'string') as string | undefined;
const best = (lambda: number, key: 'wall' | 'cpu') => {
  const xs = torchRuns.filter((t): t is Map<number, TorchArm> => typeof t !== 'string').map((t) => t.get(lambda)!);
  return xs.reduce((b, x) => (x[key] < b[key] ? x : b));
};
const rows: BenchRow[] = [];
for (const lambda of [LAMBDA, 0]) {
  const name = lambda > 0 ? `+TRD (λ ${lambda}, margin 0.1)` : 'diffusion only (λ 0)';
  for (const v of variants) for (const variant of VARIANTS) {
    const a = v.r.rows.find((x) => x.lambda === lambda && x.variant === variant.name)!;
    const row: BenchRow = {
      name: `ours · ${name} · ${v.label} · ${variant.name}`,
      'step wall ms (median)': a.wall,
      'step CPU ms (median)': a.cpu,
      'kernels/step': a.kernels,
      'in kernels ms': a.kernelMs,
      'outside kernels ms': a.outsideMs,
      params: a.params,
    };
    if (!skipped) {
      row['ours / PyTorch (wall)'] = a.wall / best(lambda, 'wall').wall;
      row['ours / PyTorch (CPU)'] = a.cpu / best(lambda, 'cpu').cpu;
    }
    rows.push(row);
  }
  if (skipped) rows.push({ name: `PyTorch · ${name}: ${skipped}` });
  else {
    const w = best(lambda, 'wall');
    const cpu = best(lambda, 'cpu');
    rows.push({ name: `PyTorch · ${name} (torch_tiny_step.py; fastest of 1 and 2 threads, before and after ours: wall ${w.threads}t, CPU ${cpu.threads}t)`, 'step wall ms (median)': w.wall, 'step CPU ms (median)': cpu.cpu, 'aten ops/step (dispatched, incl. views)': cpu.ops, params: cpu.params });
    for (const t of torchRuns as Array<Map<number, TorchArm>>) {
      const x = t.get(lambda)!;
      rows.push({ name: `  PyTorch ${x.threads} thread(s), one run`, 'step wall ms (median)': x.wall, 'step CPU ms (median)': x.cpu });
    }
  }
}
const { c, latentShape, teacherGrid } = toySizes();
printBenchTable(
  `toy reproduction's training step (student ${c.student.layers} layers × ${c.student.heads} heads × ${c.student.headDim}, latents [${latentShape}], batch ${c.finetune.batch}, teacher ${teacherGrid.frames}×${teacherGrid.height}×${teacherGrid.width}×${c.teacher.embedDim}); tfjs-node; ${STEPS} timed steps per arm after ${WARMUP} warm-up, arms interleaved; target: ours / PyTorch ≤ 1.5 (load ${loadBefore} → ${load()})`,
  rows,
);
for (const v of variants) {
  const a = v.r.rows.find((x) => x.lambda === LAMBDA && x.variant === 'default')!;
  printBenchTable(
    `ours · +TRD · ${v.label} · default: the 10 costliest top-level kernels per step (profileOps, mean of 3 steps; ${a.kernels.toFixed(0)} kernels, ${a.kernelMs.toFixed(0)} ms inside, ${a.outsideMs.toFixed(0)} ms outside)`,
    a.top.map((k) => ({ name: k.name, 'count/step': k.count, 'ms/step': k.ms, 'ms each': k.ms / k.count })),
  );
}

/**
 * `pnpm --filter @vrepa/trainer bench:perf-guard`: the per-op overhead changes of wave 2c (issue 15) on and
 * off, in the same run, on the native backend. "before": VREPA_ADAMW_NATIVE=0 (AdamW as the multi-tensor op
 * chain, clipping's global norm as two ops per gradient and scaled gradient tensors) and VREPA_FUSED_CHAINS=0
 * (the transformer's chains as before); "after": the defaults. Each variant runs in its own child process,
 * round robin over VREPA_BENCH_ROUNDS rounds (default 2), keeping each number's minimum (the load of a
 * shared machine drifts).
 *
 * 1. The tiny preset's VideoREPA step (batch 2, λ 0.5; oneDNN off, as `vrepa train --preset tiny`): wall
 *    and CPU-time medians, the optimizer's share, top-level kernels and native binding calls per step
 *    (profileOps); PyTorch's step (bench/torch_tiny_step.py, 1 thread) in the same run when
 *    VREPA_TORCH_PYTHON names a python with torch.
 * 2. Large workloads (TensorFlow's default oneDNN, as the real presets run): matMul 1024³ and its
 *    transposed-B form, a batched matMul, TRD forward+backward at the paper's N = 3600 (D = 768), one
 *    CogVideoX-2B-sized block forward+backward (1 layer, 226 text + 192 vision tokens), and AdamW + global
 *    norm over that block's ~47M parameters. Guard rail: "after / before" ≤ 1.05 on every row.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import * as tf from '@tensorflow/tfjs';
import { AdamW, Rng, clipCoefficient, initBackend, printBenchTable, profileOps, timeIt, type BenchRow } from '@vrepa/core';
import { trdLoss } from '@vrepa/relations';
import { COGVIDEOX_2B_SCHEDULER, COGVIDEOX_2B_TRANSFORMER, CogVideoXDDIMScheduler, CogVideoXTransformer3DModel, trainingLoss } from '@vrepa/cogvideox';
import { Trainer, presetConfig } from '../src/index.js';

const STEPS = Number(process.env.VREPA_BENCH_STEPS ?? 12);
const ROUNDS = Number(process.env.VREPA_BENCH_ROUNDS ?? 2);
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const cpuMs = (f: () => void) => {
  const c0 = process.cpuUsage();
  f();
  const c = process.cpuUsage(c0);
  return (c.user + c.system) / 1000;
};

async function tinyChild(): Promise<Record<string, number>> {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'vrepa-guard-'));
  const t = new Trainer(presetConfig('tiny'), { out: tmp, progress: false, log: () => {}, maxSteps: STEPS + 8 });
  t.trainStep();
  t.trainStep();
  const wall: number[] = [];
  const cpu: number[] = [];
  const opt: number[] = [];
  for (let i = 0; i < STEPS; i++) {
    const t0 = performance.now();
    let log: ReturnType<Trainer['trainStep']> | undefined;
    cpu.push(cpuMs(() => (log = t.trainStep())));
    wall.push(performance.now() - t0);
    opt.push(log!.ms_opt);
  }
  let kernels = 0;
  let calls = 0;
  const P = 3;
  for (let i = 0; i < P; i++) {
    const p = profileOps(() => t.trainStep());
    kernels += p.kernels.reduce((s, k) => s + k.count, 0);
    calls += p.binding.reduce((s, k) => s + k.count, 0);
  }
  t.dispose();
  fs.rmSync(tmp, { recursive: true, force: true });
  return { stepWall: median(wall), stepCpu: median(cpu), opt: median(opt), kernels: kernels / P, calls: calls / P };
}

async function largeChild(): Promise<Record<string, number>> {
  const out: Record<string, number> = {};
  const ms = async (f: () => tf.Tensor | tf.Tensor[], runs = 3) => (await timeIt(f, { warmup: 1, runs })).medianMs;
  const r = (s: number[], seed = 0) => tf.randomNormal(s, 0, 1, 'float32', seed + 1);
  {
    const a = r([1024, 1024]), b = r([1024, 1024], 1);
    out.matmul1024 = await ms(() => tf.matMul(a, b), 5);
    out.matmul1024tB = await ms(() => tf.matMul(a, b, false, true), 5);
    const x = r([8, 256, 64]), y = r([8, 64, 256], 2);
    out.bmm = await ms(() => tf.matMul(x, y), 20);
    tf.dispose([a, b, x, y]);
  }
  {
    const N = 3600;
    const s = r([1, N, 768], 3) as tf.Tensor3D, t = r([1, N, 768], 4) as tf.Tensor3D;
    const grid = { frames: N / 150, height: 10, width: 15 };
    out.trd3600 = await ms(() => {
      const { value, grad } = tf.valueAndGrad((x: tf.Tensor) => trdLoss(x as tf.Tensor3D, t, { grid, margin: 0.1 }))(s);
      return [value, grad];
    });
    tf.dispose([s, t]);
  }
  {
    const cfg = { ...COGVIDEOX_2B_TRANSFORMER, sample_height: 16, sample_width: 16, sample_frames: 9, num_layers: 1 };
    const m = new CogVideoXTransformer3DModel(cfg, { init: 'torch' });
    const sched = new CogVideoXDDIMScheduler(COGVIDEOX_2B_SCHEDULER);
    const latents = r([1, 3, 16, 16, 16], 5);
    const text = r([1, 226, cfg.text_embed_dim], 6);
    const vars = m.trainableParameters();
    const rng = Rng.fromSeed(0);
    out.block2b = await ms(() => {
      const { value, grads } = tf.variableGrads(() => trainingLoss(m, sched, { latents, textEmbeddings: text, rng, timesteps: [500] }).total, vars);
      return [value, ...Object.values(grads)];
    }, 2);
    // AdamW + the global norm over the block's parameters (all of them: ~47M floats)
    const named = new Map(m.namedParameters().filter(([, p]) => p.trainable).map(([n, p]) => [n, p.value] as [string, tf.Variable]));
    const grads = new Map([...named].map(([n, p], i) => [n, tf.mul(r(p.shape, 7 + i), 1e-3)] as [string, tf.Tensor]));
    const opt = new AdamW(named, { lr: 1e-4, beta1: 0.9, beta2: 0.95, eps: 1e-8, weightDecay: 1e-4 });
    opt.apply(grads, 1e-4);
    const each: number[] = [];
    for (let i = 0; i < 3; i++) {
      const t0 = performance.now();
      const { coef } = clipCoefficient(grads, 1);
      opt.apply(grads, 1e-4, coef);
      each.push(performance.now() - t0);
    }
    out.adamw2b = median(each);
    out.adamw2bParams = [...named.values()].reduce((s, p) => s + p.size, 0);
    opt.dispose();
    tf.dispose([...grads.values(), latents, text]);
    m.dispose();
  }
  return out;
}

const mode = process.argv[2];
if (mode === '--tiny' || mode === '--large') {
  await initBackend({ backend: 'tensorflow', quiet: true });
  const r = mode === '--tiny' ? await tinyChild() : await largeChild();
  process.stdout.write(`@@${JSON.stringify(r)}\n`);
  process.exit(0);
}

const self = fileURLToPath(import.meta.url);
const variants: Array<[string, Record<string, string>]> = [
  ['before (VREPA_ADAMW_NATIVE=0 VREPA_FUSED_CHAINS=0)', { VREPA_ADAMW_NATIVE: '0', VREPA_FUSED_CHAINS: '0' }],
  ['after (defaults)', {}],
];
// the tiny step also with one change at a time
const tinyVariants: Array<[string, Record<string, string>]> = [
  ...variants,
  ['native AdamW + norm only (VREPA_FUSED_CHAINS=0)', { VREPA_FUSED_CHAINS: '0' }],
  ['transformer chains only (VREPA_ADAMW_NATIVE=0)', { VREPA_ADAMW_NATIVE: '0' }],
];
const load = () => os.loadavg().map((l) => l.toFixed(1)).join(' / ');
const best = new Map<string, Record<string, number>>();
const run = (part: '--tiny' | '--large', name: string, env: Record<string, string>) => {
  const extra = part === '--tiny' ? { TF_ENABLE_ONEDNN_OPTS: '0' } : {};
  const r = spawnSync(process.execPath, [...process.execArgv, self, part], { encoding: 'utf8', env: { ...process.env, TF_CPP_MIN_LOG_LEVEL: '2', ...extra, ...env }, timeout: 900_000, maxBuffer: 1 << 26 });
  const line = (r.stdout ?? '').split('\n').find((l) => l.startsWith('@@'));
  if (!line) throw new Error(`${part} ${name} failed: ${(r.stderr || '').trim().split('\n').slice(-3).join(' | ')}`);
  const v = JSON.parse(line.slice(2)) as Record<string, number>;
  const key = `${part}:${name}`;
  const b = best.get(key);
  best.set(key, b ? Object.fromEntries(Object.entries(v).map(([k, x]) => [k, Math.min(x, b[k] ?? Infinity)])) : v);
};

// PyTorch's tiny step (1 thread), between our runs
let torch: { ms: number; cpu: number } | string = 'skipped: VREPA_TORCH_PYTHON is not set';
const torchRuns: Array<{ ms: number; cpu: number }> = [];
const torchOnce = () => {
  const py = process.env.VREPA_TORCH_PYTHON;
  if (!py) return;
  const c = presetConfig('tiny');
  const tc = { ...COGVIDEOX_2B_TRANSFORMER, ...(c.model.transformer as Record<string, unknown>) } as unknown as Record<string, number>;
  const [F, H, W, C] = c.data.latent_shape!;
  const g = c.teacher.grid!;
  const args = [
    path.join(path.dirname(self), 'torch_tiny_step.py'),
    ...['--heads', tc.num_attention_heads, '--head-dim', tc.attention_head_dim, '--layers', tc.num_layers, '--in-channels', C, '--text-dim', tc.text_embed_dim],
    ...['--time-dim', tc.time_embed_dim, '--patch', tc.patch_size, '--text-len', c.data.text_seq_length, '--batch', c.optim.batch_size],
    ...['--align-layer', c.align.align_layer, '--proj-dim', c.align.projector_dim, '--teacher-dim', c.teacher.dim, '--margin', c.align.margin, '--lr', c.optim.learning_rate],
    ...['--latent', F, H, W, '--teacher-grid', g.frames, g.height, g.width, '--lambdas', c.align.proj_coeff, '--steps', STEPS, '--warmup', 4, '--threads', 1],
  ].map(String);
  const r = spawnSync(py, args, { encoding: 'utf8', timeout: 300_000 });
  if (r.status !== 0) {
    torch = `skipped: torch_tiny_step.py failed: ${(r.stderr || '').trim().split('\n').pop()}`;
    return;
  }
  const j = JSON.parse(r.stdout.trim().split('\n').pop()!) as { ms_each: number[]; cpu_ms_each: number[] };
  torchRuns.push({ ms: median(j.ms_each), cpu: median(j.cpu_ms_each) });
};
for (let round = 0; round < ROUNDS; round++) {
  torchOnce();
  for (const [name, env] of tinyVariants) run('--tiny', name, env);
}
if (torchRuns.length) torch = { ms: Math.min(...torchRuns.map((t) => t.ms)), cpu: Math.min(...torchRuns.map((t) => t.cpu)) };
const tinyRows: BenchRow[] = tinyVariants.map(([name]) => {
  const v = best.get(`--tiny:${name}`)!;
  return {
    name,
    'step ms (median)': v.stepWall,
    'step CPU ms (median)': v.stepCpu,
    'optimizer ms': v.opt,
    'kernels/step': v.kernels,
    'binding calls/step': v.calls,
    ...(typeof torch === 'string' ? {} : { 'ours / PyTorch (wall)': v.stepWall! / torch.ms, 'ours / PyTorch (CPU)': v.stepCpu! / torch.cpu }),
  };
});
tinyRows.push(typeof torch === 'string' ? { name: `PyTorch: ${torch}` } : { name: `PyTorch ${'2.x'} CPU, 1 thread (bench/torch_tiny_step.py)`, 'step ms (median)': torch.ms, 'step CPU ms (median)': torch.cpu });
printBenchTable(`tiny VideoREPA step (batch 2, λ 0.5), tfjs-node, oneDNN off; ${ROUNDS} rounds round-robin, minimum over rounds (load ${load()})`, tinyRows);

if (process.env.VREPA_BENCH_LARGE !== '0') {
  for (let round = 0; round < ROUNDS; round++) for (const [name, env] of variants) run('--large', name, env);
  const b = best.get(`--large:${variants[0]![0]}`)!;
  const a = best.get(`--large:${variants[1]![0]}`)!;
  const labels: Array<[string, string]> = [
    ['matmul1024', 'matMul 1024³'],
    ['matmul1024tB', 'matMul 1024³, transposed B'],
    ['bmm', 'batched matMul [8,256,64]×[8,64,256]'],
    ['trd3600', 'TRD forward+backward, N 3600, D 768'],
    ['block2b', 'CogVideoX-2B block forward+backward (226 + 192 tokens)'],
    ['adamw2b', `global norm + AdamW over that block's parameters (${((b.adamw2bParams ?? 0) / 1e6).toFixed(1)}M)`],
  ];
  printBenchTable(
    `large workloads, tfjs-node, TensorFlow's default oneDNN; median ms, minimum over ${ROUNDS} rounds (load ${load()})`,
    labels.map(([k, label]) => ({ name: label, 'before ms': b[k], 'after ms': a[k], 'after / before': a[k]! / b[k]!, 'guard (≤ 1.05)': a[k]! / b[k]! <= 1.05 ? 'ok' : 'SLOWER' })),
  );
}

/**
 * `pnpm --filter @vrepa/trainer bench:perf-guard`: the per-op overhead changes of wave 2c (issue 15) on and
 * off, on the native backend, in ONE process with the variants interleaved step by step (separate processes
 * differ by more than these changes on a loaded machine: measured here, the same build varied ±8 % from
 * process to process). The toggles are read at run time:
 *   VREPA_ADAMW_NATIVE=0  AdamW as the multi-tensor op chain and clipping's global norm as two ops per
 *                         gradient, the gradients scaled into new tensors (each variant has its own Trainer,
 *                         built under its setting: AdamW picks its layout when it is made);
 *   VREPA_FUSED_CHAINS=0  the CogVideoX block's AdaLN chains by autodiff (tf.mul / tf.add);
 *   VREPA_TF_CAST_FIX=0   tfjs-node's stock Cast (a TensorFlow op even float32 → float32) and Mean (+ a cast);
 *   VREPA_TF_RESHAPE_VIEW=0  tfjs-node's stock Reshape (an eager op + an int32 shape tensor) instead of a view
 *                         (binding patch 31).
 *   VREPA_TF_FAST_EXEC=0  (wave 3) tfjs-node's stock executeOp (ids in a JS array, one JS object per output);
 *   VREPA_TF_SMALL_BINARY=0  (wave 3) small float32 add/sub/mul/div as eager ops, not in the binding.
 *   VREPA_TF_SMALL_BINARY_MAX=65536  (wave 4) smallBinary only up to 65,536 elements, as wave 3 left it
 *                         (binding patch 33 takes larger ones; VREPA_TF_BINARY_SPLIT splits them over two threads);
 *   VREPA_TF_MUL_ADD=1    (wave 4, opt-in) modulate / gatedResidual forwards as one native mulAdd.
 *   VREPA_TF_GRAPH=0      (wave 5) every micro-batch eager, not traced and run as one TensorFlow graph
 *                         (binding patch 34; the default with oneDNN off, as this tiny part runs).
 * "before wave 5" runs every step eagerly (the fourth wave's state), "before wave 4" also limits smallBinary to
 * 65,536 elements, "before wave 3" also turns off the two wave-3 changes, "before wave 2" all seven, "after" none; the other rows turn one change off at a time. The guard rails compare
 * "before wave 5" (eager steps) with "after".
 *
 * 1. The tiny preset's VideoREPA step (batch 2, λ 0.5; oneDNN off, as `vrepa train --preset tiny`): CPU-time
 *    median per variant (the variants' steps interleaved), the optimizer's median, top-level kernels and
 *    native binding calls per step (profileOps); PyTorch's same step (bench/torch_tiny_step.py, 1 thread) in
 *    the same run when VREPA_TORCH_PYTHON names a python with torch.
 * 2. Large workloads (TensorFlow's default oneDNN, as the real presets run), before and after interleaved
 *    per round: matMul 1024³ and its transposed-B form, a batched matMul, TRD forward+backward at the paper's
 *    N = 3600 (D = 768), one CogVideoX-2B-sized block forward+backward (1 layer, 226 text + 192 vision
 *    tokens), and global norm + AdamW over that block's 67M parameters. Guard rail: the median over rounds
 *    of after / before ≤ 1.05 on every row.
 *
 * VREPA_BENCH_STEPS (tiny steps per variant, default 30), VREPA_BENCH_ROUNDS (large rounds, default 4);
 * VREPA_BENCH_TINY=0 / VREPA_BENCH_LARGE=0 skip a part.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import * as tf from '@tensorflow/tfjs';
import { AdamW, Rng, clipCoefficient, initBackend, printBenchTable, profileOps, type BenchRow } from '@vrepa/core';
import { trdLoss } from '@vrepa/relations';
import { COGVIDEOX_2B_SCHEDULER, COGVIDEOX_2B_TRANSFORMER, CogVideoXDDIMScheduler, CogVideoXTransformer3DModel, trainingLoss } from '@vrepa/cogvideox';
import { Trainer, presetConfig } from '../src/index.js';

const STEPS = Number(process.env.VREPA_BENCH_STEPS ?? 30);
const ROUNDS = Number(process.env.VREPA_BENCH_ROUNDS ?? 4);
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const load = () => os.loadavg().map((l) => l.toFixed(1)).join(' / ');
const WAVE2 = ['VREPA_ADAMW_NATIVE', 'VREPA_FUSED_CHAINS', 'VREPA_TF_CAST_FIX', 'VREPA_TF_RESHAPE_VIEW'] as const;
const WAVE3 = ['VREPA_TF_FAST_EXEC', 'VREPA_TF_SMALL_BINARY'] as const;
/** Wave 5 (binding patch 34): the trainer's micro-batches as one TensorFlow graph (default with oneDNN off). */
const WAVE5 = ['VREPA_TF_GRAPH'] as const;
const TOGGLES = [...WAVE2, ...WAVE3, ...WAVE5] as const;
type Variant = { name: string; off: Array<(typeof TOGGLES)[number]>; env?: Record<string, string> };
/** Wave 4's settings (binding patch 33); a variant sets them through `env`, others leave them unset. */
const WAVE4 = ['VREPA_TF_SMALL_BINARY_MAX', 'VREPA_TF_BINARY_SPLIT', 'VREPA_TF_MUL_ADD'] as const;
/** Before the third wave (binding patch 32): the second wave's state. */
const BEFORE: Variant = { name: 'before wave 3 (executeOpIo, smallBinary off)', off: [...WAVE3, ...WAVE5] };
/** Before the fourth wave (binding patch 33): the third wave's state (eager steps). */
const BEFORE4: Variant = { name: 'before wave 4 (smallBinary ≤ 65,536 elements)', off: [...WAVE5], env: { VREPA_TF_SMALL_BINARY_MAX: '65536' } };
/** Before the fifth wave: the fourth wave's defaults, every op eager; the guard rails compare against it. */
const BEFORE5: Variant = { name: 'before wave 5 (eager steps: VREPA_TF_GRAPH=0)', off: [...WAVE5] };
const BEFORE_WAVE2: Variant = { name: 'before wave 2 (all seven changes off)', off: [...TOGGLES] };
const AFTER: Variant = { name: 'after (defaults)', off: [] };
const setVariant = (v: Variant) => {
  for (const t of TOGGLES) {
    if (v.off.includes(t)) process.env[t] = '0';
    else delete process.env[t];
  }
  for (const k of WAVE4) {
    const val = v.env?.[k];
    if (val === undefined) delete process.env[k];
    else process.env[k] = val;
  }
};
const cpuMs = (f: () => void) => {
  const c0 = process.cpuUsage();
  f();
  const c = process.cpuUsage(c0);
  return (c.user + c.system) / 1000;
};

function tinyPart(): BenchRow[] {
  const variants: Variant[] = [
    BEFORE,
    AFTER,
    BEFORE5,
    BEFORE4,
    { name: 'after, with large add/sub/mul/div split over 2 threads (VREPA_TF_BINARY_SPLIT=32768)', off: [], env: { VREPA_TF_BINARY_SPLIT: '32768' } },
    { name: 'after, with the opt-in mulAdd (VREPA_TF_MUL_ADD=1)', off: [], env: { VREPA_TF_MUL_ADD: '1' } },
    { name: 'after, but the stock executeOp (VREPA_TF_FAST_EXEC=0)', off: ['VREPA_TF_FAST_EXEC'] },
    { name: 'after, but small add/sub/mul/div as eager ops (VREPA_TF_SMALL_BINARY=0)', off: ['VREPA_TF_SMALL_BINARY'] },
    BEFORE_WAVE2,
    { name: 'after, but AdamW + norm as op chains (VREPA_ADAMW_NATIVE=0)', off: ['VREPA_ADAMW_NATIVE'] },
    { name: 'after, but the block chains by autodiff (VREPA_FUSED_CHAINS=0)', off: ['VREPA_FUSED_CHAINS'] },
    { name: 'after, but stock Cast / Mean kernels (VREPA_TF_CAST_FIX=0)', off: ['VREPA_TF_CAST_FIX'] },
    { name: 'after, but the stock Reshape (VREPA_TF_RESHAPE_VIEW=0)', off: ['VREPA_TF_RESHAPE_VIEW'] },
  ];
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'vrepa-guard-'));
  const trainers = variants.map((v) => {
    setVariant(v);
    return new Trainer(presetConfig('tiny'), { out: fs.mkdtempSync(path.join(tmp, 'run-')), progress: false, log: () => {}, maxSteps: STEPS + 20 });
  });
  const cpu = variants.map(() => [] as number[]);
  const opt = variants.map(() => [] as number[]);
  for (let i = 0; i < STEPS + 3; i++) {
    variants.forEach((v, k) => {
      setVariant(v);
      let log: ReturnType<Trainer['trainStep']> | undefined;
      const ms = cpuMs(() => (log = trainers[k]!.trainStep()));
      if (i < 3) return; // warm-up
      cpu[k]!.push(ms);
      opt[k]!.push(log!.ms_opt);
    });
  }
  const counts = variants.map((v, k) => {
    setVariant(v);
    let kernels = 0;
    let calls = 0;
    for (let i = 0; i < 3; i++) {
      const p = profileOps(() => trainers[k]!.trainStep());
      kernels += p.kernels.reduce((s, x) => s + x.count, 0);
      calls += p.binding.reduce((s, x) => s + x.count, 0);
    }
    return { kernels: kernels / 3, calls: calls / 3 };
  });
  setVariant(AFTER);
  trainers.forEach((t) => t.dispose());
  fs.rmSync(tmp, { recursive: true, force: true });
  const base = median(cpu[0]!);
  return variants.map((v, k) => ({
    name: v.name,
    'step CPU ms (median)': median(cpu[k]!),
    'step CPU × before wave 3': median(cpu[k]!) / base,
    'optimizer ms (median)': median(opt[k]!),
    'kernels/step': counts[k]!.kernels,
    'binding calls/step': counts[k]!.calls,
  }));
}

async function largePart(): Promise<BenchRow[]> {
  const r = (s: number[], seed = 0) => tf.randomNormal(s, 0, 1, 'float32', seed + 1);
  const time = (f: () => tf.Tensor | tf.Tensor[], runs: number) => {
    const each: number[] = [];
    tf.dispose(f()); // warm-up
    for (let i = 0; i < runs; i++) {
      const t0 = performance.now();
      const out = f();
      for (const t of [out].flat()) t.dataSync();
      each.push(performance.now() - t0);
      tf.dispose(out);
    }
    return median(each);
  };
  const a = r([1024, 1024]), b = r([1024, 1024], 1);
  const x = r([8, 256, 64]), y = r([8, 64, 256], 2);
  const N = 3600;
  const s = r([1, N, 768], 3) as tf.Tensor3D, t = r([1, N, 768], 4) as tf.Tensor3D;
  const grid = { frames: N / 150, height: 10, width: 15 };
  const cfg = { ...COGVIDEOX_2B_TRANSFORMER, sample_height: 16, sample_width: 16, sample_frames: 9, num_layers: 1 };
  const m = new CogVideoXTransformer3DModel(cfg, { init: 'torch' });
  const sched = new CogVideoXDDIMScheduler(COGVIDEOX_2B_SCHEDULER);
  const latents = r([1, 3, 16, 16, 16], 5);
  const text = r([1, 226, cfg.text_embed_dim], 6);
  const vars = m.trainableParameters();
  const rng = Rng.fromSeed(0);
  // the optimizer benchmark updates copies of the block's parameters (each variant its own AdamW and copies)
  const shapes = m.namedParameters().filter(([, p]) => p.trainable).map(([n, p]) => [n, p.value.shape] as const);
  const grads = new Map(shapes.map(([n, sh], i) => [n, tf.mul(r(sh, 7 + i), 1e-3)] as [string, tf.Tensor]));
  const opts = { lr: 1e-4, beta1: 0.9, beta2: 0.95, eps: 1e-8, weightDecay: 1e-4 };
  const optimizers = [BEFORE5, AFTER].map((v) => {
    setVariant(v);
    const params = new Map(shapes.map(([n, sh], i) => [n, tf.variable(r(sh, 100 + i))] as [string, tf.Variable]));
    return { params, opt: new AdamW(params, opts) };
  });
  const work: Array<[string, string, (k: number) => number]> = [
    ['matmul', 'matMul 1024³', () => time(() => tf.matMul(a, b), 5)],
    ['matmulTB', 'matMul 1024³, transposed B', () => time(() => tf.matMul(a, b, false, true), 5)],
    ['bmm', 'batched matMul [8,256,64]×[8,64,256]', () => time(() => tf.matMul(x, y), 20)],
    ['trd', 'TRD forward+backward, N 3600, D 768', () => time(() => {
      const { value, grad } = tf.valueAndGrad((z: tf.Tensor) => trdLoss(z as tf.Tensor3D, t, { grid, margin: 0.1 }))(s);
      return [value, grad];
    }, 3)],
    ['block', 'CogVideoX-2B block forward+backward (1 layer, 226 + 192 tokens)', () => time(() => {
      const { value, grads: g } = tf.variableGrads(() => trainingLoss(m, sched, { latents, textEmbeddings: text, rng, timesteps: [500] }).total, vars);
      return [value, ...Object.values(g)];
    }, 2)],
    ['adamw', `global norm + AdamW over that block's parameters (${(shapes.reduce((n, [, sh]) => n + sh.reduce((p, q) => p * q, 1), 0) / 1e6).toFixed(1)}M)`, (k) => {
      const { opt } = optimizers[k]!;
      const each: number[] = [];
      for (let i = 0; i < 3; i++) {
        const t0 = performance.now();
        const { coef } = clipCoefficient(grads, 1);
        opt.apply(grads, 1e-4, coef);
        optimizers[k]!.params.values().next().value!.dataSync();
        each.push(performance.now() - t0);
      }
      return median(each);
    }],
  ];
  const res = new Map(work.map(([key]) => [key, [[] as number[], [] as number[]]] as const));
  for (let round = 0; round < ROUNDS; round++) {
    for (const [key, , f] of work) {
      [BEFORE5, AFTER].forEach((v, k) => {
        setVariant(v);
        res.get(key)![k]!.push(f(k));
      });
    }
  }
  setVariant(AFTER);
  optimizers.forEach(({ params, opt }) => {
    opt.dispose();
    tf.dispose([...params.values()]);
  });
  tf.dispose([a, b, x, y, s, t, latents, text, ...grads.values()]);
  m.dispose();
  return work.map(([key, label]) => {
    const [bs, as] = res.get(key)!;
    const ratio = median(as!.map((v, i) => v / bs![i]!));
    return { name: label, 'before ms (median)': median(bs!), 'after ms (median)': median(as!), 'after / before (median of rounds)': ratio, 'guard (≤ 1.05)': ratio <= 1.05 ? 'ok' : 'SLOWER' };
  });
}

const mode = process.argv[2];
if (mode === '--tiny' || mode === '--large') {
  await initBackend({ backend: 'tensorflow', quiet: true });
  const rows = mode === '--tiny' ? tinyPart() : await largePart();
  process.stdout.write(`@@${JSON.stringify(rows)}\n`);
  process.exit(0);
}

const self = fileURLToPath(import.meta.url);
const child = (part: '--tiny' | '--large'): BenchRow[] => {
  const extra = part === '--tiny' ? { TF_ENABLE_ONEDNN_OPTS: '0' } : {};
  const r = spawnSync(process.execPath, [...process.execArgv, self, part], { encoding: 'utf8', env: { ...process.env, TF_CPP_MIN_LOG_LEVEL: '2', ...extra }, timeout: 1_800_000, maxBuffer: 1 << 26 });
  const line = (r.stdout ?? '').split('\n').find((l) => l.startsWith('@@'));
  if (!line) throw new Error(`${part} failed: ${(r.stderr || '').trim().split('\n').slice(-3).join(' | ')}`);
  return JSON.parse(line.slice(2)) as BenchRow[];
};

/** PyTorch's tiny step (1 thread): step and CPU medians. */
function torchTiny(): { ms: number; cpu: number } | string {
  const py = process.env.VREPA_TORCH_PYTHON;
  if (!py) return 'skipped: VREPA_TORCH_PYTHON is not set (point it at a python with torch)';
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
  if (r.status !== 0) return `skipped: torch_tiny_step.py failed: ${(r.stderr || '').trim().split('\n').pop()}`;
  const j = JSON.parse(r.stdout.trim().split('\n').pop()!) as { ms_each: number[]; cpu_ms_each: number[] };
  return { ms: median(j.ms_each), cpu: median(j.cpu_ms_each) };
}

if (process.env.VREPA_BENCH_TINY !== '0') {
  const t1 = torchTiny();
  const rows = child('--tiny');
  const t2 = torchTiny();
  const torch = typeof t1 === 'string' ? t1 : typeof t2 === 'string' ? t2 : { ms: Math.min(t1.ms, t2.ms), cpu: Math.min(t1.cpu, t2.cpu) };
  for (const row of rows) if (typeof torch !== 'string') row['ours / PyTorch (CPU)'] = (row['step CPU ms (median)'] as number) / torch.cpu;
  rows.push(typeof torch === 'string' ? { name: `PyTorch: ${torch}` } : { name: 'PyTorch CPU, 1 thread (bench/torch_tiny_step.py), before and after ours; the faster', 'step CPU ms (median)': torch.cpu });
  printBenchTable(`tiny VideoREPA step (batch 2, λ 0.5), tfjs-node, oneDNN off; the variants' steps interleaved in one process, ${STEPS} each (load ${load()})`, rows);
}
if (process.env.VREPA_BENCH_LARGE !== '0') {
  printBenchTable(`large workloads, tfjs-node, TensorFlow's default oneDNN; before (wave 4's state: eager steps) and after interleaved in one process, ${ROUNDS} rounds (wall ms, medians; load ${load()})`, child('--large'));
}

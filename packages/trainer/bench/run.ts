/**
 * `pnpm bench` for @vrepa/trainer.
 *
 * 1. The tiny preset's training step (batch 2, latents 3×12×12×4, 2 blocks, TRD on a 4×2×2 teacher grid)
 *    on each backend that loads here (tfjs-node, wasm): steps/s and the step split into data (cache),
 *    forward+backward (transformer + projector + TRD) and optimizer (clipping + AdamW). Baseline row: the
 *    same step without the alignment term (λ = 0: plain diffusion finetune), measured in the same run.
 * 2. The cache's saving per step on a dataset folder (tiny-folder preset): encoding one clip (ffmpeg
 *    decode + VAE + T5 + teacher) vs reading it from the cache.
 *
 * 3. The real presets: one block at the real width measured, scaled by FLOPs to the recipe's token count
 *    (ESTIMATES; VREPA_BENCH_ESTIMATE=0 skips them).
 *
 * PyTorch anchor (when VREPA_TORCH_PYTHON names a python with torch; otherwise a row says it is skipped):
 * bench/torch_tiny_step.py runs the same step at the tiny preset's sizes (read from the preset here) on a
 * faithful small CogVideoX-style block stack written in plain PyTorch (NOT diffusers' exact class): same
 * widths, depth, patching, AdaLN blocks, joint attention with QK norm, v-prediction loss, projector, TRD,
 * clip_grad_norm_ and AdamW, 2 threads, mean over the same number of steps after 4 warm-up steps (its first
 * steps carry lazy initialisation). Its rows follow ours; 'ours / PyTorch (medians)' compares the median
 * step times at equal λ: under load PyTorch's 2-thread barriers on these tiny ops turn into stalls of up to
 * a second (seen here: single steps of 500–900 ms among 7 ms ones), which the mean keeps and the median drops.
 * Numbers taken while other jobs use the 2 cores are noisy: compare rows within one run. The CPU columns
 * (process CPU time per step, median) are far less disturbed by other jobs than wall time; with
 * VREPA_TORCH_THREADS=1 PyTorch's CPU time carries no thread-pool spinning.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import * as tf from '@tensorflow/tfjs';
import { initBackend, printBenchTable, switchBackend, timeIt, type BenchRow } from '@vrepa/core';
import { initModel, findFfmpeg, COGVIDEOX_2B_TRANSFORMER } from '@vrepa/cogvideox';
import { fileURLToPath } from 'node:url';
import { Trainer, oneDnnFor, presetConfig, prepareFolder, readSample, decodeClip, buildEncoders, parseResolution, type TrainConfig, type StepLog } from '../src/index.js';

const STEPS = Number(process.env.VREPA_BENCH_STEPS ?? 12);
/** PyTorch's intra-op threads (VREPA_TORCH_THREADS, default 2 like the two cores tfjs-node uses). */
const TORCH_THREADS = Number(process.env.VREPA_TORCH_THREADS ?? 2);
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'vrepa-trainer-bench-'));

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

async function stepStats(c: TrainConfig) {
  const t = new Trainer(c, { out: fs.mkdtempSync(path.join(tmp, 'run-')), progress: false, log: () => {}, maxSteps: STEPS + 2 });
  try {
    t.trainStep();
    t.trainStep(); // warm-up (kernels, caches)
    const logs: StepLog[] = [];
    const each: number[] = [];
    const cpu: number[] = [];
    const t0 = performance.now();
    for (let i = 0; i < STEPS; i++) {
      const t1 = performance.now();
      const c0 = process.cpuUsage();
      logs.push(t.trainStep());
      const c = process.cpuUsage(c0);
      each.push(performance.now() - t1);
      cpu.push((c.user + c.system) / 1000);
    }
    const wall = performance.now() - t0;
    const mean = (k: 'ms_data' | 'ms_fwd_bwd' | 'ms_opt') => logs.reduce((a, l) => a + l[k], 0) / logs.length;
    return { msStep: wall / STEPS, msMedian: median(each), cpuMedian: median(cpu), stepsPerS: (1000 * STEPS) / wall, data: mean('ms_data'), fwdBwd: mean('ms_fwd_bwd'), opt: mean('ms_opt') };
  } finally {
    t.dispose();
  }
}

/** The PyTorch step at the preset's sizes: one result per λ (0 and the preset's), or why there is none. */
type TorchStep = { msStep: number; msMedian: number; cpuMedian: number; stepsPerS: number; fwdBwd: number; opt: number };
function torchStep(c: TrainConfig): Map<number, TorchStep> | string {
  const py = process.env.VREPA_TORCH_PYTHON;
  if (!py) return 'skipped: VREPA_TORCH_PYTHON is not set (point it at a python with torch)';
  if (typeof c.model.transformer === 'string') return 'skipped: the preset names a transformer folder, not a config';
  const tc = { ...COGVIDEOX_2B_TRANSFORMER, ...(c.model.transformer as Record<string, unknown>) } as typeof COGVIDEOX_2B_TRANSFORMER;
  const [F, H, W, C] = c.data.latent_shape ?? [];
  const g = c.teacher.grid;
  if (F === undefined || !g || !c.teacher.dim) return 'skipped: the preset has no synthetic latent_shape / teacher grid';
  const args = [
    path.join(path.dirname(fileURLToPath(import.meta.url)), 'torch_tiny_step.py'),
    ...['--heads', tc.num_attention_heads, '--head-dim', tc.attention_head_dim, '--layers', tc.num_layers, '--in-channels', C, '--text-dim', tc.text_embed_dim],
    ...['--time-dim', tc.time_embed_dim, '--patch', tc.patch_size, '--text-len', c.data.text_seq_length, '--batch', c.optim.batch_size],
    ...['--align-layer', c.align.align_layer, '--proj-dim', c.align.projector_dim, '--teacher-dim', c.teacher.dim, '--margin', c.align.margin, '--lr', c.optim.learning_rate],
    ...['--latent', F, H, W, '--teacher-grid', g.frames, g.height, g.width, '--lambdas', 0, c.align.proj_coeff, '--steps', STEPS, '--warmup', 4, '--threads', TORCH_THREADS],
  ].map(String);
  const r = spawnSync(py, args, { encoding: 'utf8', timeout: 180_000 });
  if (r.error) return `skipped: ${py} bench/torch_tiny_step.py failed (${r.error.message})`;
  if (r.status !== 0) return `skipped: ${py} bench/torch_tiny_step.py exited with ${r.status}: ${(r.stderr || '').trim().split('\n').pop()}`;
  const out = new Map<number, TorchStep>();
  for (const line of r.stdout.trim().split('\n')) {
    const j = JSON.parse(line) as { lambda: number; ms_step: number; ms_each: number[]; cpu_ms_each: number[]; steps_per_s: number; ms_fwd_bwd: number; ms_opt: number };
    out.set(j.lambda, { msStep: j.ms_step, msMedian: median(j.ms_each), cpuMedian: median(j.cpu_ms_each), stepsPerS: j.steps_per_s, fwdBwd: j.ms_fwd_bwd, opt: j.ms_opt });
  }
  return out;
}

// The real-preset estimates (section 3) run in a child process with TensorFlow's default oneDNN (as a
// `vrepa train` of those presets does); sections 1–2 with the tiny preset's setting, as `vrepa train --preset tiny`.
const ESTIMATE_ONLY = process.env.VREPA_BENCH_PART === 'estimate';
const info = await initBackend({ quiet: true, oneDnn: ESTIMATE_ONLY ? undefined : oneDnnFor(presetConfig('tiny')) });
const backends = [...new Set([info.name, 'wasm'])].filter((b) => b === 'tensorflow' || b === 'wasm' || b === 'cpu') as Array<'tensorflow' | 'wasm' | 'cpu'>;

if (!ESTIMATE_ONLY) {
  const rows: BenchRow[] = [];
  const tinyConfig = presetConfig('tiny');
  const torch = torchStep(tinyConfig); // first, alone, before our backends warm up
  const ratioToTorch = (lambda: number, ms: number, cpuMs: number) =>
    typeof torch === 'string' || !torch.has(lambda) ? {} : { 'ours / PyTorch (medians)': ms / torch.get(lambda)!.msMedian, 'ours / PyTorch (CPU medians)': cpuMs / torch.get(lambda)!.cpuMedian };
  for (const b of backends) {
    try {
      await switchBackend(b);
    } catch (e) {
      rows.push({ name: `${b}: not available (${(e as Error).message.split('\n')[0]})` });
      continue;
    }
    const base = await stepStats(presetConfig('tiny', { align: { proj_coeff: 0 } }));
    const full = await stepStats(presetConfig('tiny'));
    for (const [name, s, lambda] of [[`${b} · baseline: diffusion only (λ = 0)`, base, 0], [`${b} · VideoREPA step (L_diff + 0.5·TRD)`, full, tinyConfig.align.proj_coeff]] as const) {
      rows.push({
        name,
        'ms/step': s.msStep,
        'median ms/step': s.msMedian,
        'median CPU ms/step': s.cpuMedian,
        'steps/s': s.stepsPerS,
        'data ms': s.data,
        'fwd+bwd ms': s.fwdBwd,
        'optimizer ms': s.opt,
        '× baseline': s.msStep / base.msStep,
        ...ratioToTorch(lambda, s.msMedian, s.cpuMedian),
      });
    }
  }
  if (typeof torch === 'string') rows.push({ name: `PyTorch anchor ${torch}` });
  else {
    const base = torch.get(0);
    for (const [lambda, s] of torch) {
      rows.push({
        name: lambda === 0 ? 'PyTorch · diffusion only (λ = 0), small CogVideoX-style stack (torch_tiny_step.py)' : `PyTorch · VideoREPA step (L_diff + ${lambda}·TRD), small CogVideoX-style stack`,
        'ms/step': s.msStep,
        'median ms/step': s.msMedian,
        'median CPU ms/step': s.cpuMedian,
        'steps/s': s.stepsPerS,
        'data ms': '–',
        'fwd+bwd ms': s.fwdBwd,
        'optimizer ms': s.opt,
        '× baseline': base ? s.msStep / base.msStep : '–',
        'ours / PyTorch (medians)': 1,
        'ours / PyTorch (CPU medians)': 1,
      });
    }
  }
  printBenchTable(`tiny preset training step (batch 2, ${STEPS} steps after 2 warm-up; PyTorch ${TORCH_THREADS} thread(s); CPU = this process's CPU time, all threads; load average ${os.loadavg().map((l) => l.toFixed(1)).join(' / ')})`, rows);

  // ---- cache saving on a dataset folder
  await switchBackend(backends[0]!);
  const pipeline = path.join(tmp, 'pipeline');
  initModel('tiny', pipeline, { seed: 0 });
  const data = path.join(tmp, 'data');
  fs.mkdirSync(data);
  for (let i = 0; i < 4; i++) {
    const r = spawnSync(findFfmpeg(), ['-v', 'error', '-y', '-f', 'lavfi', '-i', `testsrc=size=64x48:rate=8`, '-frames:v', '12', '-pix_fmt', 'yuv420p', path.join(data, `c${i}.mp4`)]);
    if (r.status !== 0) throw new Error(String(r.stderr));
  }
  fs.writeFileSync(path.join(data, 'captions.csv'), ['video,caption', ...[0, 1, 2, 3].map((i) => `c${i}.mp4,clip ${i}`)].join('\n') + '\n');
  const fc = presetConfig('tiny-folder', { model: { pipeline }, data: { dataset_dir: data, cache_dir: path.join(tmp, 'cache') } });
  const enc = buildEncoders(fc);
  const size = parseResolution(fc.data.train_resolution);
  const encodeOnce = () => {
    const v = decodeClip(path.join(data, 'c0.mp4'), size);
    const outs = tf.tidy(() => [enc.pipeline.vae.encodeToLatents(v, { seed: 0 }), enc.pipeline.encodePrompt(['clip 0'], fc.data.text_seq_length), enc.teacher!.encodeVideo(v).tokens]);
    outs.forEach((o) => o.dataSync());
    tf.dispose([v, ...outs]);
  };
  encodeOnce();
  let t0 = performance.now();
  for (let i = 0; i < 4; i++) encodeOnce();
  const encodeMs = (performance.now() - t0) / 4;
  enc.dispose();
  prepareFolder(fc);
  t0 = performance.now();
  for (let i = 0; i < 20; i++) {
    const s = readSample(path.join(tmp, 'cache', `sample-${i % 4}.safetensors`));
    tf.dispose([s.latents, s.text, s.teacher!]);
  }
  const readMs = (performance.now() - t0) / 20;
  printBenchTable('dataset-folder cache (tiny-folder: 9×48×48 clips, 226 text tokens; per clip)', [
    { name: 'baseline: encode (ffmpeg decode + VAE + T5 + teacher)', ms: encodeMs, '× baseline': 1 },
    { name: 'cached (read sample-<i>.safetensors)', ms: readMs, '× baseline': readMs / encodeMs },
    { name: 'saving per step (batch 2)', ms: 2 * (encodeMs - readMs) },
  ]);
  fs.rmSync(tmp, { recursive: true, force: true });

  if (process.env.VREPA_BENCH_ESTIMATE !== '0') {
    const r = spawnSync(process.execPath, [...process.execArgv, fileURLToPath(import.meta.url)], { stdio: 'inherit', env: { ...process.env, VREPA_BENCH_PART: 'estimate' } });
    if (r.status !== 0) console.log(`real-preset estimates: the child process failed (exit ${r.status})`);
  }
}

// ---- real presets: per-block measurement → step-time and memory estimates (ESTIMATES, not runs)
if (ESTIMATE_ONLY) {
  const { CogVideoXTransformer3DModel, CogVideoXDDIMScheduler, COGVIDEOX_2B_TRANSFORMER, COGVIDEOX_5B_TRANSFORMER, COGVIDEOX_2B_SCHEDULER, trainingLoss } = await import('@vrepa/cogvideox');
  const { Rng } = await import('@vrepa/core');
  const est: BenchRow[] = [];
  const sched = new CogVideoXDDIMScheduler(COGVIDEOX_2B_SCHEDULER);
  for (const [label, base, blocks, lora] of [
    ['videorepa-2b-sft (full)', COGVIDEOX_2B_TRANSFORMER, 30, false],
    ['videorepa-5b-lora', COGVIDEOX_5B_TRANSFORMER, 42, true],
  ] as const) {
    const D = base.num_attention_heads * base.attention_head_dim;
    const small = { ...base, sample_height: 16, sample_width: 16, sample_frames: 9 };
    const latents = tf.zeros([1, 3, 16, 16, 16]);
    const text = tf.zeros([1, 226, base.text_embed_dim]);
    const time = async (layers: number) => {
      const m = new CogVideoXTransformer3DModel({ ...small, num_layers: layers }, { init: 'zeros' });
      const rng = Rng.fromSeed(0);
      const vars = m.trainableParameters();
      const r = await timeIt(() => {
        const { value, grads } = tf.variableGrads(() => trainingLoss(m, sched, { latents, textEmbeddings: text, rng, timesteps: [500] }).total, vars);
        const out = [value, ...Object.values(grads)];
        return out;
      }, { warmup: 1, runs: 2 });
      const params = m.numParameters();
      m.dispose();
      return { ms: r.medianMs, params };
    };
    const one = await time(1);
    const two = await time(2);
    tf.dispose([latents, text]);
    const blockMs = Math.max(1e-3, two.ms - one.ms);
    const blockParams = two.params - one.params;
    const totalParams = one.params - blockParams + blocks * blockParams;
    const flops = (n: number) => 24 * n * D * D + 4 * n * n * D; // one block's forward (dense + attention)
    const nMeas = 3 * 8 * 8 + 226;
    const nFull = 13 * 30 * 45 + 226; // 49×480×720 → latents 13×60×90 → 17,550 vision + 226 text tokens
    const stepS = (blocks * blockMs * (flops(nFull) / flops(nMeas)) * (4 / 3)) / 1000; // ×4/3: gradient checkpointing recompute
    const weightsGB = (totalParams * 4) / 1e9;
    const memGB = lora ? weightsGB : weightsGB * 4; // full: weights + grads + 2 AdamW moments (float32)
    est.push({
      name: `${label} (estimate)`,
      'params (B)': totalParams / 1e9,
      'block fwd+bwd ms @418 tok': blockMs,
      'block GFLOP/s': (3 * flops(nMeas)) / (blockMs * 1e6),
      'est. s/step @17,776 tok, batch 1': stepS,
      'est. GB weights(+grads+moments)': memGB,
    });
  }
  printBenchTable('real presets: ESTIMATES from one measured block (not a run; float32; activations not counted)', est);
}
if (ESTIMATE_ONLY) fs.rmSync(tmp, { recursive: true, force: true });

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
 * No PyTorch anchor: no python with torch is installed on this machine.
 * Numbers taken while other jobs use the 2 cores are noisy: compare rows within one run.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import * as tf from '@tensorflow/tfjs';
import { initBackend, printBenchTable, switchBackend, timeIt, type BenchRow } from '@vrepa/core';
import { initModel, findFfmpeg } from '@vrepa/cogvideox';
import { Trainer, presetConfig, prepareFolder, readSample, decodeClip, buildEncoders, parseResolution, type TrainConfig, type StepLog } from '../src/index.js';

const STEPS = Number(process.env.VREPA_BENCH_STEPS ?? 12);
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'vrepa-trainer-bench-'));

async function stepStats(c: TrainConfig) {
  const t = new Trainer(c, { out: fs.mkdtempSync(path.join(tmp, 'run-')), progress: false, log: () => {}, maxSteps: STEPS + 2 });
  try {
    t.trainStep();
    t.trainStep(); // warm-up (kernels, caches)
    const logs: StepLog[] = [];
    const t0 = performance.now();
    for (let i = 0; i < STEPS; i++) logs.push(t.trainStep());
    const wall = performance.now() - t0;
    const mean = (k: 'ms_data' | 'ms_fwd_bwd' | 'ms_opt') => logs.reduce((a, l) => a + l[k], 0) / logs.length;
    return { msStep: wall / STEPS, stepsPerS: (1000 * STEPS) / wall, data: mean('ms_data'), fwdBwd: mean('ms_fwd_bwd'), opt: mean('ms_opt') };
  } finally {
    t.dispose();
  }
}

const info = await initBackend({ quiet: true });
const backends = [...new Set([info.name, 'wasm'])].filter((b) => b === 'tensorflow' || b === 'wasm' || b === 'cpu') as Array<'tensorflow' | 'wasm' | 'cpu'>;

const rows: BenchRow[] = [];
for (const b of backends) {
  try {
    await switchBackend(b);
  } catch (e) {
    rows.push({ name: `${b}: not available (${(e as Error).message.split('\n')[0]})` });
    continue;
  }
  const base = await stepStats(presetConfig('tiny', { align: { proj_coeff: 0 } }));
  const full = await stepStats(presetConfig('tiny'));
  for (const [name, s] of [[`${b} · baseline: diffusion only (λ = 0)`, base], [`${b} · VideoREPA step (L_diff + 0.5·TRD)`, full]] as const) {
    rows.push({
      name,
      'ms/step': s.msStep,
      'steps/s': s.stepsPerS,
      'data ms': s.data,
      'fwd+bwd ms': s.fwdBwd,
      'optimizer ms': s.opt,
      '× baseline': s.msStep / base.msStep,
    });
  }
}
printBenchTable(`tiny preset training step (batch 2, ${STEPS} steps after 2 warm-up)`, rows);

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

// ---- real presets: per-block measurement → step-time and memory estimates (ESTIMATES, not runs)
if (process.env.VREPA_BENCH_ESTIMATE !== '0') {
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

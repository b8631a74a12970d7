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
 * No PyTorch anchor: no python with torch is installed on this machine.
 * Numbers taken while other jobs use the 2 cores are noisy: compare rows within one run.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import * as tf from '@tensorflow/tfjs';
import { initBackend, printBenchTable, switchBackend, type BenchRow } from '@vrepa/core';
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

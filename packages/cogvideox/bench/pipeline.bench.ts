/**
 * The tiny pipeline end to end (init-model 'tiny': 9 frames 32×32, 50 steps, CFG): text encoding, the
 * denoising loop and the VAE decode. Baseline row: the transformer forwards alone (50 × the CFG batch),
 * so the ratio is the pipeline's overhead (T5, scheduler, CFG, VAE) on top of the denoiser.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { printBenchTable, timeIt } from '@vrepa/core';
import { CogVideoXPipeline, initModel } from '../src/index.js';

export async function run(): Promise<void> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'vrepa-bench-tiny-'));
  try {
    initModel('tiny', path.join(dir, 'm'), { seed: 0 });
    const pipe = CogVideoXPipeline.fromPretrained(path.join(dir, 'm'));
    const steps = 50;
    const tr = pipe.transformer;
    const lat = tf.randomNormal([2, 3, 8, 8, tr.config.in_channels]);
    const text = tf.randomNormal([2, 226, tr.config.text_embed_dim]);
    const base = await timeIt(
      () => {
        for (let i = 0; i < steps; i++) tf.dispose(tr.forward(lat, text, [999, 999], { alignLayer: 0 }).sample);
        return null;
      },
      { runs: 3 },
    );
    const full = await timeIt(async () => {
      const r = await pipe.generate({ prompt: 'a red ball rolling on the beach', numInferenceSteps: steps, seed: 1 });
      return [r.video!, r.latents];
    }, { runs: 3 });
    const lat50 = await timeIt(async () => (await pipe.generate({ prompt: 'a red ball', numInferenceSteps: steps, seed: 1, outputType: 'latent' })).latents, { runs: 3 });
    printBenchTable(`tiny pipeline end to end: 9 frames 32×32, ${steps} steps, guidance 6`, [
      { name: `baseline: ${steps} transformer forwards (batch 2)`, ms: base.medianMs, ratio: 1 },
      { name: 'generate, latents only (T5 + loop)', ms: lat50.medianMs, ratio: lat50.medianMs / base.medianMs },
      { name: 'generate → frames (T5 + loop + VAE decode)', ms: full.medianMs, ratio: full.medianMs / base.medianMs },
    ]);
    tf.dispose([lat, text]);
    pipe.dispose();
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

/**
 * The teacher stage's pretraining: @vrepa/teachers' VideoMAE pre-training model (tube masking, encoder on
 * the visible tokens, per-patch normalised pixel targets, masked MSE) on the train split's clips only, with
 * core's AdamW (official MAE settings: β 0.9/0.95, weight decay 0.05 off biases / norms, warmup + cosine),
 * then its encoder as a VideoMAEv2 teacher (same ViT, same fixed position table on the clip's grid).
 */
import fs from 'node:fs';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { AdamW, Rng, clipGradients, cosineWarmupValue } from '@vrepa/core';
import { teacherInputReduced } from '@vrepa/align-dims';
import {
  VideoMAEPretrain,
  VideoMAEv2,
  makePretrainMasks,
  pretrainConfig,
  pretrainLossAndGrads,
  pretrainNoWeightDecay,
  savePretrainCheckpoint,
  teacherConfigFromPretrain,
  type VideoMAEPretrainConfig,
} from '@vrepa/teachers';
import { clipBytes, type SplitData } from './data.js';
import { pixelsToTensor } from './latent.js';
import type { TeacherSpec } from './models.js';
import type { TeacherPretrainSpec } from './presets.js';

/** The pre-training architecture of a teacher spec on clips of `frames`×`height`×`width` (frame 0 dropped). */
export function teacherPretrainConfig(t: TeacherSpec, frames: number, height: number, width: number): VideoMAEPretrainConfig {
  return pretrainConfig({
    name: 'repro-videomae-pretrain',
    imgSize: [height, width],
    numFrames: frames - 1,
    patchSize: t.patchSize,
    tubeletSize: t.tubeletSize,
    inChans: 3,
    encoderEmbedDim: t.embedDim,
    encoderDepth: t.depth,
    encoderNumHeads: t.numHeads,
    decoderEmbedDim: Math.max(16, t.embedDim / 2),
    decoderDepth: 1,
    decoderNumHeads: Math.max(1, t.numHeads / 2),
    mlpRatio: 4,
    qkvBias: true,
    initValues: 0,
    layerNormEps: 1e-6,
  });
}

/** The teacher input of clips `[B, F, H, W, 3]` in [-1, 1]: frames 1..F−1, ImageNet-normalised, full resolution. */
export function teacherInput(clips: tf.Tensor): tf.Tensor5D {
  return teacherInputReduced(clips, { factor: 1 }).clip;
}

/**
 * Pretrain on the train split; writes `teacher-pretrain.safetensors` (the whole MAE) and
 * `pretrain-log.jsonl` into `dir`; returns the encoder as a VideoMAEv2 teacher.
 */
export async function pretrainTeacher(t: TeacherSpec, p: TeacherPretrainSpec, train: SplitData, dir: string, log: (m: string) => void = () => {}): Promise<VideoMAEv2> {
  const cfg = teacherPretrainConfig(t, train.frames, train.height, train.width);
  const model = new VideoMAEPretrain(cfg, { seed: t.initSeed });
  const params = model.params;
  const opt = new AdamW(params, { lr: p.lr, beta1: 0.9, beta2: 0.95, eps: 1e-8, weightDecay: 0.05, noDecay: (n) => pretrainNoWeightDecay(n, params.get(n)!.shape) });
  const rng = Rng.fromSeed(t.initSeed, 3);
  const logFile = path.join(dir, 'pretrain-log.jsonl');
  const bytes = clipBytes(train);
  const warmup = Math.max(1, Math.round(p.steps / 10));
  const t0 = performance.now();
  try {
    for (let step = 1; step <= p.steps; step++) {
      const idx = Array.from({ length: p.batch }, () => rng.randint(0, train.n));
      const u8 = new Uint8Array(p.batch * bytes);
      idx.forEach((i, j) => u8.set(train.pixels.subarray(i * bytes, (i + 1) * bytes), j * bytes));
      // augmentation: random horizontal flip per batch (the scenes are left/right symmetric)
      const flip = rng.uniform() < 0.5;
      const clip = tf.tidy(() => {
        const x = pixelsToTensor(u8, p.batch, train.frames, train.height, train.width);
        return teacherInput(flip ? tf.reverse(x, 3) : x);
      });
      const masks = makePretrainMasks(p.batch, model.grid, { maskRatio: p.maskRatio }, rng);
      const { loss, grads } = pretrainLossAndGrads(model, clip, masks);
      const value = loss.dataSync()[0]!;
      const clipped = clipGradients(grads, 1.0);
      const lr = cosineWarmupValue(step - 1, { base: p.lr, final: p.lr / 100, total: p.steps, warmup });
      if (Number.isFinite(value) && Number.isFinite(clipped.norm)) opt.apply(clipped.grads, lr);
      tf.dispose([clip, loss, ...grads.values(), ...clipped.grads.values()]);
      fs.appendFileSync(logFile, JSON.stringify({ step, loss: value, lr, grad_norm: clipped.norm }) + '\n');
      if (step % 50 === 0 || step === p.steps) log(`teacher pretrain: step ${step}/${p.steps}, loss ${value.toFixed(4)} (${((performance.now() - t0) / 1000).toFixed(0)} s)`);
    }
    const file = path.join(dir, 'teacher-pretrain.safetensors');
    savePretrainCheckpoint(model, file);
    return VideoMAEv2.fromCheckpoint(file, { config: teacherConfigFromPretrain(cfg) });
  } finally {
    tf.dispose([...opt.m.values(), ...opt.v.values()]);
    model.dispose();
  }
}

/** The same encoder architecture with seeded random weights (the random-teacher control). */
export function randomTeacher(t: TeacherSpec, frames: number, height: number, width: number): VideoMAEv2 {
  const cfg = teacherPretrainConfig(t, frames, height, width);
  const model = new VideoMAEPretrain(cfg, { seed: t.initSeed });
  const tmp = fs.mkdtempSync(path.join(fs.realpathSync(process.env.TMPDIR ?? '/tmp'), 'repro-teacher-'));
  try {
    const file = path.join(tmp, 'random.safetensors');
    savePretrainCheckpoint(model, file);
    return VideoMAEv2.fromCheckpoint(file, { config: teacherConfigFromPretrain(cfg) });
  } finally {
    model.dispose();
    fs.rmSync(tmp, { recursive: true, force: true });
  }
}

/**
 * The teacher stage's pretraining: @vrepa/teachers' `pretrainTeacher` (`vrepa teacher pretrain`: the VideoMAE
 * pre-training model, tube masking, per-patch normalised pixel targets, the official AdamW recipe with cosine
 * warm-up, random resized crop + flip) on the train split's clips only, handed over in memory; its encoder
 * becomes the VideoMAEv2 teacher (same ViT, same fixed position table on the clip's grid).
 */
import fs from 'node:fs';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { teacherInputReduced } from '@vrepa/align-dims';
import {
  VideoMAEPretrain,
  VideoMAEv2,
  modelConfigOf,
  pretrainTeacher as runPretrain,
  resolvePretrainConfig,
  savePretrainCheckpoint,
  teacherConfigFromPretrain,
  type ClipSource,
  type TeacherPretrainConfig,
} from '@vrepa/teachers';
import { clipBytes, type SplitData } from './data.js';
import type { TeacherSpec } from './models.js';
import type { TeacherPretrainSpec } from './presets.js';

/**
 * The `vrepa teacher pretrain` config of the study's teacher: the `toy` preset's recipe with the model sized by
 * the spec, on clips of `frames − 1` frames (frame 0 is dropped, as the teacher input drops it).
 */
export function teacherRunConfig(t: TeacherSpec, p: TeacherPretrainSpec, frames: number, height: number, width: number): TeacherPretrainConfig {
  return resolvePretrainConfig({
    preset: 'toy',
    model_overrides: {
      name: 'repro-videomae-pretrain',
      imgSize: [height, width],
      numFrames: frames - 1,
      patchSize: t.patchSize,
      tubeletSize: t.tubeletSize,
      encoderEmbedDim: t.embedDim,
      encoderDepth: t.depth,
      encoderNumHeads: t.numHeads,
      decoderEmbedDim: Math.max(16, t.embedDim / 2),
      decoderDepth: 1,
      decoderNumHeads: Math.max(1, t.numHeads / 2),
    },
    init_seed: t.initSeed,
    mask: { ratio: p.maskRatio, ...(p.futureSlots ? { future_slots: p.futureSlots } : {}) },
    data: { dir: '(in memory: the train split)', sampling_rate: 1 },
    train: { batch_size: p.batch, steps: p.steps, seed: t.initSeed, checkpoint_every: p.steps, keep_last: 1, picture_every: 0, plot_every: 0, tensorboard: false },
  });
}

/** The train split as a pre-training clip source (frames 1..F−1 of every clip). */
export function splitSource(d: SplitData): ClipSource {
  const b = clipBytes(d);
  const frame = d.height * d.width * 3;
  return {
    size: d.n,
    name: (i) => d.clips[i]!,
    clip: (i) => ({ frames: d.pixels.subarray(i * b + frame, (i + 1) * b), count: d.frames - 1, height: d.height, width: d.width }),
    skipped: [],
  };
}

/** The teacher input of clips `[B, F, H, W, 3]` in [-1, 1]: frames 1..F−1, ImageNet-normalised, full resolution. */
export function teacherInput(clips: tf.Tensor): tf.Tensor5D {
  return teacherInputReduced(clips, { factor: 1 }).clip;
}

/**
 * Pretrain on the train split into `dir/pretrain` (checkpoints, log.jsonl, loss plot); copies the log to
 * `dir/pretrain-log.jsonl`; returns the encoder as a VideoMAEv2 teacher.
 */
export async function pretrainTeacher(t: TeacherSpec, p: TeacherPretrainSpec, train: SplitData, dir: string, log: (m: string) => void = () => {}): Promise<VideoMAEv2> {
  const config = teacherRunConfig(t, p, train.frames, train.height, train.width);
  const r = await runPretrain(config, { out: path.join(dir, 'pretrain'), source: splitSource(train), progress: false, log });
  fs.copyFileSync(r.logFile, path.join(dir, 'pretrain-log.jsonl'));
  log(`teacher pretrain: ${r.stepsRun} steps in ${r.seconds.toFixed(0)} s, loss ${r.lossStart?.toFixed(4)} → ${r.lossEnd?.toFixed(4)}`);
  return VideoMAEv2.fromCheckpoint(r.teacher, { config: teacherConfigFromPretrain(modelConfigOf(config)) });
}

/** The same encoder architecture with its seeded initial weights (the random-teacher control). */
export function randomTeacher(t: TeacherSpec, p: TeacherPretrainSpec, frames: number, height: number, width: number): VideoMAEv2 {
  const cfg = modelConfigOf(teacherRunConfig(t, p, frames, height, width));
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

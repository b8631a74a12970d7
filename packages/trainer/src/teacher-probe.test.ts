import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import { generateDataset } from '@vrepa/eval';
import { pretrainPreset, pretrainTeacher } from '@vrepa/teachers';
import { contextFrameIndices, pixelTokens, probeTeacher, resolveTeacherCheckpoint } from './teacher-probe.js';
import { teacherProbeCommand } from './commands.js';

let root: string;
let scenes: string;
let teacherOut: string;

/** 2-step pre-training of a very small teacher (6 frames of 16×24, patch 8) on the scenes themselves. */
beforeAll(async () => {
  root = fs.mkdtempSync(path.join(os.tmpdir(), 'vrepa-tprobe-'));
  scenes = path.join(root, 'scenes');
  await generateDataset({ subsets: ['roll', 'collide'], n: 6, seed: 3, out: scenes, width: 48, height: 32, frames: 20, context: 8 });
  teacherOut = path.join(root, 'teacher');
  const c = pretrainPreset('toy', {
    model_overrides: { name: 'probe-test', imgSize: [16, 24], patchSize: 8, numFrames: 6, tubeletSize: 2, encoderEmbedDim: 16, encoderDepth: 1, encoderNumHeads: 2, decoderEmbedDim: 8, decoderDepth: 1, decoderNumHeads: 2 },
    data: { dir: scenes },
    train: { batch_size: 2, steps: 2, checkpoint_every: 2, picture_every: 0, plot_every: 0, tensorboard: false },
  });
  await pretrainTeacher(c, { out: teacherOut, progress: false, log: () => {} });
}, 180_000);

describe('teacher probe', () => {
  it('context frames: all of them, or evenly spaced; too few is an error', () => {
    expect(contextFrameIndices(4, 4)).toEqual([0, 1, 2, 3]);
    expect(contextFrameIndices(16, 4)).toEqual([0, 5, 10, 15]);
    expect(() => contextFrameIndices(3, 4)).toThrow(/3 context frames, fewer than the teacher's 4 input frames/);
  });

  it("pixel tokens are each token's mean colour over its tubelet·patch² pixels (frame-major)", () => {
    const [b, f, h, w, c] = [1, 4, 4, 6, 3];
    const data = Float32Array.from({ length: b * f * h * w * c }, (_, i) => Math.sin(i));
    const x = tf.tensor5d(data, [b, f, h, w, c]);
    const got = pixelTokens(x, 2, 2).arraySync()[0]!;
    // token (t, i, j) of grid 2×2×3: mean over frames 2t..2t+1, rows 2i..2i+1, cols 2j..2j+1
    for (const [t, i, j] of [[0, 0, 0], [1, 1, 2], [0, 1, 1]] as const) {
      for (let ch = 0; ch < c; ch++) {
        let s = 0;
        for (let df = 0; df < 2; df++) for (let dy = 0; dy < 2; dy++) for (let dx = 0; dx < 2; dx++) s += data[(((2 * t + df) * h + 2 * i + dy) * w + 2 * j + dx) * c + ch]!;
        expect(got[(t * 2 + i) * 3 + j]![ch]).toBeCloseTo(s / 8, 5);
      }
    }
    x.dispose();
  });

  it('finds the checkpoint in a pretrain output folder', () => {
    expect(resolveTeacherCheckpoint(teacherOut)).toBe(path.join(teacherOut, 'teacher.pth'));
    expect(() => resolveTeacherCheckpoint(path.join(root, 'nope'))).toThrow(/does not exist/);
    expect(() => resolveTeacherCheckpoint(scenes)).toThrow(/holds no teacher\.pth/);
  });

  it('probes the teacher, the pixels and the untrained model on the same clips (k-fold mean ± std)', async () => {
    const before = tf.memory().numTensors;
    const r = await probeTeacher({ checkpoint: teacherOut, scenes, folds: 3, randomInit: 0 });
    expect(tf.memory().numTensors).toBe(before);
    expect(r.n).toBe(12);
    expect(r.positives).toBe(6);
    expect(r.context_frames).toBe(8);
    // grid 3 × 2 × 3 tokens: 3 slices (every token frame) × 6 spatial tokens
    expect(r.teacher.d).toBe(3 * 6 * 16);
    expect(r.random!.d).toBe(3 * 6 * 16);
    expect(r.pixels.d).toBe(3 * 6 * 3);
    for (const a of [r.teacher, r.pixels, r.random!]) {
      expect(a.fold_accuracies).toHaveLength(3);
      const mean = a.fold_accuracies.reduce((s, v) => s + v, 0) / 3;
      expect(a.accuracy).toBeCloseTo(mean, 12);
      expect(a.accuracy).toBeGreaterThanOrEqual(0);
      expect(a.accuracy).toBeLessThanOrEqual(1);
    }
  }, 120_000);

  it('the command writes the JSON and names bad input', async () => {
    const json = path.join(root, 'probe.json');
    const err = process.stderr.write.bind(process.stderr);
    const out = process.stdout.write.bind(process.stdout);
    const said: string[] = [];
    process.stderr.write = ((s: string) => (said.push(String(s)), true)) as typeof process.stderr.write;
    process.stdout.write = ((s: string) => (said.push(String(s)), true)) as typeof process.stdout.write;
    try {
      expect(await teacherProbeCommand.run(['--checkpoint', teacherOut, '--scenes', scenes, '--folds', '2', '--json', json])).toBe(0);
      expect(await teacherProbeCommand.run(['--checkpoint', teacherOut, '--scenes', scenes, '--folds', '1'])).toBe(2);
      expect(await teacherProbeCommand.run(['--checkpoint', teacherOut, '--scenes', path.join(root, 'none')])).toBe(1);
    } finally {
      process.stderr.write = err;
      process.stdout.write = out;
    }
    const r = JSON.parse(fs.readFileSync(json, 'utf8'));
    expect(r.folds).toBe(2);
    expect(Object.keys(r)).toEqual(expect.arrayContaining(['teacher', 'pixels', 'n']));
    expect(said.join('')).toMatch(/teacher\s+\d+\.\d% ± \d+\.\d/);
    expect(said.join('')).toMatch(/--folds must be an integer ≥ 2, got '1'/);
    expect(said.join('')).toMatch(/labels\.csv' does not exist/);
  }, 120_000);
});

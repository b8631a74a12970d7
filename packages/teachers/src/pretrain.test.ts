import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { describe, expect, it } from 'vitest';
import { SafetensorsFile, graphFunctionsAvailable, listCheckpoints, readLog, readRecords } from '@vrepa/core';
import { memoryClipSource } from './pretrain-data.js';
import { squares } from './__testdata__/squares.js';
import { loadPretrainCheckpoint } from './pretrain-checkpoint.js';
import { pretrainConfigHash, pretrainLr, pretrainPreset, pretrainTeacher, resolvePretrainConfig, type TeacherPretrainConfig } from './pretrain.node.js';
import { spawnSync } from 'node:child_process';
import { findFfmpeg } from '@vrepa/core';

const tmp = () => fs.mkdtempSync(path.join(os.tmpdir(), 'vrepa-pretrain-'));
const quiet = { progress: false, log: () => {} };


/** A very small model and run: 4 frames of 8×16, patch 4, tubelet 2 → 2×2×4 = 16 tokens. */
function tinyConfig(over: Record<string, unknown> = {}): TeacherPretrainConfig {
  return pretrainPreset('toy', {
    model_overrides: { name: 'pt-test', imgSize: [8, 16], patchSize: 4, numFrames: 4, tubeletSize: 2, encoderEmbedDim: 16, encoderDepth: 1, encoderNumHeads: 2, decoderEmbedDim: 8, decoderDepth: 1, decoderNumHeads: 2 },
    mask: { ratio: 0.75 },
    data: { dir: 'unused', sampling_rate: 2, crop_scale: [0.7, 1] },
    optim: { base_lr: 0.5, warmup_steps: 2 },
    train: { batch_size: 2, steps: 6, checkpoint_every: 3, keep_last: 0, picture_every: 3, plot_every: 0, tensorboard: true },
    ...over,
  });
}

function checkpointTensors(dir: string, file: string): Map<string, Float32Array> {
  const f = SafetensorsFile.open(path.join(dir, file));
  const out = new Map<string, Float32Array>();
  try {
    for (const n of f.keys()) {
      const t = f.tensor(n);
      out.set(n, t.dataSync() as Float32Array);
      t.dispose();
    }
  } finally {
    f.close();
  }
  return out;
}

describe('pretrainTeacher', () => {
  it('an interrupted run resumed from its checkpoint equals the uninterrupted run, bit for bit', async () => {
    const source = memoryClipSource(squares(3), 4);
    const c = tinyConfig();
    const straight = tmp();
    const r1 = await pretrainTeacher(c, { out: straight, source, ...quiet });
    expect(r1.steps).toBe(6);

    const broken = tmp();
    // "kill" during step 5 (after its log row, before its checkpoint): the last checkpoint is step 3
    await expect(
      pretrainTeacher(c, {
        out: broken,
        source,
        ...quiet,
        onProgress: (e) => {
          if (e.step === 5) throw new Error('killed');
        },
      }),
    ).rejects.toThrow('killed');
    expect(listCheckpoints(broken).map((x) => x.step)).toEqual([3]);
    await expect(pretrainTeacher(c, { out: broken, source, ...quiet })).rejects.toThrow(/already holds checkpoints .* pass --resume/);
    const r2 = await pretrainTeacher(c, { out: broken, source, resume: true, ...quiet });
    expect(r2.resumedFrom).toBe(3);
    expect(r2.stepsRun).toBe(3);

    for (const file of ['trainable.safetensors', 'optimizer.safetensors']) {
      const a = checkpointTensors(r1.checkpoint, file);
      const b = checkpointTensors(r2.checkpoint, file);
      expect([...b.keys()]).toEqual([...a.keys()]);
      for (const [n, x] of a) expect(Buffer.from(b.get(n)!.buffer).equals(Buffer.from(x.buffer)), `${file}: ${n}`).toBe(true);
    }
    const la = readLog(r1.logFile);
    const lb = readLog(r2.logFile);
    expect(lb.map((r) => r.step)).toEqual([1, 2, 3, 4, 5, 6]);
    expect(lb.map((r) => r.loss)).toEqual(la.map((r) => r.loss));
    // with graph functions (binding patch 34, the default there) the resumed run traces again: steps 4 and 5
    if (graphFunctionsAvailable()) expect(lb.map((r) => r.step_mode)).toEqual(['trace', 'trace', 'graph', 'trace', 'trace', 'graph']);
    expect(JSON.parse(fs.readFileSync(path.join(r2.checkpoint, 'state.json'), 'utf8'))).toMatchObject({ step: 6, optimizerStep: 6 });
  }, 120_000);

  it('writes the official pre-training checkpoint, TensorBoard scalars, the loss and reconstruction PNGs', async () => {
    const source = memoryClipSource(squares(2), 4);
    const out = tmp();
    const before = tf.memory().numTensors;
    const r = await pretrainTeacher(tinyConfig({ train: { steps: 3, batch_size: 2, checkpoint_every: 3, picture_every: 3 } }), { out, source, ...quiet });
    expect(tf.memory().numTensors).toBe(before); // the run leaves no tensor behind
    // teacher.pth holds the model (official names, PyTorch layout) under 'model': it loads strictly and equals the trained weights
    const model = loadPretrainCheckpoint(r.teacher);
    const trained = checkpointTensors(r.checkpoint, 'trainable.safetensors');
    for (const [n, p] of model.params) expect(Array.from(p.dataSync())).toEqual(Array.from(trained.get(n)!));
    model.dispose();
    expect(fs.readdirSync(path.join(out, 'reconstructions')).sort()).toEqual(['step-000000.png', 'step-000003.png']);
    const png = fs.readFileSync(r.reconstruction);
    expect(png.subarray(1, 4).toString()).toBe('PNG');
    // 3 rows (original / masked / reconstructed) of 2 frames, 8×16 at zoom 2, 2 px gaps
    expect([png.readUInt32BE(16), png.readUInt32BE(20)]).toEqual([2 * 32 + 2, 3 * 16 + 4]);
    expect(fs.readFileSync(r.lossPlot!).subarray(1, 4).toString()).toBe('PNG');
    const tb = fs.readdirSync(path.join(out, 'tensorboard'));
    expect(tb).toHaveLength(1);
    expect(readRecords(path.join(out, 'tensorboard', tb[0]!)).length).toBeGreaterThan(3 * 2);
    const rows = readLog(r.logFile);
    expect(rows.map((x) => x.step)).toEqual([1, 2, 3]);
    expect(typeof rows[2]!.loss_picture).toBe('number');
  }, 120_000);

  it('the reconstruction picture can show a held-out video (data.picture_video), which does not change the config hash', async () => {
    const dir = tmp();
    const video = path.join(dir, 'held-out.mp4');
    const r0 = spawnSync(findFfmpeg().path, ['-v', 'error', '-y', '-f', 'lavfi', '-i', 'testsrc=size=40x20:rate=8', '-frames:v', '8', '-pix_fmt', 'yuv420p', video]);
    expect(r0.status).toBe(0);
    const c = tinyConfig({ data: { dir: 'unused', sampling_rate: 2, crop_scale: [0.7, 1], picture_video: video }, train: { steps: 1, batch_size: 2, checkpoint_every: 1 } });
    expect(pretrainConfigHash(c)).toBe(pretrainConfigHash(tinyConfig({ train: { steps: 1, batch_size: 2, checkpoint_every: 1 } })));
    const r = await pretrainTeacher(c, { out: path.join(dir, 'out'), source: memoryClipSource(squares(2), 4), ...quiet });
    const before = fs.readFileSync(path.join(dir, 'out', 'reconstructions', 'step-000000.png'));
    const plain = await pretrainTeacher(tinyConfig({ train: { steps: 1, batch_size: 2, checkpoint_every: 1 } }), { out: path.join(dir, 'plain'), source: memoryClipSource(squares(2), 4), ...quiet });
    expect(before.equals(fs.readFileSync(path.join(dir, 'plain', 'reconstructions', 'step-000000.png')))).toBe(false);
    expect(fs.readFileSync(r.reconstruction).subarray(1, 4).toString()).toBe('PNG');
    expect(plain.steps).toBe(1);
  }, 120_000);

  it('lowers the loss when fitting a few clips (raw-pixel targets: the clearest signal)', async () => {
    const source = memoryClipSource(squares(2), 4);
    const c = tinyConfig({
      normalize_target: false,
      data: { dir: 'unused', sampling_rate: 2, crop_scale: [1, 1], crop_ratio: [2, 2], flip: false },
      optim: { base_lr: 2, warmup_steps: 2, min_lr: 1e-4 },
      train: { batch_size: 2, steps: 40, checkpoint_every: 40, picture_every: 0 },
    });
    const r = await pretrainTeacher(c, { out: tmp(), source, ...quiet });
    const losses = readLog(r.logFile).map((x) => x.loss as number);
    const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
    expect(mean(losses.slice(-5))).toBeLessThan(0.5 * mean(losses.slice(0, 5)));
  }, 120_000);

  it('the lr follows the official recipe: base·batch/256, warm-up from warmup_lr, cosine to min_lr', () => {
    const c = tinyConfig({ optim: { base_lr: 1.5e-4, warmup_steps: 3, warmup_lr: 1e-6, min_lr: 1e-5 }, train: { batch_size: 64, steps: 10 } });
    const peak = (1.5e-4 * 64) / 256;
    expect(pretrainLr(c, 0)).toBeCloseTo(1e-6, 12);
    expect(pretrainLr(c, 2)).toBeCloseTo(peak, 12);
    expect(pretrainLr(c, 3)).toBeCloseTo(peak, 12);
    expect(pretrainLr(c, 9)).toBeCloseTo(1e-5 + 0.5 * (peak - 1e-5) * (1 + Math.cos((Math.PI * 6) / 7)), 12);
  });

  it('bad config and data get one clear error each', async () => {
    expect(() => resolvePretrainConfig({ mask: { ratio: 1.2 } })).toThrow(/mask\.ratio must be in \(0, 1\), got 1\.2/);
    expect(() => resolvePretrainConfig({ model_overrides: { imgSize: [60, 96] } })).toThrow(/patch size 8 does not divide the frame size 60×96/);
    expect(() => resolvePretrainConfig({ model_overrides: { numFrames: 15 } })).toThrow(/tubelet size 2 does not divide numFrames 15/);
    expect(() => resolvePretrainConfig({ optim: { lr: 1 } })).toThrow(/unknown key\(s\) optim\.lr/);
    expect(() => resolvePretrainConfig({ data: { on_bad_video: 'ignore' } })).toThrow(/on_bad_video must be 'skip' or 'error'/);
    expect(() => resolvePretrainConfig({ data: { crop_scale: [0, 1] } })).toThrow(/crop_scale must be/);
    await expect(pretrainTeacher(tinyConfig(), { out: tmp(), source: memoryClipSource(squares(1, 3), 4), ...quiet })).rejects.toThrow(/the clip source has no clips/);
    await expect(pretrainTeacher(tinyConfig({ data: { dir: '/nonexistent-folder' } }), { out: tmp(), ...quiet })).rejects.toThrow(/'\/nonexistent-folder' is not a folder/);
    // resuming with another config is refused, and nothing written is lost
    const out = tmp();
    const source = memoryClipSource(squares(2), 4);
    await pretrainTeacher(tinyConfig({ train: { steps: 2, batch_size: 2, checkpoint_every: 2 } }), { out, source, ...quiet });
    await expect(pretrainTeacher(tinyConfig({ train: { steps: 2, batch_size: 2, checkpoint_every: 2 }, init_seed: 9 }), { out, source, resume: true, ...quiet })).rejects.toThrow(/another config/);
    expect(listCheckpoints(out).map((x) => x.step)).toEqual([2]);
  }, 120_000);
});

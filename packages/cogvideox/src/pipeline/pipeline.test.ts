import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { tensorLeakAcross } from '@vrepa/core';
import { CogVideoXPipeline, dynamicGuidance, loadScheduler, videoToRgbBytes } from './pipeline.js';
import { initModel, presetConfigs, t5StateDictShapes, transformerStateDictShapes } from './init-model.js';
import { T5EncoderModel } from '../t5/model.js';
import { CogVideoXTransformer3DModel } from '../transformer/model.js';
import { CogVideoXDPMScheduler } from '../schedulers/schedulers.js';
import { fromPretrained } from '../transformer/load.js';
import { addLora, saveLora } from '../lora/lora.js';
import { contactSheet, encodePng, FfmpegError, findFfmpeg, readVideo, writeVideo } from './video.js';
import { contactSheetPath, generateCommand, initModelCommand, progressLine } from './commands.js';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'pipe-test-'));
const modelDir = path.join(tmp, 'tiny');
let pipe: CogVideoXPipeline;
let hasFfmpeg = true;
try {
  findFfmpeg();
} catch {
  hasFfmpeg = false;
}

beforeAll(() => {
  initModel('tiny', modelDir, { seed: 5 });
  pipe = CogVideoXPipeline.fromPretrained(modelDir);
});
afterAll(() => {
  pipe?.dispose();
  fs.rmSync(tmp, { recursive: true, force: true });
});

const maxDiff = (a: tf.Tensor, b: tf.Tensor) => tf.tidy(() => tf.max(tf.abs(tf.sub(a, b))).dataSync()[0]!);

describe('init-model', () => {
  it('writes the diffusers layout with configs shaped like the official ones', () => {
    for (const f of ['model_index.json', 'scheduler/scheduler_config.json', 'tokenizer/tokenizer.json', 'text_encoder/config.json', 'text_encoder/model.safetensors', 'vae/config.json', 'vae/diffusion_pytorch_model.safetensors', 'transformer/config.json', 'transformer/diffusion_pytorch_model.safetensors'])
      expect(fs.existsSync(path.join(modelDir, f)), f).toBe(true);
    const idx = JSON.parse(fs.readFileSync(path.join(modelDir, 'model_index.json'), 'utf8'));
    expect(idx._class_name).toBe('CogVideoXPipeline');
    expect(idx.vae).toEqual(['diffusers', 'AutoencoderKLCogVideoX']);
    expect(() => initModel('tiny', modelDir)).toThrow(/not empty .*--overwrite/);
  });

  it('--dtype bf16 / f16: half-size files that load (widened) and generate', async () => {
    for (const dtype of ['BF16', 'F16'] as const) {
      const d = path.join(tmp, `tiny-${dtype}`);
      initModel('tiny', d, { seed: 5, dtype });
      const f32 = fs.statSync(path.join(modelDir, 'vae/diffusion_pytorch_model.safetensors')).size;
      const half = fs.statSync(path.join(d, 'vae/diffusion_pytorch_model.safetensors')).size;
      expect(half).toBeLessThan(0.6 * f32);
      const p = CogVideoXPipeline.fromPretrained(d);
      const r = await p.generate({ prompt: 'a', numInferenceSteps: 1, outputType: 'latent' });
      expect(r.latents.shape).toEqual([1, 3, 8, 8, 4]);
      expect(tf.all(tf.isFinite(r.latents)).dataSync()[0]).toBe(1);
      r.latents.dispose();
      p.dispose();
    }
  });

  it('shape lists built without the full models equal the models\' state dicts', () => {
    const cfg = presetConfigs('tiny');
    const t5 = new T5EncoderModel(cfg.textEncoder, { init: 'zeros' });
    expect([...t5StateDictShapes(t5.config)]).toEqual([...t5.stateDictShapes()]);
    t5.dispose();
    const tr = new CogVideoXTransformer3DModel({ ...cfg.transformer, num_layers: 3 }, { init: 'zeros', align: false });
    expect(new Map([...transformerStateDictShapes({ ...cfg.transformer, num_layers: 3 })].sort())).toEqual(new Map([...tr.stateDictShapes()].sort()));
    tr.dispose();
    // full-size presets: key counts and a few official shapes, without building the models
    const big = presetConfigs('cogvideox-2b');
    const s = t5StateDictShapes(big.textEncoder);
    expect(s.get('shared.weight')).toEqual([32128, 4096]);
    expect(s.get('encoder.block.23.layer.1.DenseReluDense.wi_0.weight')).toEqual([10240, 4096]);
  });
});

describe('CogVideoXPipeline', () => {
  it('deterministic for a fixed seed; another seed differs; 9 frames 32×32 in [0, 1]', async () => {
    const a = await pipe.generate({ prompt: 'a red ball rolling', numInferenceSteps: 3, seed: 1 });
    const b = await pipe.generate({ prompt: 'a red ball rolling', numInferenceSteps: 3, seed: 1 });
    const c = await pipe.generate({ prompt: 'a red ball rolling', numInferenceSteps: 3, seed: 2 });
    expect(a.video!.shape).toEqual([1, 9, 32, 32, 3]);
    expect(maxDiff(a.video!, b.video!)).toBe(0);
    expect(maxDiff(a.latents, c.latents)).toBeGreaterThan(1e-3);
    expect(tf.min(a.video!).dataSync()[0]).toBeGreaterThanOrEqual(0);
    expect(tf.max(a.video!).dataSync()[0]).toBeLessThanOrEqual(1);
    tf.dispose([a.video!, a.latents, b.video!, b.latents, c.video!, c.latents]);
  });

  it('guidance ≤ 1 ignores the negative prompt; guidance > 1 uses it', async () => {
    const run = async (neg: string, g: number) => (await pipe.generate({ prompt: 'a cat', negativePrompt: neg, guidanceScale: g, numInferenceSteps: 2, outputType: 'latent' })).latents;
    const [a, b, c, d] = [await run('dog', 1), await run('snow', 1), await run('dog', 6), await run('snow', 6)];
    expect(maxDiff(a, b)).toBe(0);
    expect(maxDiff(c, d)).toBeGreaterThan(0);
    tf.dispose([a, b, c, d]);
  });

  it('the DPM scheduler runs through the loop (previous x0 carried) and is seeded', async () => {
    const dpm = new CogVideoXPipeline({ ...pipe.components, scheduler: new CogVideoXDPMScheduler({ ...presetConfigs('tiny').scheduler }) });
    const a = await dpm.generate({ prompt: 'x', numInferenceSteps: 3, seed: 4, outputType: 'latent' });
    const b = await dpm.generate({ prompt: 'x', numInferenceSteps: 3, seed: 4, outputType: 'latent' });
    expect(maxDiff(a.latents, b.latents)).toBe(0);
    expect(a.video).toBeUndefined();
    tf.dispose([a.latents, b.latents]);
  });

  it('--lora: a zero-B adapter changes nothing; a trained (non-zero B) adapter changes the video', async () => {
    const { model } = fromPretrained(path.join(modelDir, 'transformer'));
    addLora(model, { rank: 2, alpha: 2 });
    const zeroFile = saveLora(model, path.join(tmp, 'lora-zero.safetensors'));
    for (const [n, p] of model.namedParameters()) if (n.includes('.lora_B.')) p.value.assign(tf.fill(p.shape, 0.5));
    const trainedFile = saveLora(model, path.join(tmp, 'lora-trained.safetensors'));
    model.dispose();
    const gen = async (p: CogVideoXPipeline) => (await p.generate({ prompt: 'a cat', numInferenceSteps: 2, seed: 9, outputType: 'latent' })).latents;
    const base = await gen(pipe);
    const withZero = CogVideoXPipeline.fromPretrained(modelDir, { lora: zeroFile });
    const withTrained = CogVideoXPipeline.fromPretrained(modelDir, { lora: trainedFile });
    const [z, t] = [await gen(withZero), await gen(withTrained)];
    expect(maxDiff(base, z)).toBeLessThan(1e-6);
    expect(maxDiff(base, t)).toBeGreaterThan(1e-3);
    tf.dispose([base, z, t]);
    withZero.dispose();
    withTrained.dispose();
  });

  it('leaks no tensors across generate calls', async () => {
    expect(await tensorLeakAcross(() => pipe.generate({ prompt: 'a', numInferenceSteps: 2 }), 2)).toBe(0);
    // an interrupted run (a callback that throws) frees its latents and embeddings too
    const interrupted = () =>
      pipe
        .generate({ prompt: 'a', numInferenceSteps: 3, onStep: ({ step }) => { if (step === 1) throw new Error('stop'); } })
        .then(
          () => { throw new Error('not interrupted'); },
          (e: Error) => { expect(e.message).toBe('stop'); return undefined; },
        );
    expect(await tensorLeakAcross(interrupted, 2)).toBe(0);
  });

  it('dynamic CFG: the official schedule (1 at t = n, 1 + g at t = 0)', () => {
    expect(dynamicGuidance(6, 50, 50)).toBe(1);
    expect(dynamicGuidance(6, 50, 0)).toBeCloseTo(7, 12);
    // the official formula uses the timestep value, so t = 999 with 50 steps is far outside [0, n]
    expect(dynamicGuidance(6, 50, 999)).toBeCloseTo(1 + 3 * (1 - Math.cos(Math.PI * (-949 / 50) ** 5)), 9);
  });

  it('bad input: steps < 1, sizes not multiples of VAE×patch, frames not 4k+1, missing sub-folders, unknown scheduler class', async () => {
    await expect(pipe.generate({ prompt: 'a', numInferenceSteps: 0 })).rejects.toThrow(/numInferenceSteps must be an integer ≥ 1, got 0/);
    await expect(pipe.generate({ prompt: 'a', height: 36 })).rejects.toThrow(/multiples of 8 \(VAE factor 4 × patch size 2\), got 36×32/);
    await expect(pipe.generate({ prompt: 'a', numFrames: 8 })).rejects.toThrow(/numFrames must be 4k\+1.*got 8/);
    const partial = path.join(tmp, 'partial');
    fs.mkdirSync(path.join(partial, 'vae'), { recursive: true });
    fs.mkdirSync(path.join(partial, 'tokenizer'), { recursive: true });
    expect(() => CogVideoXPipeline.fromPretrained(partial)).toThrow(/missing the sub-folder\(s\) transformer, text_encoder, scheduler/);
    const sched = path.join(tmp, 'sched');
    fs.mkdirSync(sched);
    fs.writeFileSync(path.join(sched, 'scheduler_config.json'), JSON.stringify({ _class_name: 'EulerDiscreteScheduler' }));
    expect(() => loadScheduler(sched)).toThrow(/class 'EulerDiscreteScheduler'/);
    fs.writeFileSync(path.join(sched, 'scheduler_config.json'), JSON.stringify({ _class_name: 'CogVideoXDDIMScheduler', beta_schedule: 'cosine_weird' }));
    expect(() => loadScheduler(sched)).toThrow(/beta_schedule/);
  });
});

describe.runIf(hasFfmpeg)('video output (ffmpeg)', () => {
  it('end to end: a tiny clip to mp4 and gif, decoded back with ffmpeg (frame count, size)', async () => {
    const res = await pipe.generate({ prompt: 'a dog running in the snow', numInferenceSteps: 2, seed: 3 });
    const v = videoToRgbBytes(res.video!);
    tf.dispose([res.video!, res.latents]);
    for (const ext of ['mp4', 'gif']) {
      const f = path.join(tmp, `clip.${ext}`);
      await writeVideo(f, v.rgb, v, { fps: 8 });
      const back = readVideo(f);
      expect([back.frames, back.width, back.height]).toEqual([9, 32, 32]);
      await expect(writeVideo(f, v.rgb, v)).rejects.toThrow(/exists \(pass --overwrite/);
    }
    // the gif's palette is exact for these few colours only approximately; mp4 is lossy: compare loosely
    const back = readVideo(path.join(tmp, 'clip.mp4'));
    let err = 0;
    for (let i = 0; i < back.rgb.length; i++) err += Math.abs(back.rgb[i]! - v.rgb[i]!);
    expect(err / back.rgb.length).toBeLessThan(40);
  }, 30_000);

  it('ffmpeg failure shows its stderr tail; a missing FFMPEG is a clear error', async () => {
    const fake = path.join(tmp, 'fake-ffmpeg.sh');
    fs.writeFileSync(fake, '#!/bin/sh\necho "Unknown encoder libx264 (fake)" >&2\nexit 1\n', { mode: 0o755 });
    const rgb = new Uint8Array(2 * 2 * 2 * 3);
    await expect(writeVideo(path.join(tmp, 'x.mp4'), rgb, { frames: 2, height: 2, width: 2 }, { ffmpeg: fake })).rejects.toThrow(/exited with code 1.*\n?.*Unknown encoder libx264 \(fake\)/);
    expect(() => findFfmpeg({ FFMPEG: path.join(tmp, 'nope') })).toThrow(FfmpegError);
    expect(() => findFfmpeg({ PATH: '' })).toThrow(/ffmpeg not found|@ffmpeg-installer/);
  });

  it('vrepa generate: writes video + contact sheet, refuses an existing output without --overwrite', async () => {
    const out = path.join(tmp, 'cli.gif');
    const args = ['--model', modelDir, '--prompt', 'a ball', '--steps', '2', '--out', out];
    const errs: string[] = [];
    const orig = process.stderr.write.bind(process.stderr);
    const origOut = process.stdout.write.bind(process.stdout);
    (process.stderr as unknown as { write: unknown }).write = (s: string) => (errs.push(String(s)), true);
    (process.stdout as unknown as { write: unknown }).write = () => true;
    try {
      expect(await generateCommand.run(args)).toBe(0);
      expect(fs.existsSync(out) && fs.existsSync(path.join(tmp, 'cli.gif.png'))).toBe(true);
      expect(errs.join('')).toMatch(/step 2\/2 \[#+\] .*ETA/);
      expect(await generateCommand.run(args)).toBe(2);
      expect(errs.join('')).toMatch(/cli.gif exists \(pass --overwrite/);
      expect(await generateCommand.run([...args, '--overwrite'])).toBe(0);
      // same stem, another format: its own video and sheet, nothing of the gif run blocks or replaces it
      const gifSheet = fs.readFileSync(path.join(tmp, 'cli.gif.png'));
      const mp4 = path.join(tmp, 'cli.mp4');
      expect(await generateCommand.run(['--model', modelDir, '--prompt', 'a ball', '--steps', '2', '--seed', '7', '--out', mp4])).toBe(0);
      expect(fs.existsSync(mp4) && fs.existsSync(path.join(tmp, 'cli.mp4.png'))).toBe(true);
      expect(fs.readFileSync(path.join(tmp, 'cli.gif.png')).equals(gifSheet)).toBe(true);
      expect(fs.readdirSync(tmp).filter((f) => f.startsWith('cli.')).sort()).toEqual(['cli.gif', 'cli.gif.png', 'cli.mp4', 'cli.mp4.png']);
      // a leftover sheet of the very output asked for still needs --overwrite
      fs.rmSync(mp4);
      expect(await generateCommand.run(['--model', modelDir, '--prompt', 'a ball', '--steps', '2', '--out', mp4])).toBe(2);
      expect(errs.join('')).toMatch(/cli.mp4.png exists \(pass --overwrite/);
      expect(await generateCommand.run(['--model', modelDir, '--prompt', 'a', '--out', path.join(tmp, 'x.avi')])).toBe(2);
      expect(await generateCommand.run(['--model', path.join(tmp, 'nowhere'), '--prompt', 'a', '--out', path.join(tmp, 'y.mp4')])).toBe(1);
      expect(errs.join('')).toMatch(/nowhere does not exist/);
      expect(await initModelCommand.run(['--preset', 'huge', '--out', path.join(tmp, 'h')])).toBe(2);
    } finally {
      (process.stderr as unknown as { write: unknown }).write = orig;
      (process.stdout as unknown as { write: unknown }).write = origOut;
    }
  }, 30_000);
});

describe('helpers', () => {
  it('contactSheetPath follows the full output name, so formats of one stem differ', () => {
    expect(contactSheetPath('out/v.mp4')).toBe('out/v.mp4.png');
    expect(contactSheetPath('v.gif')).not.toBe(contactSheetPath('v.mp4'));
  });
  it('progressLine shows step, bar and ETA', () => {
    expect(progressLine({ step: 1, total: 4, timestep: 500, elapsedMs: 2000 }, 8)).toBe('step 2/4 [####----] t=500 2.0s elapsed, ETA 2.0s');
  });
  it('contactSheet places evenly spaced frames; encodePng writes a PNG signature and IHDR size', () => {
    const rgb = new Uint8Array(3 * 2 * 2 * 3).map((_, i) => Math.floor(i / 12) * 100);
    const cs = contactSheet(rgb, { frames: 3, height: 2, width: 2 }, { cols: 3 });
    expect([cs.width, cs.height]).toEqual([10, 2]);
    expect(cs.rgb[0]).toBe(0);
    expect(cs.rgb[(4 + 0) * 3]).toBe(100);
    expect(cs.rgb[8 * 3]).toBe(200);
    const png = encodePng(cs.rgb, cs.width, cs.height);
    expect([...png.subarray(0, 8)]).toEqual([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
    expect(png.readUInt32BE(16)).toBe(10);
    expect(png.readUInt32BE(20)).toBe(2);
  });
});

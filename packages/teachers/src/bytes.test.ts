// Loading a teacher from the bytes of a safetensors file (what a web page does with a dropped file) gives
// the same model as loading the file by path, and the browser entry has no disk cache.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { describe, expect, it } from 'vitest';
import { Rng, serializeSafetensors, writeSafetensors } from '@vrepa/core';
import * as browser from './browser.js';
import { teacherConfig } from './configs.js';
import { savePretrainCheckpoint } from './pretrain-checkpoint.js';
import { PRETRAIN_CONFIGS, VideoMAEPretrain, type VideoMAEPretrainConfig } from './videomae-pretrain.js';
import { VideoMAEv2 } from './videomaev2.js';

describe('teacher from safetensors bytes', () => {
  it('fromCheckpoint(bytes) loads the same weights and features as fromCheckpoint(path), with the same report', async () => {
    const config = { ...teacherConfig(undefined, 'videomaev2'), name: 'videomaev2-tiny', embedDim: 16, depth: 2, numHeads: 2, patchSize: 4, imgSize: 8, numFrames: 4 };
    const src = new VideoMAEv2(config);
    // official layout: the state dict under 'module.' with a classifier head the encoder ignores
    const sd = new Map<string, tf.Tensor>([...src.stateDict()].map(([k, v]) => [`module.${k}`, v]));
    sd.set('module.head.weight', tf.zeros([3, 16]));
    const p = path.join(os.tmpdir(), `vrepa-teacher-bytes-${process.pid}.safetensors`);
    writeSafetensors(p, sd);
    const bytes = serializeSafetensors(sd);
    expect(bytes).toEqual(new Uint8Array(fs.readFileSync(p)));
    const byPath = VideoMAEv2.fromCheckpoint(p, { config });
    const byBytes = VideoMAEv2.fromCheckpoint(bytes, { config, name: 'dropped.safetensors' });
    expect(byBytes.loadReport!.file).toBe('dropped.safetensors');
    expect(byBytes.loadReport!.loaded).toEqual(byPath.loadReport!.loaded);
    expect(byBytes.loadReport!.ignored).toEqual(['head.weight']);
    const video = Rng.fromSeed(3).randomTensor([1, 4, 8, 8, 3], 'uniform', { low: -1, high: 1 });
    const a = byPath.encode(video);
    const b = byBytes.encode(video);
    expect(Array.from(b.tokens.dataSync())).toEqual(Array.from(a.tokens.dataSync()));
    tf.dispose([video, a.tokens, b.tokens, ...sd.values()]);
    for (const m of [src, byPath, byBytes]) m.dispose();
    fs.rmSync(p);
  });

  it('a bytes checkpoint that does not fit names the bytes', () => {
    const bytes = serializeSafetensors({ 'module.x': { dtype: 'F32', shape: [1], data: Float32Array.of(0) } });
    expect(() => VideoMAEv2.fromCheckpoint(bytes, { config: 'videomaev2-s', name: 'w.safetensors' })).toThrow(/w\.safetensors/);
  });

  it('the bytes of our pre-training checkpoint (safetensors) give its encoder, config read from the metadata', () => {
    const cfg: VideoMAEPretrainConfig = { ...PRETRAIN_CONFIGS['videomae-pretrain-tiny']!, name: 'bytes-test', imgSize: [8, 12], numFrames: 4, patchSize: 4, encoderEmbedDim: 16, encoderDepth: 2, encoderNumHeads: 2 };
    const m = new VideoMAEPretrain(cfg, { seed: 5 });
    const p = path.join(os.tmpdir(), `vrepa-pretrain-bytes-${process.pid}.safetensors`);
    savePretrainCheckpoint(m, p);
    const byPath = VideoMAEv2.fromCheckpoint(p);
    const byBytes = VideoMAEv2.fromCheckpoint(fs.readFileSync(p), { name: 'pretrained.safetensors' });
    expect(byBytes.config).toEqual(byPath.config);
    expect(byBytes.config.embedDim).toBe(16);
    const clip = Rng.fromSeed(2).randomTensor([1, 4, 8, 12, 3], 'uniform', { low: -1, high: 1 });
    const a = byPath.encode(clip);
    const b = byBytes.encode(clip);
    expect(Array.from(b.tokens.dataSync())).toEqual(Array.from(a.tokens.dataSync()));
    tf.dispose([clip, a.tokens, b.tokens]);
    for (const x of [m, byPath, byBytes]) x.dispose();
    fs.rmSync(p);
  });

  it('the browser entry has the models but not the Node disk cache', () => {
    expect(browser.VideoMAEv2).toBe(VideoMAEv2);
    expect('FeatureCache' in browser).toBe(false);
  });
});

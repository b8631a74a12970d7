import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { tensorLeakAcross } from '@vrepa/core';
import { describe, expect, it } from 'vitest';
import { evenlySpacedIndices, extractFeatures, physionFeatureDim, physionFeatures } from './physion.js';
import { extractSceneFeatures } from './scene-features.js';
import { readFeatureFile, writeFeatureFile } from './feature-file.js';
import { probeCommand } from './probe-command.js';
import { featureStats, LinearProbe, standardizedGram } from './probe.js';
import { Rng } from './rng.js';

/** tokens[b, f, r, c, k] = 10000·b + 1000·f + 100·r + 10·c + k, frame-major. */
function codedTokens(b: number, frames: number, h: number, w: number, d: number) {
  const data: number[] = [];
  for (let i = 0; i < b; i++) for (let f = 0; f < frames; f++) for (let r = 0; r < h; r++) for (let c = 0; c < w; c++) for (let k = 0; k < d; k++) data.push(10000 * i + 1000 * f + 100 * r + 10 * c + k);
  return { tokens: tf.tensor3d(data, [b, frames * h * w, d]), grid: { frames, height: h, width: w } };
}

describe('Physion protocol features', () => {
  it('picks 3 evenly spaced slices', () => {
    expect(evenlySpacedIndices(13, 3)).toEqual([0, 6, 12]);
    expect(evenlySpacedIndices(12, 3)).toEqual([0, 6, 11]); // 5.5 rounds up
    expect(evenlySpacedIndices(3, 3)).toEqual([0, 1, 2]);
    expect(evenlySpacedIndices(7, 1)).toEqual([3]);
    expect(() => evenlySpacedIndices(2, 3)).toThrow(/count must be an integer in \[1, 2\]/);
  });

  it('takes all spatial tokens of the slices, and the mean-pooled variants', () => {
    const x = codedTokens(2, 5, 2, 3, 2);
    const none = physionFeatures(x);
    expect(none.shape).toEqual([2, 3 * 6 * 2]);
    expect(physionFeatureDim(x.grid, 2)).toBe(36);
    const v = none.arraySync();
    // clip 1, slice 1 (= frame 2), token (row 1, col 2), dim 1
    expect(v[1]![1 * 12 + (1 * 3 + 2) * 2 + 1]).toBe(10000 + 2000 + 100 + 20 + 1);
    expect(v[0]![2 * 12]).toBe(4000); // slice 2 = frame 4
    const spatial = physionFeatures(x, { pool: 'spatial' }).arraySync();
    // mean over rows {0,1} and cols {0,1,2}: 100·0.5 + 10·1 = 60
    expect(spatial[0]).toEqual([60, 61, 2060, 2061, 4060, 4061]);
    const all = physionFeatures(x, { pool: 'all' }).arraySync();
    expect(all[1]![0]).toBeCloseTo(10000 + 2000 + 60, 3);
    tf.dispose([x.tokens, none]);
  });

  it('rejects a grid that does not match the tokens and leaks no tensors', async () => {
    const x = codedTokens(1, 4, 2, 2, 3);
    expect(() => physionFeatures({ tokens: x.tokens, grid: { frames: 4, height: 3, width: 2 } })).toThrow(
      /grid 4×3×2 \(24 tokens\) does not match the 16 tokens of shape \[1, 16, 3\]/,
    );
    expect(await tensorLeakAcross(() => physionFeatures(x, { pool: 'spatial' }))).toBe(0);
    x.tokens.dispose();
  });

  it('extractFeatures stacks clips, reports progress and disposes what the extractor returns', async () => {
    const before = tf.memory().numTensors;
    const progress: number[] = [];
    const videos = [0, 1, 2];
    const m = await extractFeatures(
      videos,
      (v) => (v === 1 ? tf.fill([2, 36], 7) : { tokens: tf.fill([1, 5 * 2 * 3, 2], v), grid: { frames: 5, height: 2, width: 3 } }),
      { progress: (done) => progress.push(done) },
    );
    expect([m.n, m.d]).toEqual([4, 36]);
    expect(Array.from(m.data.subarray(36, 40))).toEqual([7, 7, 7, 7]);
    expect(m.data[3 * 36]).toBe(2);
    expect(progress).toEqual([1, 2, 3]);
    expect(tf.memory().numTensors).toBe(before);
    await expect(extractFeatures([0, 1], (v) => tf.zeros([1, 3 + v]), { progress: false })).rejects.toThrow(/video 1 gave 4 features per clip, earlier videos gave 3/);
  });
});

describe('scene features', () => {
  it('extracts features of every clip of a dataset into a probe feature file (stand-in ffmpeg decoder)', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'scene-feats-'));
    fs.writeFileSync(path.join(dir, 'labels.csv'), 'clip,subset,seed,contact,first_contact_frame,params\nroll_00000,roll,1,1,20,{}\ndrop_00000,drop,2,0,-1,{}\n');
    const raw = path.join(dir, 'frames.rgb');
    fs.writeFileSync(raw, new Uint8Array(3 * 4 * 6 * 3).fill(255));
    for (const c of ['roll_00000', 'drop_00000']) fs.writeFileSync(path.join(dir, `${c}.mp4`), '');
    const fake = path.join(dir, 'ffmpeg');
    fs.writeFileSync(fake, `#!/bin/sh\ncase "$*" in\n  *rawvideo*) cat "${raw}" ;;\n  *) echo "  Stream #0:0: Video: h264, yuv420p, 6x4, 16 fps" >&2; exit 1 ;;\nesac\n`, { mode: 0o755 });
    const prev = process.env.FFMPEG;
    process.env.FFMPEG = fake;
    const before = tf.memory().numTensors;
    const shapes: number[][] = [];
    try {
      const out = path.join(dir, 'feats.safetensors');
      await extractSceneFeatures(dir, (v) => (shapes.push(v.shape), tf.tidy(() => v.mean([1, 2, 3]))), { out, maxFrames: 2, progress: false });
      const back = readFeatureFile(out);
      expect([back.features.n, back.features.d]).toEqual([2, 3]);
      expect(Array.from(back.features.data)).toEqual([1, 1, 1, 1, 1, 1]);
      expect(Array.from(back.labels)).toEqual([1, 0]);
      expect(back.groupNames).toEqual(['roll', 'drop']);
    } finally {
      if (prev === undefined) delete process.env.FFMPEG;
      else process.env.FFMPEG = prev;
    }
    expect(shapes).toEqual([[1, 2, 4, 6, 3], [1, 2, 4, 6, 3]]);
    expect(tf.memory().numTensors).toBe(before);
  });

  it('the chunked Gram matrix equals the one-shot one and leaks no tensors', async () => {
    const x = { data: Float32Array.from({ length: 60 }, (_, i) => Math.sin(i)), n: 6, d: 10 };
    const stats = featureStats(x);
    expect(await tensorLeakAcross(() => standardizedGram(x, stats, { chunkElements: 24 }))).toBe(0);
    // column chunks (4 columns of 10 here) add up to the one-shot Gram
    const chunked = await standardizedGram(x, stats, { chunkElements: 24 });
    const whole = await standardizedGram(x, stats);
    for (let i = 0; i < 36; i++) expect(chunked[i]).toBeCloseTo(whole[i]!, 4);
  });
});

describe('vrepa probe', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'probe-cmd-'));
  const capture = async (fn: () => Promise<number>) => {
    const out: string[] = [];
    const err: string[] = [];
    const o = process.stdout.write.bind(process.stdout);
    const e = process.stderr.write.bind(process.stderr);
    process.stdout.write = ((s: string) => (out.push(String(s)), true)) as typeof process.stdout.write;
    process.stderr.write = ((s: string) => (err.push(String(s)), true)) as typeof process.stderr.write;
    try {
      const rc = await fn();
      return { rc, out: out.join(''), err: err.join('') };
    } finally {
      process.stdout.write = o;
      process.stderr.write = e;
    }
  };

  it('cross-validates, writes JSON, saves a probe that --apply reloads', async () => {
    const rng = new Rng(2);
    const n = 80;
    const d = 6;
    const data = new Float32Array(n * d);
    const labels = new Uint8Array(n);
    for (let i = 0; i < n; i++) {
      labels[i] = i % 2;
      for (let j = 0; j < d; j++) data[i * d + j] = rng.normal() + (j === 0 ? (labels[i] ? 2 : -2) : 0);
    }
    const feats = path.join(dir, 'feats.safetensors');
    writeFeatureFile(feats, { features: { data, n, d }, labels, groups: Int32Array.from({ length: n }, (_, i) => (i >> 1) % 2), groupNames: ['roll', 'contain'] });
    const json = path.join(dir, 'out.json');
    const r = await capture(() => probeCommand.run(['--features', feats, '--folds', '4', '--json', json]));
    expect(r.rc, r.err).toBe(0);
    expect(r.out).toMatch(/4-fold stratified CV → accuracy \d+\.\d% ± \d+\.\d/);
    expect(r.out).toContain('| roll | 40 |');
    const j = JSON.parse(fs.readFileSync(json, 'utf8'));
    expect(j).toMatchObject({ folds: 4, n: 80, d: 6 });
    expect(j.accuracy).toBeGreaterThan(0.9); // separation 4σ along one axis: Bayes accuracy 97.7%
    expect(j.std).toBeGreaterThanOrEqual(0);
    expect(Object.keys(j.per_group)).toEqual(['roll', 'contain']);
    const saved = path.join(dir, 'feats.probe.safetensors');
    expect(j.probe).toBe(saved);
    expect(LinearProbe.load(saved).dim).toBe(6);
    const r2 = await capture(() => probeCommand.run(['--features', feats, '--apply', saved, '--json', json]));
    expect(r2.rc, r2.err).toBe(0);
    expect(JSON.parse(fs.readFileSync(json, 'utf8')).accuracy).toBeGreaterThan(0.9);
  });

  it('exits non-zero with one clear line on bad input', async () => {
    const feats = path.join(dir, 'one-class.safetensors');
    writeFeatureFile(feats, { features: { data: new Float32Array(12), n: 6, d: 2 }, labels: new Uint8Array(6).fill(1) });
    const r = await capture(() => probeCommand.run(['--features', feats]));
    expect(r.rc).toBe(1);
    expect(r.err).toMatch(/expected two classes \(0 and 1\), got only class 1 in all 6 rows/);
    const r2 = await capture(() => probeCommand.run(['--folds', 'x', '--features', feats]));
    expect(r2.rc).toBe(2);
    expect(r2.err).toMatch(/--folds must be an integer, got 'x'/);
    const r3 = await capture(() => probeCommand.run([]));
    expect(r3.err).toMatch(/--features FILE is required/);
  });
});

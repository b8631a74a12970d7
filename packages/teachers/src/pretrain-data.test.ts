import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import * as tf from '@tensorflow/tfjs';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { Rng, findFfmpeg, tensorLeakAcross } from '@vrepa/core';
import {
  IMAGENET_MEAN,
  IMAGENET_STD,
  centreView,
  cutSample,
  memoryClipSource,
  pretrainBatch,
  randomResizedCropBox,
  sampleFrameIndices,
  sampleOrder,
  type ClipSampling,
  type RawClip,
} from './pretrain-data.js';
import { listVideos, videoFolderSource } from './pretrain-sources.node.js';

/** A clip whose pixel (f, y, x, c) is a known function, to check what was cut. */
function patternClip(count: number, height: number, width: number): RawClip {
  const frames = new Uint8Array(count * height * width * 3);
  for (let f = 0; f < count; f++)
    for (let y = 0; y < height; y++)
      for (let x = 0; x < width; x++) {
        const o = ((f * height + y) * width + x) * 3;
        frames[o] = (f * 10) % 256;
        frames[o + 1] = (y * 7) % 256;
        frames[o + 2] = (x * 5) % 256;
      }
  return { frames, count, height, width };
}

const sampling = (over: Partial<ClipSampling> = {}): ClipSampling => ({ numFrames: 4, samplingRate: 2, size: [8, 12], cropScale: [0.5, 1], flip: true, ...over });

describe('VideoMAE frame sampling', () => {
  it('matches the official one-segment loop (hand-derived cases)', () => {
    // 20 frames, 4 × rate 2: skip_length 8, start uniform in [0, 12]; indices start + 2i
    const rng = Rng.fromSeed(3);
    const got = sampleFrameIndices(20, 4, 2, rng);
    expect(got[0]).toBeGreaterThanOrEqual(0);
    expect(got[0]).toBeLessThanOrEqual(12);
    expect(got).toEqual([0, 1, 2, 3].map((i) => got[0]! + 2 * i));
    // 6 frames, 4 × rate 2: too short for the span → start 0, the index stops advancing at the end (official clamp)
    expect(sampleFrameIndices(6, 4, 2, Rng.fromSeed(0))).toEqual([0, 2, 4, 4]);
    // exactly num_frames · rate frames: start 0 only
    expect(sampleFrameIndices(8, 4, 2, Rng.fromSeed(1))).toEqual([0, 2, 4, 6]);
    expect(() => sampleFrameIndices(3, 4, 1, Rng.fromSeed(0))).toThrow(/clip has 3 frames, fewer than num_frames 4/);
  });

  it('indices are always in range, non-decreasing, and steps of the rate until the clamp', () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 16 }), fc.integer({ min: 1, max: 5 }), fc.integer({ min: 0, max: 80 }), fc.nat(), (n, rate, extra, seed) => {
        const count = n + extra;
        const idx = sampleFrameIndices(count, n, rate, Rng.fromSeed(seed));
        return idx.length === n && idx.every((v, i) => v >= 0 && v < count && (i === 0 || v - idx[i - 1]! === rate || v === idx[i - 1]));
      }),
    );
  });
});

describe('random resized crop', () => {
  it('boxes lie inside the frame with area in the scale range (or the centre fallback)', () => {
    fc.assert(
      fc.property(fc.integer({ min: 4, max: 200 }), fc.integer({ min: 4, max: 200 }), fc.nat(), (h, w, seed) => {
        const [top, left, bh, bw] = randomResizedCropBox(h, w, [0.3, 1], [3 / 4, 4 / 3], Rng.fromSeed(seed));
        const inside = top >= 0 && left >= 0 && bh >= 1 && bw >= 1 && top + bh <= h && left + bw <= w;
        const area = (bh * bw) / (h * w);
        return inside && area <= 1 + 1e-9;
      }),
    );
  });

  it('the full box at the same size gives exactly the ImageNet-normalised pixels; flip mirrors the width', () => {
    const clip = patternClip(6, 8, 12);
    const view = centreView(clip, sampling({ samplingRate: 1 }));
    expect(view.indices).toEqual([0, 1, 2, 3]);
    const x = cutSample(clip, view, [8, 12]);
    const y = cutSample(clip, { ...view, flip: true }, [8, 12]);
    const xd = x.arraySync() as number[][][][];
    const yd = y.arraySync() as number[][][][];
    for (const [f, yy, xx, c] of [[0, 0, 0, 0], [2, 3, 5, 1], [3, 7, 11, 2], [1, 4, 9, 0]] as const) {
      const raw = [(f * 10) % 256, (yy * 7) % 256, (xx * 5) % 256][c]!;
      expect(xd[f]![yy]![xx]![c]).toBeCloseTo((raw / 255 - IMAGENET_MEAN[c]!) / IMAGENET_STD[c]!, 5);
      expect(yd[f]![yy]![11 - xx]![c]).toBeCloseTo(xd[f]![yy]![xx]![c]!, 6);
    }
    tf.dispose([x, y]);
  });

  it('a half-size crop box resized ×2 reproduces a constant region and covers only the box', () => {
    const clip = patternClip(4, 8, 8);
    // box rows 4..7, cols 0..3: red = frame·10, green = y·7 ∈ {28..49}, blue = x·5 ∈ {0..15}
    const x = cutSample(clip, { indices: [2, 2, 2, 2], box: [4, 0, 4, 4], flip: false }, [8, 8]);
    const d = x.arraySync() as number[][][][];
    const g = d[0]!.flat().map((p) => p[1]! * IMAGENET_STD[1] + IMAGENET_MEAN[1]).map((v) => v * 255);
    const b = d[0]!.flat().map((p) => p[2]! * IMAGENET_STD[2] + IMAGENET_MEAN[2]).map((v) => v * 255);
    expect(Math.min(...g)).toBeGreaterThanOrEqual(28 - 1e-3);
    expect(Math.max(...g)).toBeLessThanOrEqual(49 + 1e-3);
    expect(Math.max(...b)).toBeLessThanOrEqual(15 + 1e-3);
    expect(d[0]![0]![0]![0]! * IMAGENET_STD[0] + IMAGENET_MEAN[0]).toBeCloseTo(20 / 255, 5);
    x.dispose();
  });
});

describe('pre-training batches', () => {
  const clips = [0, 1, 2].map((i) => ({ name: `c${i}`, clip: patternClip(10 + i, 10, 14) }));

  it('a batch is a pure function of the step (any call order), shaped [B, F, H, W, 3]; no tensor leaks', async () => {
    const src = memoryClipSource(clips, 4);
    const s = sampling();
    const a = pretrainBatch(src, s, 7, 5, 2);
    pretrainBatch(src, s, 7, 1, 2).dispose();
    const b = pretrainBatch(src, s, 7, 5, 2, sampleOrder(src.size, 7));
    const c = pretrainBatch(src, s, 8, 5, 2);
    expect(a.shape).toEqual([2, 4, 8, 12, 3]);
    expect(Array.from(a.dataSync())).toEqual(Array.from(b.dataSync()));
    expect(Array.from(a.dataSync())).not.toEqual(Array.from(c.dataSync()));
    tf.dispose([a, b, c]);
    expect(await tensorLeakAcross(() => pretrainBatch(src, s, 7, 3, 2), 2)).toBe(0);
  });

  it('every clip is used once per epoch', () => {
    const order = sampleOrder(5, 3);
    for (const e of [0, 1, 4]) expect(Array.from({ length: 5 }, (_, k) => order(e * 5 + k)).sort()).toEqual([0, 1, 2, 3, 4]);
  });

  it('clips shorter than num_frames are skipped and counted', () => {
    const src = memoryClipSource([...clips, { name: 'short', clip: patternClip(3, 10, 14) }], 4);
    expect(src.size).toBe(3);
    expect(src.skipped).toEqual([{ item: 'short', reason: '3 frames, fewer than num_frames 4' }]);
  });
});

describe('video folder source', () => {
  function makeVideo(file: string, frames: number, size = '40x24') {
    const r = spawnSync(findFfmpeg().path, ['-v', 'error', '-y', '-f', 'lavfi', '-i', `testsrc=size=${size}:rate=8`, '-frames:v', String(frames), '-pix_fmt', 'yuv420p', file]);
    if (r.status !== 0) throw new Error(String(r.stderr));
  }

  it('decodes the videos at the decode size, in labels.csv order; bad videos are skipped and counted, or an error', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'vrepa-pretrain-src-'));
    makeVideo(path.join(dir, 'b.mp4'), 10);
    makeVideo(path.join(dir, 'a.mp4'), 9, '60x24');
    makeVideo(path.join(dir, 'short.mp4'), 3);
    fs.writeFileSync(path.join(dir, 'broken.mp4'), 'not a video');
    fs.writeFileSync(path.join(dir, 'labels.csv'), 'clip,subset,contact\nb,roll,1\na,roll,0\nshort,roll,0\nbroken,roll,1\n');
    expect(listVideos(dir).map((f) => path.basename(f))).toEqual(['b.mp4', 'a.mp4', 'short.mp4', 'broken.mp4']);
    const src = videoFolderSource(dir, { numFrames: 4, decodeSize: [12, 20] });
    expect(src.size).toBe(2);
    expect(path.basename(src.name(0))).toBe('b.mp4');
    expect(src.clip(1)).toMatchObject({ count: 9, height: 12, width: 20 });
    expect(src.clip(1).frames.length).toBe(9 * 12 * 20 * 3);
    expect(src.skipped.map((s) => path.basename(s.item))).toEqual(['short.mp4', 'broken.mp4']);
    expect(src.skipped[0]!.reason).toBe('3 frames, fewer than num_frames 4');
    expect(src.skipped[1]!.reason).toMatch(/cannot be decoded/);
    expect(() => videoFolderSource(dir, { numFrames: 4, decodeSize: [12, 20], onBadVideo: 'error' })).toThrow(/video .*short\.mp4 is not usable: 3 frames, fewer than num_frames 4 \(data\.on_bad_video is 'error'\)/);
    expect(() => videoFolderSource(path.join(dir, 'nope'), { numFrames: 4, decodeSize: [12, 20] })).toThrow(/is not a folder/);
    expect(() => videoFolderSource(dir, { numFrames: 4, decodeSize: [12, 20], only: ['a', 'zzz'] })).toThrow(/no video for clip\(s\) zzz/);
  }, 60_000);
});

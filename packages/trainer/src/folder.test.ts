import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import { beforeAll, describe, expect, it } from 'vitest';
import { initModel, findFfmpeg } from '@vrepa/cogvideox';
import { presetConfig } from './config.js';
import { prepareFolder, decodeClip, buildEncoders, parseShard, verifyFolderCache } from './folder.js';
import { Trainer } from './trainer.js';
import { CachedDataset } from './data.js';

let root: string;
let pipeline: string;

function makeVideo(file: string, frames: number, size = '64x48') {
  const r = spawnSync(findFfmpeg(), ['-v', 'error', '-y', '-f', 'lavfi', '-i', `testsrc=size=${size}:rate=8`, '-frames:v', String(frames), '-pix_fmt', 'yuv420p', file]);
  if (r.status !== 0) throw new Error(String(r.stderr));
}

beforeAll(() => {
  root = fs.mkdtempSync(path.join(os.tmpdir(), 'vrepa-folder-'));
  pipeline = path.join(root, 'tiny-pipeline');
  initModel('tiny', pipeline, { seed: 0 });
  const data = path.join(root, 'data');
  fs.mkdirSync(data);
  makeVideo(path.join(data, 'a.mp4'), 12);
  makeVideo(path.join(data, 'b.mp4'), 10, '80x48'); // another size: scaled + centre-cropped
  makeVideo(path.join(data, 'short.mp4'), 4);
  fs.writeFileSync(path.join(data, 'broken.mp4'), 'not a video');
  fs.writeFileSync(
    path.join(data, 'captions.csv'),
    ['video,caption', 'a.mp4,a ball rolls', 'b.mp4,"two balls, colliding"', 'short.mp4,too short', 'missing.mp4,gone', 'broken.mp4,broken', 'a.mp4,'].join('\n') + '\n',
  );
}, 60_000);

const cfg = (over: Record<string, unknown> = {}) =>
  presetConfig('tiny-folder', { model: { pipeline }, data: { dataset_dir: path.join(root, 'data'), cache_dir: path.join(root, `cache-${Math.random().toString(36).slice(2)}`), ...over } });

describe('dataset folder', () => {
  it('decodes clips to [1, F, H, W, 3] in [-1, 1] and names bad files', () => {
    const v = decodeClip(path.join(root, 'data/b.mp4'), { frames: 9, height: 48, width: 48 });
    expect(v.shape).toEqual([1, 9, 48, 48, 3]);
    const [lo, hi] = [v.min().dataSync()[0]!, v.max().dataSync()[0]!];
    expect(lo).toBeGreaterThanOrEqual(-1);
    expect(hi).toBeLessThanOrEqual(1);
    v.dispose();
    expect(() => decodeClip(path.join(root, 'data/short.mp4'), { frames: 9, height: 48, width: 48 })).toThrow(/too short: 4 frames, need 9/);
    expect(() => decodeClip(path.join(root, 'data/nope.mp4'), { frames: 9, height: 48, width: 48 })).toThrow(/does not exist/);
    expect(() => decodeClip(path.join(root, 'data/broken.mp4'), { frames: 9, height: 48, width: 48 })).toThrow(/cannot be decoded/);
  });

  it('prepare skips bad rows with a report, caches the rest, and a second prepare encodes nothing', () => {
    const c = cfg();
    const r = prepareFolder(c);
    expect(r.written).toBe(2);
    expect(r.skipped).toHaveLength(4);
    expect(r.skipped.join('\n')).toMatch(/row 3 \(short.mp4\): video .* is too short/);
    expect(r.skipped.join('\n')).toMatch(/row 4 \(missing.mp4\): (decodeVideo: )?video .* does not exist/);
    expect(r.skipped.join('\n')).toMatch(/row 5 \(broken.mp4\): (decodeVideo: )?(video )?.* cannot be decoded/);
    expect(r.skipped.join('\n')).toMatch(/row 6 \(a.mp4\): the caption is missing/);
    expect(r.index.teacherGrid).toEqual({ frames: 4, height: 2, width: 2 });
    const again = prepareFolder(c);
    expect(again.written).toBe(0);
    expect(again.cached).toBe(2);
    expect(() => prepareFolder(cfg({ on_bad_video: 'error' }))).toThrow(/dataset row 3 \(short.mp4\): video .* too short.*on_bad_video = 'error'/);
  }, 60_000);

  it('sharded prepare: two shards fill one cache, the unsharded run merges them without encoding, verify finds missing/corrupt entries', () => {
    const c = cfg();
    // rows 0 (a) and 1 (b) are good; shard 0/2 holds rows 0, 2, 4; shard 1/2 rows 1, 3, 5
    const before = verifyFolderCache(c);
    expect([before.ok, before.missing]).toEqual([0, [0, 1, 2, 3, 4, 5]]);
    const s0 = prepareFolder(c, { shard: parseShard('0/2') });
    expect([s0.written, s0.skipped.length]).toEqual([1, 2]); // row 2 too short, row 4 broken
    const half = verifyFolderCache(c);
    expect([half.ok, half.skipped.length, half.missing]).toEqual([1, 2, [1, 3, 5]]);
    const s1 = prepareFolder(c, { shard: parseShard('1/2') });
    expect([s1.written, s1.skipped.length]).toEqual([1, 2]);
    expect(fs.existsSync(path.join(c.data.cache_dir!, 'index.json'))).toBe(false); // shards never write the shared index
    const full = verifyFolderCache(c);
    expect([full.ok, full.skipped.length, full.missing, full.corrupt]).toEqual([2, 4, [], []]);
    const merged = prepareFolder(c);
    expect([merged.written, merged.cached, merged.skipped.length]).toEqual([0, 2, 4]);
    expect(merged.index.samples.map((x) => x.row)).toEqual([0, 1]);
    // damage: a truncated entry is corrupt, a deleted one is missing
    const f1 = path.join(c.data.cache_dir!, merged.index.samples[1]!.file);
    fs.writeFileSync(f1, fs.readFileSync(f1).subarray(0, 40));
    fs.rmSync(path.join(c.data.cache_dir!, merged.index.samples[0]!.file));
    const bad = verifyFolderCache(c);
    expect(bad.missing).toEqual([0]);
    expect(bad.corrupt.map((x) => x.row)).toEqual([1]);
    expect(() => parseShard('2/2')).toThrow(/--shard must be i\/n with 0 ≤ i < n/);
    expect(() => parseShard('1')).toThrow(/--shard/);
  }, 120_000);

  it('trains on the cache; the second epoch is served from the cache (counted)', () => {
    const c = cfg();
    const t = new Trainer(c, { out: fs.mkdtempSync(path.join(root, 'out-')), progress: false, log: () => {} });
    try {
      const ds = t.dataset as CachedDataset;
      const first = t.trainStep(); // epoch 0: both samples (batch 2)
      expect(first.loss_align).not.toBeNull();
      expect(ds.stats).toMatchObject({ misses: 2, hits: 0 });
      t.trainStep(); // epoch 1
      expect(ds.stats).toMatchObject({ misses: 2, hits: 2 });
    } finally {
      t.dispose();
    }
  }, 60_000);

  it('writes validation videos from fixed prompts with the weights being trained', async () => {
    const c = presetConfig('tiny-folder', {
      model: { pipeline },
      data: { dataset_dir: path.join(root, 'data'), cache_dir: path.join(root, 'cache-val') },
      train: { validation_every: 2, validation_prompts: ['a ball rolls'], validation_inference_steps: 2, tensorboard: false },
    });
    const out = fs.mkdtempSync(path.join(root, 'out-val-'));
    const t = new Trainer(c, { out, maxSteps: 2, progress: false, log: () => {} });
    try {
      await t.run();
    } finally {
      t.dispose();
    }
    for (const f of ['step-2-0.gif', 'step-2-0.png']) expect(fs.statSync(path.join(out, 'validation', f)).size).toBeGreaterThan(100);
    expect(fs.readFileSync(path.join(out, 'validation/step-2-0.gif')).subarray(0, 3).toString()).toBe('GIF');
  }, 60_000);

  it("teacher features go through @vrepa/teachers' FeatureCache when teacher.cache_dir is set", () => {
    const featDir = path.join(root, 'features');
    const mk = () =>
      presetConfig('tiny-folder', {
        model: { pipeline },
        teacher: { cache_dir: featDir },
        data: { dataset_dir: path.join(root, 'data'), cache_dir: path.join(root, `cache-${Math.random().toString(36).slice(2)}`) },
      });
    const first = buildEncoders(mk());
    const r1 = prepareFolder(mk(), { encoders: first });
    expect(first.featureCache!.stats).toMatchObject({ misses: 2, hits: 0 });
    first.dispose();
    // a new training cache (another run): the teacher features are read back, not recomputed
    const second = buildEncoders(mk());
    const r2 = prepareFolder(mk(), { encoders: second });
    expect(second.featureCache!.stats).toMatchObject({ misses: 0, hits: 2 });
    second.dispose();
    expect(r2.index.teacherGrid).toEqual(r1.index.teacherGrid);
  }, 60_000);
});

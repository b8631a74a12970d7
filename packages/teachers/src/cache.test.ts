/** FeatureCache: bit-exact round trip, keys, corruption detection and recompute, concurrency, commands. */
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import * as tf from '@tensorflow/tfjs';
import fc from 'fast-check';
import { afterAll, describe, expect, it } from 'vitest';
import { floatToHalf, halfToFloat, tensorLeakAcross } from '@vrepa/core';
import { FeatureCache, cacheKey, cachedEncodeVideo, canonicalJson, hashTeacherWeights, teacherCacheKey } from './cache.js';
import { cacheLsCommand, cachePruneCommand, cacheVerifyCommand, parseAge, parseSize } from './commands.js';
import { VideoMAEv2 } from './videomaev2.js';
import { teacherConfig } from './configs.js';
import { loadTeacherWeights } from './teacher.js';

const tmpRoot = fs.mkdtempSync(path.join(os.tmpdir(), 'vrepa-cache-test-'));
afterAll(() => fs.rmSync(tmpRoot, { recursive: true, force: true }));
let n = 0;
const freshDir = () => path.join(tmpRoot, `c${n++}`);
const key = (s: string) => cacheKey({ teacher: { name: 't' }, weights: 'w', preprocess: {}, clip: s });

describe('FeatureCache', () => {
  it('float32 round trip is bit-exact (property)', () => {
    const cache = new FeatureCache({ dir: freshDir() });
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 2 }),
        fc.integer({ min: 1, max: 3 }),
        fc.integer({ min: 1, max: 3 }),
        fc.integer({ min: 1, max: 5 }),
        fc.integer({ min: 0, max: 1e9 }),
        (b, f, h, d, seed) => {
          const grid = { frames: f, height: h, width: 2 };
          const count = b * f * h * 2 * d;
          const data = new Float32Array(count);
          let s = seed;
          for (let i = 0; i < count; i++) {
            s = (s * 1103515245 + 12345) >>> 0;
            // any float32 bit pattern except NaN
            const u = new Uint32Array([s ^ (i * 2654435761)]);
            const v = new Float32Array(u.buffer)[0]!;
            data[i] = Number.isNaN(v) ? 0 : v;
          }
          const t = tf.tensor3d(data, [b, f * h * 2, d]);
          const k = key(`p${seed}-${count}`);
          cache.put(k, t, grid);
          const got = cache.get(k)!;
          const back = got.tokens.dataSync() as Float32Array;
          const same = Buffer.compare(Buffer.from(back.buffer, back.byteOffset, back.byteLength), Buffer.from(data.buffer)) === 0;
          const ok = same && JSON.stringify(got.grid) === JSON.stringify(grid) && got.tokens.shape.join() === t.shape.join();
          tf.dispose([t, got.tokens]);
          return ok;
        },
      ),
      { numRuns: 25 },
    );
  });

  it('float16 entries hold the float16 rounding of the tokens (half the bytes)', () => {
    const cache = new FeatureCache({ dir: freshDir(), dtype: 'float16' });
    const vals = [0, 1, -2.5, 1e-3, 3.14159, 65504, -1e-7];
    const t = tf.tensor3d(vals, [1, 7, 1]);
    const bytes = cache.put(key('f16'), t, { frames: 7, height: 1, width: 1 });
    expect(bytes).toBe(14);
    const got = cache.get(key('f16'))!;
    expect(Array.from(got.tokens.dataSync())).toEqual(vals.map((v) => halfToFloat(floatToHalf(v))));
    tf.dispose([t, got.tokens]);
  });

  it('keys: stable under object key order, different for any changed part', () => {
    const a = cacheKey({ teacher: { a: 1, b: [1, 2] }, weights: 'w', preprocess: { f: 3, d: true }, clip: 'c' });
    const b = cacheKey({ preprocess: { d: true, f: 3 }, clip: 'c', weights: 'w', teacher: { b: [1, 2], a: 1 } });
    expect(a).toBe(b);
    expect(a).toMatch(/^[0-9a-f]{64}$/);
    const variants = [
      cacheKey({ teacher: { a: 2, b: [1, 2] }, weights: 'w', preprocess: { f: 3, d: true }, clip: 'c' }),
      cacheKey({ teacher: { a: 1, b: [1, 2] }, weights: 'w2', preprocess: { f: 3, d: true }, clip: 'c' }),
      cacheKey({ teacher: { a: 1, b: [1, 2] }, weights: 'w', preprocess: { f: 2, d: true }, clip: 'c' }),
      cacheKey({ teacher: { a: 1, b: [1, 2] }, weights: 'w', preprocess: { f: 3, d: true }, clip: 'c2' }),
    ];
    expect(new Set([a, ...variants]).size).toBe(5);
    expect(canonicalJson({ b: 1, a: { d: 2, c: 3 } })).toBe('{"a":{"c":3,"d":2},"b":1}');
    expect(() => cacheKey({ teacher: {}, weights: 'w', preprocess: {}, clip: '' })).toThrow(/clip/);
  });

  it('the teacher key follows the weights content, not the instance', () => {
    const cfg = { ...teacherConfig('videomaev2-s', 'videomaev2'), embedDim: 8, depth: 1, numHeads: 2, patchSize: 4, imgSize: 8, numFrames: 2 };
    const m1 = new VideoMAEv2(cfg);
    const m2 = new VideoMAEv2(cfg, { init: 'zeros' });
    const sd = m1.stateDict();
    const m3 = new VideoMAEv2(cfg, { init: 'zeros' });
    m3.loadStateDict(sd);
    expect(hashTeacherWeights(m3)).toBe(hashTeacherWeights(m1));
    expect(hashTeacherWeights(m2)).not.toBe(hashTeacherWeights(m1));
    expect(teacherCacheKey(m1, 'clip-1')).toBe(teacherCacheKey(m3, 'clip-1'));
    expect(teacherCacheKey(m1, 'clip-1')).not.toBe(teacherCacheKey(m1, 'clip-2'));
    // reloading weights through loadTeacherWeights forgets the memo
    const before = hashTeacherWeights(m2);
    const src = { names: () => [...sd.keys()], shape: (k: string) => sd.get(k)!.shape, read: (k: string) => sd.get(k)! };
    loadTeacherWeights(m2, src, 'test');
    expect(hashTeacherWeights(m2)).toBe(hashTeacherWeights(m1));
    expect(hashTeacherWeights(m2)).not.toBe(before);
    tf.dispose([...sd.values()]);
    [m1, m2, m3].forEach((m) => m.dispose());
  });

  it('truncated, bit-flipped, foreign and garbage entries are detected, removed and recomputed', () => {
    const reasons: string[] = [];
    const cache = new FeatureCache({ dir: freshDir(), onCorrupt: (_k, r) => reasons.push(r) });
    const t = tf.tensor3d(Array.from({ length: 24 }, (_, i) => i / 7), [1, 6, 4]);
    const grid = { frames: 1, height: 2, width: 3 };
    const damage: Array<[string, (f: string) => void, RegExp]> = [
      ['truncated', (f) => fs.truncateSync(f, fs.statSync(f).size - 5), /truncated|past the end|end of/i],
      ['bit flip', (f) => { const b = fs.readFileSync(f); b[b.length - 3] ^= 0x10; fs.writeFileSync(f, b); }, /checksum/],
      ['garbage', (f) => fs.writeFileSync(f, 'not a safetensors file at all'), /header|truncated|JSON|length/i],
      ['other key', (f) => fs.copyFileSync(cache.fileOf(key('other')), f), /does not match/],
    ];
    cache.put(key('other'), t, grid);
    for (const [what, hurt, re] of damage) {
      const k = key(what);
      cache.put(k, t, grid);
      hurt(cache.fileOf(k));
      expect(cache.verify().find((c) => c.key === k)!.ok, what).toBe(false);
      let computed = 0;
      const r = cache.getOrCompute(k, () => {
        computed++;
        return { tokens: tf.clone(t) as tf.Tensor3D, grid };
      });
      expect(r.hit, what).toBe(false);
      expect(computed).toBe(1);
      expect(reasons.at(-1), what).toMatch(re);
      const again = cache.getOrCompute(k, () => {
        throw new Error('must be a hit');
      });
      expect(again.hit).toBe(true);
      tf.dispose([r.tokens, again.tokens]);
    }
    expect(cache.stats.corrupt).toBe(damage.length);
    expect(cache.verify().every((c) => c.ok)).toBe(true);
    t.dispose();
  });

  it('rejects tokens that do not fit the grid and malformed keys', () => {
    const cache = new FeatureCache({ dir: freshDir() });
    const t = tf.zeros([1, 5, 2]);
    expect(() => cache.put(key('x'), t, { frames: 1, height: 2, width: 3 })).toThrow(/do not fit grid 1×2×3 \(6 tokens\)/);
    expect(() => cache.get('../etc/passwd')).toThrow(/64 hex digits/);
    t.dispose();
  });

  it('concurrent writers of one key (separate processes) leave one complete entry', async () => {
    const dir = freshDir();
    const k = key('race');
    const here = path.dirname(fileURLToPath(import.meta.url));
    const script = path.join(here, '__testdata__', 'cache-writer.ts');
    const procs = [1, 2].map(
      (w) =>
        new Promise<number>((resolve, reject) => {
          const p = spawn(process.execPath, ['--import', 'tsx', script, dir, k, String(w), '10'], { stdio: ['ignore', 'ignore', 'pipe'], cwd: path.join(here, '..') });
          let err = '';
          p.stderr.on('data', (d) => (err += d));
          p.on('exit', (code) => (code === 0 ? resolve(code) : reject(new Error(`writer ${w} exited ${code}: ${err}`))));
        }),
    );
    // read while they write: every read is either a miss or a complete, valid entry
    const cache = new FeatureCache({ dir });
    let done = false;
    const all = Promise.all(procs).finally(() => (done = true));
    let reads = 0;
    while (!done) {
      const r = cache.get(k);
      if (r) {
        const v = r.tokens.dataSync();
        expect(v.every((x) => x === v[0])).toBe(true); // one writer's content, never a mix
        r.tokens.dispose();
        reads++;
      }
      await new Promise((res) => setTimeout(res, 5));
    }
    await all;
    expect(cache.stats.corrupt).toBe(0);
    const final = cache.verify();
    expect(final.length).toBe(1);
    expect(final[0]!.ok).toBe(true);
    expect(fs.readdirSync(dir).filter((f) => f.includes('.tmp-'))).toEqual([]);
    expect(reads).toBeGreaterThanOrEqual(0);
  }, 60_000);

  it('cachedEncodeVideo: a hit returns the bits of the miss and leaks nothing', async () => {
    const cfg = { ...teacherConfig('videomaev2-s', 'videomaev2'), embedDim: 8, depth: 1, numHeads: 2, patchSize: 4, imgSize: 8, numFrames: 2 };
    const m = new VideoMAEv2(cfg);
    const cache = new FeatureCache({ dir: freshDir() });
    const video = tf.randomUniform([1, 3, 12, 12, 3], -1, 1, 'float32', 3);
    const miss = cachedEncodeVideo(cache, m, video);
    const hit = cachedEncodeVideo(cache, m, video);
    expect([miss.hit, hit.hit]).toEqual([false, true]);
    expect(hit.key).toBe(miss.key);
    expect(Array.from(hit.tokens.dataSync())).toEqual(Array.from(miss.tokens.dataSync()));
    expect(hit.grid).toEqual(miss.grid);
    expect(await tensorLeakAcross(() => cachedEncodeVideo(cache, m, video, { clip: 'clip-a' }).tokens)).toBe(0);
    tf.dispose([video, miss.tokens, hit.tokens]);
    m.dispose();
  });
});

describe('vrepa cache commands', () => {
  const capture = () => {
    const lines: string[] = [];
    const errs: string[] = [];
    return { out: { log: (s: string) => lines.push(s), error: (s: string) => errs.push(s) }, lines, errs };
  };
  const fill = (dir: string, count: number) => {
    const cache = new FeatureCache({ dir });
    const t = tf.zeros([1, 6, 16]);
    const keys = Array.from({ length: count }, (_, i) => key(`cmd-${dir}-${i}`));
    keys.forEach((k, i) => {
      cache.put(k, t, { frames: 1, height: 2, width: 3 });
      const when = new Date(Date.now() - (count - i) * 86_400_000); // entry i is (count - i) days old
      fs.utimesSync(cache.fileOf(k), when, when);
    });
    t.dispose();
    return { cache, keys };
  };

  it('ls lists entries and the total; --json', async () => {
    const dir = freshDir();
    const { cache, keys } = fill(dir, 3);
    const c = capture();
    expect(await cacheLsCommand(c.out).run([dir])).toBe(0);
    expect(c.lines.length).toBe(4);
    expect(c.lines.at(-1)).toMatch(/^3 entries, /);
    const j = capture();
    expect(await cacheLsCommand(j.out).run(['--dir', dir, '--json'])).toBe(0);
    const parsed = JSON.parse(j.lines[0]!);
    expect(parsed.entries.map((e: { key: string }) => e.key).sort()).toEqual([...keys].sort());
    expect(parsed.total_bytes).toBe(cache.size());
  });

  it('verify reports bad entries (exit 1) and --remove deletes them', async () => {
    const dir = freshDir();
    const { cache, keys } = fill(dir, 2);
    fs.truncateSync(cache.fileOf(keys[0]!), 20);
    const c = capture();
    expect(await cacheVerifyCommand(c.out).run([dir])).toBe(1);
    expect(c.lines.join('\n')).toMatch(new RegExp(`BAD ${keys[0]}`));
    expect(c.lines.at(-1)).toMatch(/1 ok, 1 bad/);
    expect(await cacheVerifyCommand(capture().out).run([dir, '--remove'])).toBe(0);
    expect(cache.list().map((e) => e.key)).toEqual([keys[1]]);
  });

  it('prune by age and by size (oldest first); --dry-run removes nothing; usage errors', async () => {
    const dir = freshDir();
    const { cache, keys } = fill(dir, 4);
    const one = cache.list()[0]!.bytes;
    const dry = capture();
    expect(await cachePruneCommand(dry.out).run([dir, '--older-than', '2.5d', '--dry-run'])).toBe(0);
    expect(dry.lines.filter((l) => l.startsWith('would remove')).length).toBe(2);
    expect(cache.list().length).toBe(4);
    expect(await cachePruneCommand(capture().out).run([dir, '--older-than', '2.5d'])).toBe(0);
    expect(cache.list().map((e) => e.key)).toEqual(keys.slice(2));
    expect(await cachePruneCommand(capture().out).run([dir, '--max-size', String(one)])).toBe(0);
    expect(cache.list().map((e) => e.key)).toEqual(keys.slice(3));
    const bad = capture();
    expect(await cachePruneCommand(bad.out).run([dir])).toBe(2);
    expect(bad.errs[0]).toMatch(/--max-size and\/or --older-than/);
    expect(await cachePruneCommand(bad.out).run([dir, '--max-size', 'lots'])).toBe(2);
    expect(await cacheLsCommand(bad.out).run(['--bogus'])).toBe(2);
    const help = capture();
    expect(await cacheLsCommand(help.out).run(['--help'])).toBe(0);
    expect(help.lines[0]).toMatch(/^vrepa cache ls/);
  });

  it('size and age parsing', () => {
    expect(parseSize('500M')).toBe(500 * 1024 ** 2);
    expect(parseSize('1.5K')).toBe(1536);
    expect(parseSize('12GiB')).toBe(12 * 1024 ** 3);
    expect(parseAge('30d')).toBe(30 * 86_400_000);
    expect(() => parseAge('soon')).toThrow(/not understood/);
  });
});

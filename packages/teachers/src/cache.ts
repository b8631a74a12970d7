/**
 * FeatureCache: the teacher is frozen, so its features of a clip never change — store them on disk once.
 *
 * - key = sha256 of (teacher config + weights content hash + pre-processing parameters + clip id or
 *   content hash), canonical JSON; `teacherCacheKey` builds it.
 * - value = `<dir>/<key>.safetensors` with one tensor `tokens` `[B, N, D]` (F32, or F16 on request) and
 *   metadata: the grid, the key, the sha256 of the tensor bytes, the dtype written, the key parts.
 * - writes are atomic (core's writeSafetensors: unique temp file + fsync + rename), so concurrent writers
 *   of one key each publish a complete file and the last rename wins; readers never see a partial file.
 * - reads check the header, the key, the shape against the grid and the checksum: a corrupt or truncated
 *   entry is reported (`stats.corrupt`, `onCorrupt`), removed, and `getOrCompute` recomputes it.
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { SafetensorsFile, decodeBytes, hostToStreamEntry, toTorchLayout, writeSafetensorsStream, type ParamLayout } from '@vrepa/core';
import type { EncodeResult, PreprocessOptions, VideoTeacher } from './teacher.js';
import type { TeacherGrid } from './vit.js';

export const CACHE_FORMAT = 'vrepa-feature-cache/1';
const KEY_RE = /^[0-9a-f]{64}$/;

/** The default cache folder: $VREPA_CACHE_DIR, else ~/.cache/vrepa/features. */
export function defaultCacheDir(): string {
  return process.env.VREPA_CACHE_DIR || path.join(os.homedir(), '.cache', 'vrepa', 'features');
}

/** JSON with sorted object keys (a stable text for hashing). */
export function canonicalJson(v: unknown): string {
  if (v === undefined) return 'null';
  if (v === null || typeof v !== 'object') {
    if (typeof v === 'number' && !Number.isFinite(v)) return JSON.stringify(String(v));
    return JSON.stringify(v);
  }
  if (Array.isArray(v)) return `[${v.map(canonicalJson).join(',')}]`;
  const o = v as Record<string, unknown>;
  return `{${Object.keys(o)
    .filter((k) => o[k] !== undefined)
    .sort()
    .map((k) => `${JSON.stringify(k)}:${canonicalJson(o[k])}`)
    .join(',')}}`;
}

/** memoised weights hashes, each valid for the model's weightsVersion it was computed at */
const weightHashes = new WeakMap<VideoTeacher, { version: number; hash: string }>();

/**
 * sha256 of a model's weights content: every state-dict entry's name, PyTorch shape and float32 bytes,
 * in order (independent of the file format they came from). Memoised per model instance and its
 * `weightsVersion` (loading through fromCheckpoint / loadTeacherWeights bumps it); after changing
 * weights any other way pass `{ fresh: true }`.
 */
export function hashTeacherWeights(model: VideoTeacher, opts: { fresh?: boolean } = {}): string {
  const memo = opts.fresh ? undefined : weightHashes.get(model);
  if (memo && memo.version === model.weightsVersion) return memo.hash;
  const h = crypto.createHash('sha256');
  const entries: Array<[string, tf.Tensor, ParamLayout]> = [
    ...model.namedParameters().map(([n, p]): [string, tf.Tensor, ParamLayout] => [n, p.value, p.layout]),
    ...model.namedBuffers().filter(([, b]) => b.persistent).map(([n, b]): [string, tf.Tensor, ParamLayout] => [n, b.value, b.layout]),
  ];
  for (const [name, value, layout] of entries) {
    const t = toTorchLayout(value, layout);
    const data = t.dataSync() as Float32Array;
    h.update(`${name}[${t.shape.join(',')}]`);
    h.update(new Uint8Array(data.buffer, data.byteOffset, data.byteLength));
    t.dispose();
  }
  const out = h.digest('hex');
  weightHashes.set(model, { version: model.weightsVersion, hash: out });
  return out;
}

/** sha256 of a tensor's shape, dtype and values (a clip content hash). */
export function hashTensor(x: tf.Tensor): string {
  const data = x.dataSync();
  const h = crypto.createHash('sha256');
  h.update(`${x.dtype}[${x.shape.join(',')}]`);
  h.update(new Uint8Array(data.buffer, data.byteOffset, data.byteLength));
  return h.digest('hex');
}

export interface CacheKeyParts {
  /** the teacher's architecture (VideoTeacher.describe()) */
  teacher: Record<string, unknown>;
  /** weights content hash (hashTeacherWeights) */
  weights: string;
  /** every pre-processing parameter that changes the clip (strategy, size, factor, drop, normalise) */
  preprocess: Record<string, unknown>;
  /** a clip id (dataset path + frame range) or a content hash (hashTensor) */
  clip: string;
}

/** The cache key of (teacher, weights, pre-processing, clip): sha256 of their canonical JSON. */
export function cacheKey(parts: CacheKeyParts): string {
  if (!parts.clip) throw new Error('cacheKey: clip must be a non-empty id or content hash');
  return crypto.createHash('sha256').update(canonicalJson({ format: CACHE_FORMAT, ...parts })).digest('hex');
}

/** The key for `model` (its config and weights hash), a clip and the pre-processing used. */
export function teacherCacheKey(model: VideoTeacher, clip: string | tf.Tensor, preprocess: Record<string, unknown> = { kind: 'reduced', factor: 3, dropFirstFrame: true, normalize: true }): string {
  return cacheKey({ teacher: model.describe(), weights: hashTeacherWeights(model), preprocess, clip: typeof clip === 'string' ? clip : hashTensor(clip) });
}

export interface CacheEntryInfo {
  key: string;
  file: string;
  bytes: number;
  mtimeMs: number;
}

export interface CacheEntryCheck extends CacheEntryInfo {
  ok: boolean;
  /** why the entry is unreadable */
  reason?: string;
  grid?: TeacherGrid;
  shape?: number[];
  dtype?: string;
}

export interface FeatureCacheOptions {
  /** folder (created on first write); default defaultCacheDir() */
  dir?: string;
  /** stored precision; default 'float32' (bit-exact round trip); 'float16' halves the size */
  dtype?: 'float32' | 'float16';
  /** called when an entry is found corrupt (it is then removed) */
  onCorrupt?: (key: string, reason: string) => void;
}

export interface CacheStats {
  hits: number;
  misses: number;
  corrupt: number;
  writes: number;
  bytesWritten: number;
}

class CorruptEntry extends Error {}

/** Read and check one entry file; throws CorruptEntry with the reason. */
function readEntry(file: string, key: string): { tokens: Float32Array; shape: number[]; grid: TeacherGrid; dtype: string } {
  let f: SafetensorsFile;
  try {
    f = SafetensorsFile.open(file);
  } catch (e) {
    throw new CorruptEntry((e as Error).message);
  }
  try {
    const m = f.metadata;
    if (m.format !== CACHE_FORMAT) throw new CorruptEntry(`metadata format is ${JSON.stringify(m.format)}, not ${CACHE_FORMAT}`);
    if (m.key !== key) throw new CorruptEntry(`metadata key ${m.key} does not match the file name's key ${key}`);
    if (!f.has('tokens')) throw new CorruptEntry(`no 'tokens' tensor`);
    const info = f.info('tokens');
    let grid: TeacherGrid;
    try {
      grid = JSON.parse(m.grid ?? '');
    } catch {
      throw new CorruptEntry(`metadata grid ${JSON.stringify(m.grid)} is not JSON`);
    }
    const n = grid.frames * grid.height * grid.width;
    if (info.shape.length !== 3 || info.shape[1] !== n) throw new CorruptEntry(`tokens [${info.shape.join(', ')}] do not fit grid ${grid.frames}×${grid.height}×${grid.width}`);
    const bytes = f.readBytes('tokens');
    const sum = crypto.createHash('sha256').update(bytes).digest('hex');
    if (sum !== m.sha256) throw new CorruptEntry(`checksum mismatch (stored ${m.sha256}, data ${sum})`);
    return { tokens: decodeBytes(info.dtype, bytes) as Float32Array, shape: [...info.shape], grid, dtype: info.dtype };
  } finally {
    f.close();
  }
}

/** An on-disk cache of teacher features (see the file comment). */
export class FeatureCache {
  readonly dir: string;
  readonly dtype: 'float32' | 'float16';
  readonly stats: CacheStats = { hits: 0, misses: 0, corrupt: 0, writes: 0, bytesWritten: 0 };
  private readonly onCorrupt?: (key: string, reason: string) => void;

  constructor(opts: FeatureCacheOptions = {}) {
    this.dir = path.resolve(opts.dir ?? defaultCacheDir());
    this.dtype = opts.dtype ?? 'float32';
    if (this.dtype !== 'float32' && this.dtype !== 'float16') throw new Error(`FeatureCache: dtype must be 'float32' or 'float16', got ${JSON.stringify(opts.dtype)}`);
    this.onCorrupt = opts.onCorrupt;
  }

  /** The entry file of a key. */
  fileOf(key: string): string {
    if (!KEY_RE.test(key)) throw new Error(`FeatureCache: key must be 64 hex digits (a sha256), got ${JSON.stringify(key)}`);
    return path.join(this.dir, `${key}.safetensors`);
  }

  has(key: string): boolean {
    return fs.existsSync(this.fileOf(key));
  }

  /** The cached features, or null (absent; or corrupt — then reported and removed). */
  get(key: string): EncodeResult | null {
    const file = this.fileOf(key);
    if (!fs.existsSync(file)) {
      this.stats.misses++;
      return null;
    }
    try {
      const e = readEntry(file, key);
      this.stats.hits++;
      return { tokens: tf.tensor3d(e.tokens, e.shape as [number, number, number]), grid: e.grid };
    } catch (err) {
      if (!(err instanceof CorruptEntry)) throw err;
      this.stats.corrupt++;
      this.stats.misses++;
      this.onCorrupt?.(key, err.message);
      fs.rmSync(file, { force: true });
      return null;
    }
  }

  /** Store features atomically (the tensor is not disposed). Returns the bytes written. */
  put(key: string, tokens: tf.Tensor, grid: TeacherGrid, info: Record<string, unknown> = {}): number {
    const file = this.fileOf(key);
    const n = grid.frames * grid.height * grid.width;
    if (tokens.rank !== 3 || tokens.shape[1] !== n)
      throw new Error(`FeatureCache.put: tokens [${tokens.shape.join(', ')}] do not fit grid ${grid.frames}×${grid.height}×${grid.width} (${n} tokens)`);
    const entry = hostToStreamEntry('tokens', { dtype: 'F32', shape: tokens.shape, data: tokens.dataSync() as Float32Array }, this.dtype === 'float16' ? 'F16' : 'F32');
    const bytes = entry.bytes();
    const sha256 = crypto.createHash('sha256').update(bytes).digest('hex');
    fs.mkdirSync(this.dir, { recursive: true });
    writeSafetensorsStream(file, [{ ...entry, bytes: () => bytes }], {
      metadata: { format: CACHE_FORMAT, key, grid: JSON.stringify(grid), sha256, created: new Date().toISOString(), info: canonicalJson(info) },
    });
    this.stats.writes++;
    this.stats.bytesWritten += bytes.byteLength;
    return bytes.byteLength;
  }

  /** Cached features of `key`, or `compute()` stored then returned. `hit` says which. */
  getOrCompute(key: string, compute: () => EncodeResult, info: Record<string, unknown> = {}): EncodeResult & { hit: boolean } {
    const got = this.get(key);
    if (got) return { ...got, hit: true };
    const r = compute();
    this.put(key, r.tokens, r.grid, info);
    return { ...r, hit: false };
  }

  /** Every entry file (no reads beyond stat). */
  list(): CacheEntryInfo[] {
    if (!fs.existsSync(this.dir)) return [];
    const out: CacheEntryInfo[] = [];
    for (const name of fs.readdirSync(this.dir)) {
      const m = name.match(/^([0-9a-f]{64})\.safetensors$/);
      if (!m) continue;
      const file = path.join(this.dir, name);
      const st = fs.statSync(file);
      out.push({ key: m[1]!, file, bytes: st.size, mtimeMs: st.mtimeMs });
    }
    return out.sort((a, b) => a.mtimeMs - b.mtimeMs);
  }

  /** Total bytes of the entries. */
  size(): number {
    return this.list().reduce((s, e) => s + e.bytes, 0);
  }

  /** Read and check every entry; with `remove`, delete the bad ones. */
  verify(opts: { remove?: boolean } = {}): CacheEntryCheck[] {
    return this.list().map((e) => {
      try {
        const r = readEntry(e.file, e.key);
        return { ...e, ok: true, grid: r.grid, shape: r.shape, dtype: r.dtype };
      } catch (err) {
        if (!(err instanceof CorruptEntry)) throw err;
        if (opts.remove) fs.rmSync(e.file, { force: true });
        return { ...e, ok: false, reason: err.message };
      }
    });
  }

  /**
   * Remove entries older than `olderThanMs`, then the oldest until the total is ≤ `maxBytes`, plus
   * leftover temp files of interrupted writes older than an hour. Returns what was (or, with dryRun,
   * would be) removed.
   */
  prune(opts: { maxBytes?: number; olderThanMs?: number; dryRun?: boolean; now?: number } = {}): CacheEntryInfo[] {
    const now = opts.now ?? Date.now();
    const entries = this.list();
    const removed: CacheEntryInfo[] = [];
    let total = entries.reduce((s, e) => s + e.bytes, 0);
    for (const e of entries) {
      const old = opts.olderThanMs !== undefined && now - e.mtimeMs > opts.olderThanMs;
      const over = opts.maxBytes !== undefined && total > opts.maxBytes;
      if (old || over) {
        removed.push(e);
        total -= e.bytes;
      }
    }
    if (!opts.dryRun) {
      for (const e of removed) fs.rmSync(e.file, { force: true });
      if (fs.existsSync(this.dir)) {
        for (const name of fs.readdirSync(this.dir)) {
          if (!/\.safetensors\.tmp-/.test(name)) continue;
          const f = path.join(this.dir, name);
          if (now - fs.statSync(f).mtimeMs > 3_600_000) fs.rmSync(f, { force: true });
        }
      }
    }
    return removed;
  }
}

/**
 * Teacher features through a cache: the cached tokens when present, else `model.encodeVideo(video)`
 * (stored). `clip` is a stable clip id, or omitted to hash the video content.
 */
export function cachedEncodeVideo(
  cache: FeatureCache,
  model: VideoTeacher,
  video: tf.Tensor,
  opts: { clip?: string; preprocess?: PreprocessOptions } = {},
): EncodeResult & { hit: boolean; key: string } {
  const key = encodeVideoCacheKey(model, opts.clip ?? video, opts.preprocess);
  const r = cache.getOrCompute(key, () => model.encodeVideo(video, opts.preprocess ?? {}), { teacher: model.config.name, clip: opts.clip ?? null });
  return { ...r, key };
}

/** The key `cachedEncodeVideo` uses: teacher, weights, the official pre-processing's parameters, clip id or content hash. */
export function encodeVideoCacheKey(model: VideoTeacher, clip: string | tf.Tensor, pre: PreprocessOptions = {}): string {
  const prepParams = { kind: 'reduced', factor: pre.factor ?? 3, size: pre.size ?? null, dropFirstFrame: pre.dropFirstFrame ?? true, normalize: pre.normalize ?? true };
  return teacherCacheKey(model, clip, prepParams);
}

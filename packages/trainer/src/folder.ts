/**
 * A dataset folder of videos + captions (OpenVid-style CSV with `video` / `caption` columns, or JSON
 * lines): each clip is decoded with ffmpeg (scaled to cover and centre-cropped to the training size, the
 * first F frames), encoded once — VAE latents (posterior sample × scaling_factor, as the official
 * trainer stores them), T5 embeddings of the caption, teacher features — and cached in
 * `data.cache_dir` (`sample-<i>.safetensors` + `index.json`). Training then reads the cache only.
 * Bad rows (missing / unreadable / too short videos, empty captions) are skipped with a report or stop
 * the preparation (`data.on_bad_video`), always before the first training step.
 */
import fs from 'node:fs';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import * as tf from '@tensorflow/tfjs';
import { Rng, decodeVideo, setInitRng, getInitRng } from '@vrepa/core';
import { CogVideoXPipeline, findFfmpeg } from '@vrepa/cogvideox';
import { FeatureCache, OmniMAE, TEACHER_CONFIGS, VJEPA, VideoMAE, VideoMAEv2, cachedEncodeVideo, type TeacherConfig, type VideoTeacher } from '@vrepa/teachers';
import { parseCsvRecords } from '@vrepa/eval';
import type { TokenGrid } from '@vrepa/align-dims';
import { canonicalJson, type TrainConfig } from './config.js';
import { readSample, writeSample, type Sample, type TrainDataset } from './data.js';
import { ProgressBar } from '@vrepa/core';

export interface DatasetRow {
  video: string;
  caption: string;
}

/** Read the annotations (CSV or .jsonl) of a dataset folder. */
export function readAnnotations(dir: string, file: string, cols: { video: string; caption: string }): DatasetRow[] {
  const full = path.resolve(dir, file);
  if (!fs.existsSync(full)) throw new Error(`dataset: annotations file ${full} does not exist (data.annotations)`);
  const text = fs.readFileSync(full, 'utf8');
  let records: Record<string, unknown>[];
  if (/\.jsonl?$/i.test(full)) {
    records = text
      .split('\n')
      .map((l, i) => [l, i] as const)
      .filter(([l]) => l.trim())
      .map(([l, i]) => {
        try {
          return JSON.parse(l) as Record<string, unknown>;
        } catch (e) {
          throw new Error(`dataset: ${full} line ${i + 1} is not valid JSON (${(e as Error).message})`);
        }
      });
  } else {
    const r = parseCsvRecords(text, full);
    for (const c of [cols.video, cols.caption]) if (!r.columns.includes(c)) throw new Error(`dataset: ${full} has no column '${c}' (columns: ${r.columns.join(', ')})`);
    records = r.records;
  }
  return records.map((r) => ({ video: String(r[cols.video] ?? ''), caption: String(r[cols.caption] ?? '') }));
}

export function parseResolution(s: string): { frames: number; height: number; width: number } {
  const [frames, height, width] = s.split('x').map(Number) as [number, number, number];
  return { frames, height, width };
}

/**
 * Decode the first `frames` frames of a video, scaled to cover height×width and centre-cropped, as
 * `[1, frames, height, width, 3]` in [-1, 1]. Throws a clear error for missing / unreadable / short videos.
 */
export function decodeClip(file: string, size: { frames: number; height: number; width: number }, ffmpeg = findFfmpeg()): tf.Tensor {
  if (!fs.existsSync(file)) throw new Error(`video ${file} does not exist`);
  const { frames: F, height: H, width: W } = size;
  let v: ReturnType<typeof decodeVideo>;
  try {
    v = decodeVideo(file, { ffmpeg, maxFrames: F, cover: { width: W, height: H } });
  } catch (e) {
    throw new Error(`video ${file} cannot be decoded: ${(e as Error).message.replace(/^decodeVideo: '[^']*' cannot be decoded: /, '')}`);
  }
  if (v.count < F) throw new Error(`video ${file} is too short: ${v.count} frames, need ${F}`);
  return tf.tidy(() => tf.sub(tf.div(tf.tensor(v.frames, [1, F, H, W, 3], 'int32').toFloat(), 127.5), 1));
}

/** The encoders that fill the cache: a pipeline folder's VAE and T5, and the teacher. */
export interface Encoders {
  pipeline: CogVideoXPipeline;
  teacher: VideoTeacher | null;
  /** @vrepa/teachers' feature cache (teacher.cache_dir): features shared across runs and configs */
  featureCache: FeatureCache | null;
  dispose(): void;
}

const TEACHER_CLASSES = { videomaev2: VideoMAEv2, videomae: VideoMAE, vjepa: VJEPA, omnimae: OmniMAE } as const;

/** The teacher of a config: any @vrepa/teachers family, from its checkpoint or (tiny runs) seeded random weights. */
export function buildTeacher(c: TrainConfig): VideoTeacher | null {
  if (c.align.proj_coeff === 0) return null;
  const t = c.teacher;
  if (t.source !== 'model') return null;
  const cfg = (t.config as TeacherConfig | undefined) ?? TEACHER_CONFIGS[t.name];
  if (!cfg) throw new Error(`teacher.name: '${t.name}' is not a registered teacher (${Object.keys(TEACHER_CONFIGS).join(', ')}); or give teacher.config`);
  const Cls = TEACHER_CLASSES[cfg.family as keyof typeof TEACHER_CLASSES];
  if (!Cls) throw new Error(`teacher.config.family: '${String(cfg.family)}' is not one of ${Object.keys(TEACHER_CLASSES).join(', ')}`);
  if (t.checkpoint) return Cls.fromCheckpoint(t.checkpoint, { config: cfg } as never) as VideoTeacher;
  const prev = getInitRng();
  setInitRng(Rng.fromSeed(c.model.init_seed, 3));
  try {
    return new Cls(cfg as never) as VideoTeacher;
  } finally {
    setInitRng(prev);
  }
}

export function buildEncoders(c: TrainConfig): Encoders {
  if (!c.model.pipeline) throw new Error("dataset: model.pipeline (a diffusers pipeline folder with vae/, text_encoder/, tokenizer/) is required when data.source is 'folder'");
  const pipeline = CogVideoXPipeline.fromPretrained(c.model.pipeline);
  const teacher = buildTeacher(c);
  return {
    pipeline,
    teacher,
    featureCache: teacher && c.teacher.cache_dir ? new FeatureCache({ dir: c.teacher.cache_dir }) : null,
    dispose() {
      pipeline.dispose();
      teacher?.dispose();
    },
  };
}

export interface CacheIndex {
  format: 'vrepa-train-cache/1';
  /** hash of what the cached tensors depend on (data + encoders config) */
  key: string;
  samples: { row: number; video: string; file: string }[];
  skipped: { row: number; video: string; reason: string }[];
  teacherGrid: TokenGrid | null;
}

/** What the cached tensors depend on: a different key means the cache must be rebuilt. */
export function cacheKeyOf(c: TrainConfig): string {
  const d = c.data;
  return createHash('sha256')
    .update(canonicalJson({ d: [d.dataset_dir, d.annotations, d.video_column, d.caption_column, d.train_resolution, d.text_seq_length, d.data_seed], p: c.model.pipeline, t: c.align.proj_coeff > 0 ? { ...c.teacher, cache_dir: undefined } : null }))
    .digest('hex');
}

export interface PrepareReport {
  written: number;
  cached: number;
  skipped: string[];
  index: CacheIndex;
}

/** Part `index` of `count` (0-based): the rows i with i mod count = index. */
export interface Shard {
  index: number;
  count: number;
}

/** Parse `i/n` (0 ≤ i < n), as `vrepa prepare --shard` takes it. */
export function parseShard(s: string): Shard {
  const m = /^(\d+)\/(\d+)$/.exec(s.trim());
  const index = m ? Number(m[1]) : NaN;
  const count = m ? Number(m[2]) : NaN;
  if (!m || !(count >= 1) || !(index < count)) throw new Error(`--shard must be i/n with 0 ≤ i < n (e.g. 0/4 … 3/4), got '${s}'`);
  return { index, count };
}

const shardIndexName = (s: Shard) => `index.shard-${s.index}-of-${s.count}.json`;

/** Cache indexes of this key written by sharded runs (`index.shard-i-of-n.json`), whatever n. */
function readShardIndexes(dir: string, key: string): CacheIndex[] {
  if (!fs.existsSync(dir)) return [];
  const out: CacheIndex[] = [];
  for (const f of fs.readdirSync(dir).filter((n) => /^index\.shard-\d+-of-\d+\.json$/.test(n)).sort()) {
    try {
      const ix = JSON.parse(fs.readFileSync(path.join(dir, f), 'utf8')) as CacheIndex;
      if (ix.key === key) out.push(ix);
    } catch {
      /* a shard index cut by a kill: its rows are encoded again */
    }
  }
  return out;
}

function writeJsonAtomic(file: string, value: unknown): void {
  const tmp = `${file}.tmp-${process.pid}`;
  fs.writeFileSync(tmp, JSON.stringify(value, null, 2) + '\n');
  fs.renameSync(tmp, file);
}

/**
 * Encode every row not yet in the cache (a cache of another config is rebuilt). Bad rows are skipped
 * with a reason (`on_bad_video: 'skip'`) or stop with an error naming the row (`'error'`).
 *
 * With `shard` only the rows i ≡ shard.index (mod shard.count) are encoded and the shard writes its own
 * `index.shard-i-of-n.json` (so array jobs on a shared folder never write the same file); the next unsharded
 * run (e.g. `vrepa train`) merges every shard's entries into `index.json` without encoding them again.
 */
export function prepareFolder(c: TrainConfig, opts: { progress?: boolean; encoders?: Encoders; log?: (m: string) => void; shard?: Shard } = {}): PrepareReport {
  const dir = c.data.cache_dir;
  if (!dir) throw new Error("dataset: data.cache_dir is required when data.source is 'folder'");
  fs.mkdirSync(dir, { recursive: true });
  const rows = readAnnotations(c.data.dataset_dir!, c.data.annotations, { video: c.data.video_column, caption: c.data.caption_column });
  if (rows.length === 0) throw new Error(`dataset: ${path.resolve(c.data.dataset_dir!, c.data.annotations)} lists no videos`);
  const key = cacheKeyOf(c);
  const indexFile = path.join(dir, 'index.json');
  let index: CacheIndex | null = null;
  if (fs.existsSync(indexFile)) {
    try {
      index = JSON.parse(fs.readFileSync(indexFile, 'utf8')) as CacheIndex;
      if (index.key !== key) index = null;
    } catch {
      index = null;
    }
  }
  const size = parseResolution(c.data.train_resolution);
  const shard = opts.shard;
  const shards = readShardIndexes(dir, key);
  const known = [...(index?.samples ?? []), ...shards.flatMap((x) => x.samples)];
  const done = new Map(known.filter((s) => s.row < rows.length && fs.existsSync(path.join(dir, s.file))).map((s) => [s.row, s]));
  for (const x of shards) {
    const g = x.teacherGrid;
    if (g && index?.teacherGrid && canonicalJson(g) !== canonicalJson(index.teacherGrid)) throw new Error(`dataset: a shard index in ${dir} has teacher grid ${g.frames}×${g.height}×${g.width}, the cache ${index.teacherGrid.frames}×${index.teacherGrid.height}×${index.teacherGrid.width}`);
  }
  const skipped: CacheIndex['skipped'] = [];
  let enc = opts.encoders;
  let owned = false;
  let teacherGrid: TokenGrid | null = index?.teacherGrid ?? shards.find((x) => x.teacherGrid)?.teacherGrid ?? null;
  let written = 0;
  const bar = new ProgressBar(rows.length, 0, opts.progress ?? false);
  try {
    rows.forEach((row, i) => {
      bar.count(i + 1, 'encoding clip');
      if (done.has(i) || (shard && i % shard.count !== shard.index)) return;
      const bad = (reason: string) => {
        if (c.data.on_bad_video === 'error') throw new Error(`dataset row ${i + 1} (${row.video || 'no video'}): ${reason} (data.on_bad_video = 'error'; use 'skip' to leave it out)`);
        skipped.push({ row: i, video: row.video, reason });
      };
      if (!row.video) return bad('no video path');
      if (!row.caption.trim()) return bad('the caption is missing');
      let video: tf.Tensor;
      try {
        video = decodeClip(path.resolve(c.data.dataset_dir!, row.video), size);
      } catch (e) {
        return bad((e as Error).message);
      }
      if (!enc) {
        enc = buildEncoders(c);
        owned = true;
      }
      const sample: Sample = tf.tidy(() => {
        const latents = tf.squeeze(enc!.pipeline.vae.encodeToLatents(video, { rng: Rng.fromSeed(c.data.data_seed, i) }), [0]);
        const text = tf.squeeze(enc!.pipeline.encodePrompt([row.caption], c.data.text_seq_length), [0]);
        let teacher: tf.Tensor | undefined;
        if (enc!.teacher) {
          const r = enc!.featureCache ? cachedEncodeVideo(enc!.featureCache, enc!.teacher, video) : enc!.teacher.encodeVideo(video);
          teacher = tf.squeeze(r.tokens, [0]);
          const g = { frames: r.grid.frames, height: r.grid.height, width: r.grid.width };
          if (teacherGrid && canonicalJson(teacherGrid) !== canonicalJson(g)) throw new Error(`dataset row ${i + 1}: teacher grid ${g.frames}×${g.height}×${g.width} differs from the other clips' ${teacherGrid.frames}×${teacherGrid.height}×${teacherGrid.width}`);
          teacherGrid = g;
        }
        return { latents, text, teacher };
      });
      video.dispose();
      const file = `sample-${i}.safetensors`;
      writeSample(path.join(dir, file), sample);
      tf.dispose([sample.latents, sample.text, ...(sample.teacher ? [sample.teacher] : [])]);
      done.set(i, { row: i, video: row.video, file });
      written++;
    });
  } finally {
    bar.done();
    if (owned) enc?.dispose();
  }
  const mine = (row: number) => !shard || row % shard.count === shard.index;
  const prevSkipped = [...(index?.skipped ?? []), ...shards.flatMap((x) => x.skipped)].filter(
    (s, k, all) => mine(s.row) && !done.has(s.row) && !skipped.some((x) => x.row === s.row) && all.findIndex((y) => y.row === s.row) === k,
  );
  const out: CacheIndex = {
    format: 'vrepa-train-cache/1',
    key,
    samples: [...done.values()].filter((s) => mine(s.row)).sort((a, b) => a.row - b.row),
    skipped: [...prevSkipped, ...skipped].sort((a, b) => a.row - b.row),
    teacherGrid,
  };
  if (shard) {
    writeJsonAtomic(path.join(dir, shardIndexName(shard)), out);
    for (const s of skipped) opts.log?.(`skipped row ${s.row + 1} (${s.video}): ${s.reason}`);
    return { written, cached: out.samples.length - written, skipped: out.skipped.map((s) => `row ${s.row + 1} (${s.video}): ${s.reason}`), index: out };
  }
  if (out.samples.length === 0) throw new Error(`dataset: no usable video in ${c.data.dataset_dir} (${out.skipped.length} skipped: ${out.skipped.slice(0, 3).map((s) => s.reason).join('; ')})`);
  writeJsonAtomic(indexFile, out);
  for (const s of skipped) opts.log?.(`skipped row ${s.row + 1} (${s.video}): ${s.reason}`);
  return { written, cached: out.samples.length - written, skipped: out.skipped.map((s) => `row ${s.row + 1} (${s.video}): ${s.reason}`), index: out };
}

/** The prepared cache of a dataset folder as a training dataset (reads only the cache). */
export interface CacheVerifyReport {
  /** rows of the annotations file */
  rows: number;
  /** rows with a readable cache entry */
  ok: number;
  /** rows left out on purpose (bad video, no caption), with the reason */
  skipped: string[];
  /** rows neither cached nor skipped: run `vrepa prepare` (or the missing shard) again */
  missing: number[];
  /** cache entries that cannot be read or disagree with the others (delete them and prepare again) */
  corrupt: Array<{ row: number; file: string; reason: string }>;
}

/**
 * Check a folder cache against its annotations: every row must be cached (a readable entry with latents, text and,
 * with alignment, teacher tokens of the same shapes as the other entries) or skipped with a reason. Reads index.json
 * and every shard index; writes nothing.
 */
export function verifyFolderCache(c: TrainConfig): CacheVerifyReport {
  const dir = c.data.cache_dir;
  if (!dir) throw new Error("verify: data.cache_dir is required when data.source is 'folder'");
  const rows = readAnnotations(c.data.dataset_dir!, c.data.annotations, { video: c.data.video_column, caption: c.data.caption_column });
  const key = cacheKeyOf(c);
  const indexes = readShardIndexes(dir, key);
  try {
    const ix = JSON.parse(fs.readFileSync(path.join(dir, 'index.json'), 'utf8')) as CacheIndex;
    if (ix.key === key) indexes.unshift(ix);
  } catch {
    /* no merged index yet */
  }
  const entries = new Map<number, string>();
  const skipped = new Map<number, string>();
  for (const ix of indexes) {
    for (const s of ix.samples) entries.set(s.row, s.file);
    for (const s of ix.skipped) if (!entries.has(s.row)) skipped.set(s.row, `row ${s.row + 1} (${s.video}): ${s.reason}`);
  }
  const withTeacher = c.align.proj_coeff > 0;
  const corrupt: CacheVerifyReport['corrupt'] = [];
  const missing: number[] = [];
  let shapes: string | undefined;
  let ok = 0;
  for (let row = 0; row < rows.length; row++) {
    const file = entries.get(row);
    if (!file) {
      if (!skipped.has(row)) missing.push(row);
      continue;
    }
    const p = path.join(dir, file);
    if (!fs.existsSync(p)) {
      missing.push(row);
      continue;
    }
    let s: Sample | undefined;
    try {
      s = readSample(p);
      if (withTeacher && !s.teacher) throw new Error('no teacher tokens (alignment is on)');
      const all = [s.latents, s.text, ...(s.teacher ? [s.teacher] : [])];
      if (all.some((t) => t.dataSync().some((v) => !Number.isFinite(v)))) throw new Error('non-finite values');
      const sh = JSON.stringify(all.map((t) => t.shape));
      shapes ??= sh;
      if (sh !== shapes) throw new Error(`shapes ${sh} differ from the other entries' ${shapes}`);
      ok++;
    } catch (e) {
      corrupt.push({ row, file, reason: (e as Error).message.split('\n')[0]! });
    } finally {
      if (s) tf.dispose([s.latents, s.text, ...(s.teacher ? [s.teacher] : [])]);
    }
  }
  return { rows: rows.length, ok, skipped: [...skipped.values()], missing, corrupt };
}

export class CachedFolderDataset implements TrainDataset {
  readonly length: number;
  readonly teacherGrid?: TokenGrid;
  constructor(
    private readonly dir: string,
    private readonly index: CacheIndex,
  ) {
    this.length = index.samples.length;
    this.teacherGrid = index.teacherGrid ?? undefined;
  }
  get(i: number): Sample {
    const s = this.index.samples[i];
    if (!s) throw new Error(`dataset: sample ${i} is outside [0, ${this.length})`);
    return readSample(path.join(this.dir, s.file));
  }
  describe(): string {
    return `dataset folder: ${this.length} clips cached in ${this.dir}${this.index.skipped.length ? `, ${this.index.skipped.length} skipped (see index.json)` : ''}`;
  }
}

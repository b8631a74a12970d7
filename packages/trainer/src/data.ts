/**
 * Training data: a dataset gives, per sample index, the VAE latents `[F, h, w, C]` (channels-last,
 * already × scaling_factor), the prompt's text embeddings `[L, text_embed_dim]` and the teacher tokens
 * `[N_t, D]` on `teacherGrid`. The data order is a seeded permutation per epoch, so a position
 * (epoch, index) is all a checkpoint needs to continue the exact order.
 */
import fs from 'node:fs';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { Rng, SafetensorsFile, writeSafetensors } from '@vrepa/core';
import type { TokenGrid } from '@vrepa/align-dims';
import type { TrainConfig } from './config.js';

export interface Sample {
  /** `[F, h, w, C]` */
  latents: tf.Tensor;
  /** `[L, text_embed_dim]` */
  text: tf.Tensor;
  /** `[N_t, D]` on the dataset's teacherGrid (absent: no alignment term) */
  teacher?: tf.Tensor;
}

export interface TrainDataset {
  readonly length: number;
  readonly teacherGrid?: TokenGrid;
  /** The sample (the caller owns and disposes the tensors). */
  get(index: number): Sample;
  /** Human-readable description (printed at start). */
  describe(): string;
}

/**
 * Seeded random latents / text embeddings / teacher tokens: the tiny presets' data source (stands in
 * for VAE latents, T5 embeddings and teacher features; no video is decoded). Sample i depends only on
 * (data_seed, i).
 */
export class SyntheticDataset implements TrainDataset {
  readonly length: number;
  readonly teacherGrid?: TokenGrid;

  constructor(
    private readonly latentShape: number[],
    private readonly textShape: [number, number],
    private readonly teacher: { grid: TokenGrid; dim: number } | undefined,
    private readonly seed: number,
    length: number,
  ) {
    this.length = length;
    this.teacherGrid = teacher?.grid;
  }

  static fromConfig(c: TrainConfig, textEmbedDim: number): SyntheticDataset {
    const t = c.teacher.grid && c.teacher.dim ? { grid: c.teacher.grid, dim: c.teacher.dim } : undefined;
    return new SyntheticDataset(c.data.latent_shape!, [c.data.text_seq_length, textEmbedDim], c.align.proj_coeff > 0 ? t : undefined, c.data.data_seed, c.data.num_samples);
  }

  get(index: number): Sample {
    if (!Number.isInteger(index) || index < 0 || index >= this.length) throw new Error(`SyntheticDataset: sample index ${index} is outside [0, ${this.length})`);
    const rng = Rng.fromSeed(this.seed, index);
    const latents = rng.randomTensor(this.latentShape, 'normal');
    const text = rng.randomTensor(this.textShape, 'normal');
    let teacher: tf.Tensor | undefined;
    if (this.teacher) {
      const { grid, dim } = this.teacher;
      teacher = rng.randomTensor([grid.frames * grid.height * grid.width, dim], 'normal');
    }
    return { latents, text, teacher };
  }

  describe(): string {
    return `synthetic data: ${this.length} samples, latents [${this.latentShape}], text [${this.textShape}]${this.teacher ? `, teacher ${this.teacher.grid.frames}×${this.teacher.grid.height}×${this.teacher.grid.width}×${this.teacher.dim}` : ''} (seeded random: no VAE, T5 or teacher model)`;
  }
}

export interface CacheStats {
  hits: number;
  misses: number;
  /** milliseconds spent producing missed samples */
  missMs: number;
}

/**
 * A cache in front of a dataset: an in-memory map and, with `dir`, one safetensors file per sample
 * (`sample-<i>.safetensors` holding latents / text / teacher), so a second epoch (or a second run)
 * never re-encodes. Hits and misses are counted.
 */
export class CachedDataset implements TrainDataset {
  readonly stats: CacheStats = { hits: 0, misses: 0, missMs: 0 };
  private readonly mem = new Map<number, Sample>();

  constructor(
    readonly inner: TrainDataset,
    private readonly opts: { dir?: string; memory?: boolean; key?: string } = {},
  ) {
    if (opts.dir) fs.mkdirSync(opts.dir, { recursive: true });
  }

  get length(): number {
    return this.inner.length;
  }
  get teacherGrid(): TokenGrid | undefined {
    return this.inner.teacherGrid;
  }

  private file(i: number): string | undefined {
    return this.opts.dir ? path.join(this.opts.dir, `${this.opts.key ? `${this.opts.key}-` : ''}sample-${i}.safetensors`) : undefined;
  }

  get(index: number): Sample {
    const m = this.mem.get(index);
    if (m) {
      this.stats.hits++;
      return cloneSample(m);
    }
    const f = this.file(index);
    if (f && fs.existsSync(f)) {
      try {
        const s = readSample(f);
        this.stats.hits++;
        if (this.opts.memory ?? true) this.mem.set(index, cloneSample(s));
        return s;
      } catch {
        // unreadable cache entry: recompute below and overwrite it
      }
    }
    const t0 = performance.now();
    const s = this.inner.get(index);
    this.stats.missMs += performance.now() - t0;
    this.stats.misses++;
    if (f) writeSample(f, s);
    if (this.opts.memory ?? true) this.mem.set(index, cloneSample(s));
    return s;
  }

  describe(): string {
    return `${this.inner.describe()}; cached${this.opts.dir ? ` in ${this.opts.dir}` : ' in memory'}`;
  }

  dispose(): void {
    for (const s of this.mem.values()) disposeSample(s);
    this.mem.clear();
  }
}

export function cloneSample(s: Sample): Sample {
  return { latents: tf.clone(s.latents), text: tf.clone(s.text), teacher: s.teacher ? tf.clone(s.teacher) : undefined };
}

export function disposeSample(s: Sample): void {
  tf.dispose([s.latents, s.text, ...(s.teacher ? [s.teacher] : [])]);
}

export function writeSample(file: string, s: Sample): void {
  const t: Record<string, tf.Tensor> = { latents: s.latents, text: s.text };
  if (s.teacher) t.teacher = s.teacher;
  writeSafetensors(file, t, { metadata: { format: 'vrepa-train-sample/1' } });
}

export function readSample(file: string): Sample {
  const f = SafetensorsFile.open(file);
  try {
    return { latents: f.tensor('latents'), text: f.tensor('text'), teacher: f.has('teacher') ? f.tensor('teacher') : undefined };
  } finally {
    f.close();
  }
}

/** The sample order of epoch `e`: a seeded permutation of [0, n). */
export function epochOrder(seed: number, epoch: number, n: number): Int32Array {
  return Rng.fromSeed(seed, 1_000_003 + epoch).permutation(n);
}

/** A cursor over the infinite epoch-by-epoch sample stream; (epoch, position) is its whole state. */
export class DataCursor {
  private order: Int32Array;
  constructor(
    private readonly seed: number,
    private readonly n: number,
    public epoch = 0,
    public position = 0,
  ) {
    if (n < 1) throw new Error('DataCursor: the dataset is empty');
    this.order = epochOrder(seed, epoch, n);
  }
  /** Jump to a saved position. */
  seek(epoch: number, position: number): void {
    if (!Number.isInteger(epoch) || epoch < 0 || !Number.isInteger(position) || position < 0 || position > this.n) throw new Error(`DataCursor: position (epoch ${epoch}, index ${position}) is invalid for ${this.n} samples`);
    this.epoch = epoch;
    this.position = position;
    this.order = epochOrder(this.seed, epoch, this.n);
  }
  next(): number {
    if (this.position >= this.n) {
      this.epoch += 1;
      this.position = 0;
      this.order = epochOrder(this.seed, this.epoch, this.n);
    }
    return this.order[this.position++]!;
  }
  take(k: number): number[] {
    return Array.from({ length: k }, () => this.next());
  }
}

/** Stack samples into a batch: latents `[B, F, h, w, C]`, text `[B, L, D]`, teacher `[B, N_t, D]`. */
export function collate(samples: Sample[]): { latents: tf.Tensor; text: tf.Tensor; teacher?: tf.Tensor } {
  const hasTeacher = samples.every((s) => s.teacher);
  return {
    latents: tf.stack(samples.map((s) => s.latents)),
    text: tf.stack(samples.map((s) => s.text)),
    teacher: hasTeacher ? tf.stack(samples.map((s) => s.teacher!)) : undefined,
  };
}

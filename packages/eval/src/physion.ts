/**
 * The Physion OCP feature protocol (VideoREPA App. B): from a model's tokens at the probed depth, take three
 * temporal slices evenly spaced over the token frames and all their spatial tokens, flattened into one feature
 * vector per clip (or mean-pooled variants), and a driver that runs an extractor over many videos.
 */
import * as tf from '@tensorflow/tfjs';
import type { FeatureMatrix } from './probe.js';

/** A token grid: tokens are frame-major (frame, row, col). */
export interface TokenGridLike {
  frames: number;
  height: number;
  width: number;
}

/** Tokens `[batch, frames*height*width, dim]` with their grid. */
export interface TokensWithGrid {
  tokens: tf.Tensor;
  grid: TokenGridLike;
}

/**
 * Pooling: `none` = all spatial tokens of each slice, `[B, slices·h·w·D]`; `spatial` = mean over each slice's
 * tokens, `[B, slices·D]`; `all` = mean over the slices and their tokens, `[B, D]`.
 */
export type PhysionPooling = 'none' | 'spatial' | 'all';

export interface PhysionOptions {
  /** Number of temporal slices (default 3). */
  slices?: number;
  pool?: PhysionPooling;
}

/** `count` frame indices evenly spaced over [0, frames − 1], rounded (3 of 13 → 0, 6, 12); one slice → the middle. */
export function evenlySpacedIndices(frames: number, count: number): number[] {
  if (!(Number.isInteger(frames) && frames >= 1)) throw new RangeError(`evenlySpacedIndices: frames must be a positive integer, got ${frames}.`);
  if (!(Number.isInteger(count) && count >= 1 && count <= frames))
    throw new RangeError(`evenlySpacedIndices: count must be an integer in [1, ${frames}] (the frames), got ${count}.`);
  if (count === 1) return [Math.floor((frames - 1) / 2)];
  return Array.from({ length: count }, (_, i) => Math.round((i * (frames - 1)) / (count - 1)));
}

/** Feature length per clip for a grid, dim and options. */
export function physionFeatureDim(grid: TokenGridLike, dim: number, opts: PhysionOptions = {}): number {
  const s = opts.slices ?? 3;
  const pool = opts.pool ?? 'none';
  return pool === 'none' ? s * grid.height * grid.width * dim : pool === 'spatial' ? s * dim : dim;
}

/** Physion-protocol features `[B, F']` from tokens `[B, frames·h·w, D]` (see PhysionPooling). */
export function physionFeatures(x: TokensWithGrid, opts: PhysionOptions = {}): tf.Tensor2D {
  const { tokens, grid } = x;
  const pool = opts.pool ?? 'none';
  if (!['none', 'spatial', 'all'].includes(pool)) throw new RangeError(`physionFeatures: pool must be none, spatial or all, got '${pool}'.`);
  if (tokens.rank !== 3) throw new RangeError(`physionFeatures: tokens must be [batch, frames*height*width, dim], got shape [${tokens.shape.join(', ')}].`);
  const [b, n, d] = tokens.shape as [number, number, number];
  const p = grid.height * grid.width;
  if (n !== grid.frames * p)
    throw new RangeError(
      `physionFeatures: grid ${grid.frames}×${grid.height}×${grid.width} (${grid.frames * p} tokens) does not match the ${n} tokens of shape [${tokens.shape.join(', ')}].`,
    );
  const idx = evenlySpacedIndices(grid.frames, opts.slices ?? 3);
  return tf.tidy(() => {
    const t = tokens.reshape([b, grid.frames, p, d]);
    const picked = tf.gather(t, tf.tensor1d(idx, 'int32'), 1); // [B, S, P, D]
    if (pool === 'none') return picked.reshape([b, idx.length * p * d]) as tf.Tensor2D;
    if (pool === 'spatial') return picked.mean(2).reshape([b, idx.length * d]) as tf.Tensor2D;
    return picked.mean([1, 2]) as tf.Tensor2D;
  });
}

export type FeatureExtractor<V> = (video: V, index: number) => TokensWithGrid | tf.Tensor | Promise<TokensWithGrid | tf.Tensor>;

export interface ExtractOptions extends PhysionOptions {
  /** Total number of videos, for the progress bar when `videos` has no length. */
  total?: number;
  /** Progress bar on stderr (default: when stderr is a TTY), or a callback. */
  progress?: boolean | ((done: number, total: number | undefined) => void);
}

/**
 * Run `extractor` over `videos` and stack the per-clip features into `[N, F']`. The extractor returns either
 * `{tokens [B, N, D], grid}` (the Physion protocol is applied) or features `[B, F']` / `[F']` directly; the
 * tensors it returns are disposed here. Prints a progress bar with rate and ETA.
 */
export async function extractFeatures<V>(videos: Iterable<V> | AsyncIterable<V>, extractor: FeatureExtractor<V>, opts: ExtractOptions = {}): Promise<FeatureMatrix> {
  const total = opts.total ?? (Array.isArray(videos) ? videos.length : undefined);
  const bar =
    typeof opts.progress === 'function'
      ? opts.progress
      : (opts.progress ?? (typeof process !== 'undefined' && process.stderr?.isTTY)) // no terminal in a browser
        ? progressBar('features', process.stderr)
        : undefined;
  const rows: Float32Array[] = [];
  let d = -1;
  let i = 0;
  for await (const v of videos as AsyncIterable<V>) {
    const out = await extractor(v, i);
    let feats: tf.Tensor2D | undefined;
    try {
      if (out instanceof tf.Tensor) feats = tf.tidy(() => (out.rank === 1 ? out.reshape([1, -1]) : out.reshape([out.shape[0]!, -1])) as tf.Tensor2D);
      else feats = physionFeatures(out, opts);
      const [b, f] = feats.shape;
      if (d >= 0 && f !== d) throw new RangeError(`extractFeatures: video ${i} gave ${f} features per clip, earlier videos gave ${d}.`);
      d = f;
      const data = (await feats.data()) as Float32Array;
      for (let r = 0; r < b; r++) rows.push(data.slice(r * f, (r + 1) * f));
    } finally {
      feats?.dispose();
      if (out instanceof tf.Tensor) out.dispose();
      else out.tokens.dispose();
    }
    i++;
    bar?.(i, total);
  }
  if (rows.length === 0) throw new RangeError('extractFeatures: no videos were given.');
  const data = new Float32Array(rows.length * d);
  rows.forEach((r, k) => data.set(r, k * d));
  return { data, n: rows.length, d };
}

/** A text progress bar writer `(done, total) => void` that redraws one line (`\r`), with rate and ETA. */
export function progressBar(label: string, stream: NodeJS.WritableStream = process.stderr, width = 28): (done: number, total: number | undefined) => void {
  const t0 = performance.now();
  return (done, total) => {
    const secs = (performance.now() - t0) / 1000;
    const rate = done / Math.max(secs, 1e-9);
    let line: string;
    if (total) {
      const frac = Math.min(1, done / total);
      const full = Math.round(frac * width);
      const eta = (total - done) / Math.max(rate, 1e-9);
      line = `${label} [${'#'.repeat(full)}${'.'.repeat(width - full)}] ${done}/${total} ${rate.toFixed(2)}/s ETA ${eta.toFixed(0)}s`;
    } else line = `${label} ${done} done ${rate.toFixed(2)}/s`;
    stream.write(`\r${line}${total && done >= total ? '\n' : ''}`);
  };
}

/**
 * What the viewer computes, apart from the page: teacher and student tokens of a clip, the TRD of every
 * form (chunked, computed once per clip), and one row of each relation matrix per clicked token
 * (O(N·D), never the N×N matrix), split into the spatial map (same frame) and the temporal maps.
 */
import * as tf from '@tensorflow/tfjs';
import { Rng, SafetensorsBytes, setInitRng } from '@vrepa/core';
import { TRD_FORMS, relationRows, trdLoss, type TokenGrid, type TrdForm } from '@vrepa/relations';
import { VideoMAEv2, teacherConfig, type TeacherConfig } from '@vrepa/teachers';

/**
 * The default teacher: a tiny VideoMAEv2 (ViT, patch 16, tubelet 2, 2 blocks of width 64) with random
 * weights drawn from core's seeded generator, so Node and every browser build the same model.
 */
export const TINY_TEACHER: TeacherConfig = Object.freeze({
  ...teacherConfig('videomaev2-s', 'videomaev2'),
  name: 'videomaev2-tiny',
  official: 'tiny random VideoMAEv2 (viewer default)',
  embedDim: 64,
  depth: 2,
  numHeads: 4,
});

/** A tiny random teacher, its weights drawn from `Rng.fromSeed(seed)`. */
export function tinyTeacher(seed: number): VideoMAEv2 {
  setInitRng(Rng.fromSeed(seed));
  return new VideoMAEv2(TINY_TEACHER);
}

/**
 * A teacher from the bytes of a safetensors state dict (official key names, `module.`/`encoder.` prefixes
 * allowed): its config inferred from the shapes when it is a registered one, else the tiny config.
 */
export function teacherFromBytes(bytes: Uint8Array, name: string): VideoMAEv2 {
  try {
    return VideoMAEv2.fromCheckpoint(bytes, { name });
  } catch (first) {
    try {
      return VideoMAEv2.fromCheckpoint(bytes, { name, config: TINY_TEACHER });
    } catch {
      throw first;
    }
  }
}

/**
 * The official teacher pre-processing at the viewer's scale: frame 0 dropped, ImageNet-normalised, no
 * spatial reduction (the clips here are already small). `video` is `[1, F, H, W, 3]` in [−1, 1].
 */
export const PREPROCESS = { factor: 1, dropFirstFrame: true, normalize: true } as const;

/** Teacher tokens `[1, N, D]` of a clip and their grid (frame-major). */
export function encodeClip(teacher: VideoMAEv2, video: tf.Tensor5D): { tokens: tf.Tensor3D; grid: TokenGrid } {
  const r = teacher.encodeVideo(video, PREPROCESS);
  return { tokens: r.tokens as tf.Tensor3D, grid: { frames: r.grid.frames, height: r.grid.height, width: r.grid.width } };
}

/**
 * Student features from the bytes of a safetensors file: the tensor `tokens` (or the file's only tensor),
 * `[1, N, D]` or `[N, D]`, on the teacher's grid.
 */
export function studentFromBytes(bytes: Uint8Array, name: string, grid: TokenGrid): tf.Tensor3D {
  const f = SafetensorsBytes.from(bytes, name);
  const keys = f.keys();
  const key = f.has('tokens') ? 'tokens' : keys.length === 1 ? keys[0]! : undefined;
  if (key === undefined) throw new Error(`${name}: no tensor 'tokens' and ${keys.length} tensors (${keys.slice(0, 6).join(', ')}); save the student's features as 'tokens' [1, N, D]`);
  const shape = f.info(key).shape;
  const N = grid.frames * grid.height * grid.width;
  const ok = (shape.length === 3 && shape[0] === 1 && shape[1] === N) || (shape.length === 2 && shape[0] === N);
  if (!ok) throw new Error(`${name}: '${key}' has shape [${shape.join(', ')}], expected [1, ${N}, D] for the teacher grid ${grid.frames}×${grid.height}×${grid.width}`);
  const t = f.tensor(key);
  return tf.tidy(() => tf.reshape(t.toFloat(), [1, N, shape[shape.length - 1]!]) as tf.Tensor3D);
}

export type TrdValues = Record<TrdForm, number>;

/** TRD of every form (official, paper, spatial, temporal) for the clip, chunked (memory O(chunk·N)). */
export async function trdAllForms(student: tf.Tensor3D, teacher: tf.Tensor3D, grid: TokenGrid, margin: number): Promise<TrdValues> {
  const out = {} as TrdValues;
  for (const form of TRD_FORMS) {
    if (form === 'temporal' && grid.frames < 2) continue;
    const loss = trdLoss(student, teacher, { grid, margin, form });
    out[form] = (await loss.data())[0]!;
    loss.dispose();
    await tf.nextFrame(); // keep the page responsive between forms
  }
  return out;
}

/** One token's relations: `[F, h·w]` maps for teacher and student, and the hinge mask |S_s − S_t| > m. */
export interface TokenRelations {
  token: number;
  frame: number;
  teacher: Float32Array;
  student: Float32Array;
  mask: Uint8Array;
  /** share of this row's entries over the margin, in the token's frame and in the other frames */
  overSpatial: number;
  overTemporal: number;
  ms: number;
}

/** Row `token` of S_t and S_s (one matmul each, O(N·D)), and the hinge mask. */
export async function tokenRelations(student: tf.Tensor3D, teacher: tf.Tensor3D, grid: TokenGrid, token: number, margin: number): Promise<TokenRelations> {
  const t0 = performance.now();
  const [rt, rs] = [relationRows(teacher, [token]), relationRows(student, [token])];
  const [t, s] = (await Promise.all([rt.data(), rs.data()])) as [Float32Array, Float32Array];
  tf.dispose([rt, rs]);
  const P = grid.height * grid.width;
  const frame = Math.floor(token / P);
  const mask = new Uint8Array(t.length);
  let spatial = 0;
  let temporal = 0;
  for (let j = 0; j < t.length; j++) {
    const over = Math.abs(s[j]! - t[j]!) > margin ? 1 : 0;
    mask[j] = over;
    if (Math.floor(j / P) === frame) spatial += over;
    else temporal += over;
  }
  const others = t.length - P;
  return { token, frame, teacher: t, student: s, mask, overSpatial: spatial / P, overTemporal: others ? temporal / others : 0, ms: performance.now() - t0 };
}

/**
 * The most distinctive token of frame `frame`: the one whose teacher relations to all tokens have the lowest
 * mean (background tokens resemble each other; objects stand out). One `[P, N]` block of rows, not N×N.
 */
export async function distinctiveToken(teacher: tf.Tensor3D, grid: TokenGrid, frame: number): Promise<number> {
  const P = grid.height * grid.width;
  const rows = Array.from({ length: P }, (_, i) => frame * P + i);
  const means = tf.tidy(() => tf.mean(relationRows(teacher, rows), -1));
  const m = (await means.data()) as Float32Array;
  means.dispose();
  let best = 0;
  for (let i = 1; i < P; i++) if (m[i]! < m[best]!) best = i;
  return frame * P + best;
}

/** `[F, H, W, 3]` bytes (0..255) → `[1, F, H, W, 3]` in [−1, 1] (x / 127.5 − 1, as the Node side does). */
export function videoFromBytes(rgb: Uint8Array, frames: number, height: number, width: number): tf.Tensor5D {
  return tf.tidy(() => tf.sub(tf.div(tf.tensor(Float32Array.from(rgb), [1, frames, height, width, 3], 'float32'), 127.5), 1) as tf.Tensor5D);
}

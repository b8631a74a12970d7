/**
 * Position tables of the teachers and their interpolation to an input's token grid, exactly as the
 * official code does it.
 *
 * - VideoMAE / VideoMAEv2: fixed sinusoid table for the pre-training grid (T0 × h0 × w0), interpolated
 *   by `interpolate_pos_embed`: bicubic (align_corners=False) in space per temporal slot to the target
 *   grid, then trilinear (size=) in time. The official trainer targets (160, 240) and ×3 in time; here
 *   the target is the grid of the video actually encoded (the same thing at the official input).
 * - V-JEPA: a frozen 3D sincos table (a state-dict entry), interpolated by `interpolate_pos_encoding`:
 *   trilinear with `scale_factor = (T/N_t, H/N_h, W/N_w)` (non-integer scales), unless the input has the
 *   pre-training size exactly.
 */
import * as tf from '@tensorflow/tfjs';
import { sincos1dHost, sinusoidTable } from '@vrepa/core';
import { interpolate } from '@vrepa/align-dims';
import type { TeacherGrid } from './vit.js';

const sameGrid = (a: TeacherGrid, b: TeacherGrid) => a.frames === b.frames && a.height === b.height && a.width === b.width;
const fmt = (g: TeacherGrid) => `${g.frames}×${g.height}×${g.width}`;

function checkTable(table: tf.Tensor, from: TeacherGrid, what: string): number {
  const n = from.frames * from.height * from.width;
  const t = table.rank === 3 ? table.shape.slice(1) : table.shape;
  if ((table.rank !== 2 && table.rank !== 3) || (table.rank === 3 && table.shape[0] !== 1) || t[0] !== n)
    throw new Error(`${what}: table must be [${n}, dim] or [1, ${n}, dim] for grid ${fmt(from)}, got [${table.shape.join(', ')}]`);
  return t[1]!;
}

/** VideoMAE `get_sinusoid_encoding_table(T0·h0·w0, dim)` → `[T0·h0·w0, dim]`. */
export function videoMaeSinusoidTable(grid: TeacherGrid, dim: number): tf.Tensor2D {
  return sinusoidTable(grid.frames * grid.height * grid.width, dim);
}

/**
 * VideoMAE(v2) `interpolate_pos_embed`: `[N0, D]` on `from` → `[to.frames·to.height·to.width, D]`.
 * Bicubic over (h, w) for each of the `from.frames` slots, then trilinear over time (space unchanged, so
 * only the time axis moves). Same grid → a copy of the table (the official code skips interpolation).
 */
export function interpolateSinusoidPosEmbed(table: tf.Tensor, from: TeacherGrid, to: TeacherGrid): tf.Tensor2D {
  const d = checkTable(table, from, 'interpolateSinusoidPosEmbed');
  return tf.tidy(() => {
    const flat = tf.reshape(table, [from.frames * from.height * from.width, d]);
    if (sameGrid(from, to)) return tf.clone(flat) as tf.Tensor2D;
    let x: tf.Tensor = tf.reshape(flat, [from.frames, from.height, from.width, d]);
    if (from.height !== to.height || from.width !== to.width) x = interpolate(x, { size: [to.height, to.width], mode: 'bicubic', alignCorners: false });
    x = tf.reshape(x, [1, from.frames, to.height, to.width, d]);
    if (from.frames !== to.frames) x = interpolate(x, { size: [to.frames, to.height, to.width], mode: 'trilinear', alignCorners: false });
    return tf.reshape(x, [to.frames * to.height * to.width, d]) as tf.Tensor2D;
  });
}

/**
 * V-JEPA `get_3d_sincos_pos_embed(dim, grid_size, grid_depth, uniform_power)` → `[T·S·S, dim]`: rows
 * (d, h, w), columns [depth | height | width] sincos parts (each [sin | cos]); with uniform_power each
 * part has ceil(dim/6)·2 columns and the concatenation is cut to dim, else dim/2 (depth), dim/4, dim/4.
 */
export function vjepaSincosTable(dim: number, grid: TeacherGrid, uniformPower: boolean): tf.Tensor2D {
  const { frames: T, height: H, width: W } = grid;
  let dd: number, dh: number, dw: number;
  if (uniformPower) dd = dh = dw = Math.ceil(dim / 6) * 2;
  else {
    dh = dw = Math.floor(dim / 4);
    dd = Math.floor(dim / 2);
  }
  const ed = sincos1dHost(dd, Float64Array.from({ length: T }, (_, i) => i));
  const eh = sincos1dHost(dh, Float64Array.from({ length: H }, (_, i) => i));
  const ew = sincos1dHost(dw, Float64Array.from({ length: W }, (_, i) => i));
  const out = new Float32Array(T * H * W * dim);
  const row = new Float64Array(dd + dh + dw);
  for (let t = 0; t < T; t++)
    for (let h = 0; h < H; h++)
      for (let w = 0; w < W; w++) {
        row.set(ed.subarray(t * dd, (t + 1) * dd), 0);
        row.set(eh.subarray(h * dh, (h + 1) * dh), dd);
        row.set(ew.subarray(w * dw, (w + 1) * dw), dd + dh);
        const o = ((t * H + h) * W + w) * dim;
        for (let j = 0; j < dim; j++) out[o + j] = row[j]!;
      }
  return tf.tensor2d(out, [T * H * W, dim]);
}

/**
 * V-JEPA `interpolate_pos_encoding`: trilinear with scale_factor (T/N_t, H/N_h, W/N_w) of a `[N0, D]`
 * table on `from` to the grid `to` (PyTorch's output size floor(N·scale) must equal `to`, which holds
 * for integer grids). `to === from` → a copy.
 */
export function interpolateVjepaPosEmbed(table: tf.Tensor, from: TeacherGrid, to: TeacherGrid): tf.Tensor2D {
  const d = checkTable(table, from, 'interpolateVjepaPosEmbed');
  return tf.tidy(() => {
    const flat = tf.reshape(table, [from.frames * from.height * from.width, d]);
    if (sameGrid(from, to)) return tf.clone(flat) as tf.Tensor2D;
    const scaleFactor = [to.frames / from.frames, to.height / from.height, to.width / from.width];
    const out = [from.frames, from.height, from.width].map((n, i) => Math.floor(n * scaleFactor[i]!));
    if (out[0] !== to.frames || out[1] !== to.height || out[2] !== to.width)
      throw new Error(`interpolateVjepaPosEmbed: scale factors ${scaleFactor.join(', ')} map ${fmt(from)} to ${out.join('×')}, not the input grid ${fmt(to)}`);
    const x = interpolate(tf.reshape(flat, [1, from.frames, from.height, from.width, d]), { scaleFactor, mode: 'trilinear', alignCorners: false });
    return tf.reshape(x, [to.frames * to.height * to.width, d]) as tf.Tensor2D;
  });
}

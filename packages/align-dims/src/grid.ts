/**
 * Token grids: a token sequence `[batch, frames*height*width, dim]` (frame-major: frame, row, col) always
 * travels with the grid it lives on. Helpers convert between the sequence and the 5-D grid layout
 * `[batch, frames, height, width, dim]` (a pure reshape, no copy of the data order).
 */
import * as tf from '@tensorflow/tfjs';

/** A token grid: `frames × height × width` tokens, frame-major. */
export interface TokenGrid {
  frames: number;
  height: number;
  width: number;
}

/** Number of tokens on a grid. */
export function gridSize(grid: TokenGrid): number {
  return grid.frames * grid.height * grid.width;
}

/** `24×10×15` */
export function formatGrid(grid: TokenGrid): string {
  return `${grid.frames}×${grid.height}×${grid.width}`;
}

/** Throw unless every dimension of `grid` is a positive integer. `what` names the argument. */
export function assertGrid(grid: TokenGrid, what = 'grid'): void {
  if (!grid || typeof grid !== 'object') throw new Error(`${what}: expected {frames, height, width}, got ${String(grid)}`);
  for (const k of ['frames', 'height', 'width'] as const) {
    const v = grid[k];
    if (!Number.isInteger(v) || v < 1) throw new Error(`${what}.${k}: expected a positive integer, got ${String(v)}`);
  }
}

/** Throw unless `tokens` is `[B, N, D]` with N = frames·height·width of `grid`. */
export function assertTokensOnGrid(tokens: tf.Tensor, grid: TokenGrid, what = 'tokens'): void {
  assertGrid(grid, `${what} grid`);
  if (tokens.rank !== 3) throw new Error(`${what}: expected rank 3 [batch, tokens, dim], got shape [${tokens.shape.join(', ')}]`);
  const n = gridSize(grid);
  if (tokens.shape[1] !== n) {
    throw new Error(`${what}: grid ${formatGrid(grid)} (${n} tokens) does not match the ${tokens.shape[1]} tokens of shape [${tokens.shape.join(', ')}]`);
  }
}

/** `[B, F·H·W, D]` → `[B, F, H, W, D]` (frame-major token order). */
export function tokensToGrid(tokens: tf.Tensor, grid: TokenGrid, what = 'tokens'): tf.Tensor5D {
  assertTokensOnGrid(tokens, grid, what);
  const [b, , d] = tokens.shape as [number, number, number];
  return tf.reshape(tokens, [b, grid.frames, grid.height, grid.width, d]);
}

/** `[B, F, H, W, D]` → `{ tokens: [B, F·H·W, D], grid }`. */
export function gridToTokens(x: tf.Tensor, what = 'grid tensor'): { tokens: tf.Tensor3D; grid: TokenGrid } {
  if (x.rank !== 5) throw new Error(`${what}: expected rank 5 [batch, frames, height, width, dim], got shape [${x.shape.join(', ')}]`);
  const [b, f, h, w, d] = x.shape as [number, number, number, number, number];
  return { tokens: tf.reshape(x, [b, f * h * w, d]), grid: { frames: f, height: h, width: w } };
}

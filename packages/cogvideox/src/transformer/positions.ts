/**
 * The CogVideoX-specific parts of the position tables. The tables themselves are core's
 * (`sincos3d`, `rotary3d`, `timestepEmbedding`, exact ports of diffusers'); this file adds how the
 * official code calls them:
 * - the pipeline's rotary grid (`CogVideoXPipeline._prepare_rotary_positional_embeddings`): `linspace`
 *   over the resize-crop region of the token grid inside the sample grid (sample size / patch);
 * - the trainer's (`prepare_rotary_positional_embeddings` in the official lora_trainer): `slice` with
 *   max size = the token grid, i.e. integer positions.
 * Both agree when the token grid equals the sample grid.
 */
import type * as tf from '@tensorflow/tfjs';
import { rotary3d } from '@vrepa/core';

/** Python's round() on floats (round half to even). */
function pyRound(x: number): number {
  const r = Math.round(x);
  return Math.abs(x % 1) === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

/** diffusers' `get_resize_crop_region_for_grid((gridH, gridW), baseW, baseH)`: [[top, left], [bottom, right]]. */
export function resizeCropRegionForGrid(gridH: number, gridW: number, baseWidth: number, baseHeight: number): [[number, number], [number, number]] {
  const r = gridH / gridW;
  let rh: number;
  let rw: number;
  if (r > baseHeight / baseWidth) {
    rh = baseHeight;
    rw = pyRound((baseHeight / gridH) * gridW);
  } else {
    rw = baseWidth;
    rh = pyRound((baseWidth / gridW) * gridH);
  }
  const top = pyRound((baseHeight - rh) / 2.0);
  const left = pyRound((baseWidth - rw) / 2.0);
  return [
    [top, left],
    [top + rh, left + rw],
  ];
}

/**
 * The 3D rotary tables for a token grid, as the pipeline (`mode: 'pipeline'`, sample grid `base`) or the
 * official trainer (`mode: 'trainer'`) builds them: cos, sin `[frames·h·w, headDim]`.
 */
export function cogvideoxRotary(
  headDim: number,
  grid: { frames: number; height: number; width: number },
  mode: 'pipeline' | 'trainer',
  base: { height: number; width: number },
): { cos: tf.Tensor2D; sin: tf.Tensor2D } {
  if (mode === 'trainer') return rotary3d(headDim, grid, { gridType: 'slice', maxSize: [grid.height, grid.width] });
  const crops = resizeCropRegionForGrid(grid.height, grid.width, base.width, base.height);
  return rotary3d(headDim, grid, { gridType: 'linspace', cropsCoords: crops });
}

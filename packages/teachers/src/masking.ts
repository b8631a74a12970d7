/**
 * Token masks of VideoMAE / VideoMAEv2 pre-training (official `dataset/masking_generator.py`), as host
 * data: masks are sampling decisions, not tensors anything differentiates through.
 *
 * Tokens are frame-major `(t, h, w)` over the token grid `frames × height × width` (frames = clip
 * frames / tubelet). Conventions follow the official batch:
 * - `encoderMask` (official `bool_masked_pos`): 1 = hidden from the encoder (the loss targets).
 * - `decoderMask` (official `decode_masked_pos`): 1 = NOT predicted by the decoder. Without decoder
 *   masking it is `1 − encoderMask` (the decoder predicts exactly the encoder-masked tokens); with
 *   VideoMAEv2's running-cell decoder masking it is the running-cell map.
 */
import type { Rng } from '@vrepa/core';
import type { TeacherGrid } from './vit.js';

/** Encoder and decoder masks of a batch, `[batch · tokens]` row-major, 0/1. */
export interface PretrainMasks {
  batch: number;
  /** tokens per sample (frames · height · width of the token grid) */
  tokens: number;
  /** `[batch·tokens]` 1 = masked for the encoder (official `bool_masked_pos`) */
  encoderMask: Uint8Array;
  /** `[batch·tokens]` 1 = not predicted by the decoder (official `decode_masked_pos`) */
  decoderMask: Uint8Array;
}

/** How `makePretrainMasks` draws a batch's masks. */
export interface MaskOptions {
  /** encoder mask ratio in (0, 1); official default 0.9 */
  maskRatio?: number;
  /** VideoMAEv2 dual masking: 'run_cell' draws the decoder's prediction set; default none */
  decoderMaskType?: 'run_cell' | null;
  /** fraction of each 2×2 cell NOT predicted by the decoder, in (0, 1); official 0.5 */
  decoderMaskRatio?: number;
  /**
   * Future masking (not in the official code; default 0 = official): the last `futureSlots` temporal token
   * slots are hidden from the encoder entirely, on top of the tube mask, so the decoder must predict the
   * clip's future from its visible past (an extrapolation task; see `futureMask`).
   */
  futureSlots?: number;
}

const tokensOf = (g: TeacherGrid) => g.frames * g.height * g.width;

function checkGrid(grid: TeacherGrid, what: string) {
  for (const k of ['frames', 'height', 'width'] as const)
    if (!Number.isInteger(grid[k]) || grid[k] < 1) throw new Error(`${what}: grid ${k} must be a positive integer, got ${grid[k]}`);
}

/** Masked tokens per frame slot for a ratio: official `int(mask_ratio · h·w)`. Throws unless 0 < ratio < 1 and 1 ≤ count < h·w. */
export function maskedPerFrame(grid: TeacherGrid, maskRatio: number): number {
  checkGrid(grid, 'tube mask');
  if (!(typeof maskRatio === 'number' && maskRatio > 0 && maskRatio < 1))
    throw new Error(`tube mask: mask ratio must lie in (0, 1), got ${maskRatio}`);
  const perFrame = grid.height * grid.width;
  const n = Math.floor(maskRatio * perFrame);
  if (n < 1 || n >= perFrame)
    throw new Error(`tube mask: ratio ${maskRatio} of ${perFrame} tokens per frame masks ${n}; at least one token must be masked and one visible (a larger grid or another ratio)`);
  return n;
}

/**
 * Official `TubeMaskingGenerator`: one spatial mask of `int(ratio · h·w)` masked tokens (a shuffled
 * 0/1 vector drawn from `rng`), repeated over every temporal slot. Returns `[frames·height·width]`.
 */
export function tubeMask(grid: TeacherGrid, maskRatio: number, rng: Rng): Uint8Array {
  const n = maskedPerFrame(grid, maskRatio);
  const perFrame = grid.height * grid.width;
  const frame = new Uint8Array(perFrame);
  frame.fill(1, perFrame - n);
  rng.shuffle(frame);
  const out = new Uint8Array(tokensOf(grid));
  for (let t = 0; t < grid.frames; t++) out.set(frame, t * perFrame);
  return out;
}

/**
 * Tube mask plus the last `futureSlots` temporal slots masked entirely: `[frames·height·width]`, 1 = hidden
 * from the encoder. Slots before them keep the tube mask (the official count per slot), so every sample
 * masks the same number of tokens. Needs 0 ≤ futureSlots < frames (at least one slot stays partly visible).
 */
export function futureMask(grid: TeacherGrid, maskRatio: number, futureSlots: number, rng: Rng): Uint8Array {
  if (!Number.isInteger(futureSlots) || futureSlots < 0 || futureSlots >= grid.frames)
    throw new Error(`future mask: futureSlots must be an integer in [0, ${grid.frames - 1}] for ${grid.frames} temporal token slots, got ${futureSlots}`);
  const out = tubeMask(grid, maskRatio, rng);
  out.fill(1, (grid.frames - futureSlots) * grid.height * grid.width);
  return out;
}

/** Masked entries of each 2×2 running cell: official `int(4 · ratio)`, which must be 1, 2 or 3. */
export function runningCellMasked(decoderMaskRatio: number): number {
  if (!(typeof decoderMaskRatio === 'number' && decoderMaskRatio > 0 && decoderMaskRatio < 1))
    throw new Error(`running-cell mask: decoder mask ratio must lie in (0, 1), got ${decoderMaskRatio}`);
  const m = Math.floor(4 * decoderMaskRatio);
  if (m < 1 || m > 3) throw new Error(`running-cell mask: ratio ${decoderMaskRatio} masks ${m} of 4 cell entries; it must mask 1, 2 or 3 (ratio in [0.25, 1))`);
  return m;
}

/**
 * The running-cell map of cell phase `phase` (0..3): official `RunningCellMaskingGenerator.all_mask_maps[phase]`.
 * A 4-entry queue `[1]·m + [0]·(4−m)`, rotated one step per temporal slot (the pointer starts at `phase`
 * and advances before each slot), read as a 2×2 cell and tiled over the frame. Needs even height and width.
 */
export function runningCellMap(grid: TeacherGrid, decoderMaskRatio: number, phase: number): Uint8Array {
  checkGrid(grid, 'running-cell mask');
  const m = runningCellMasked(decoderMaskRatio);
  if (grid.height % 2 || grid.width % 2)
    throw new Error(`running-cell mask: the token grid ${grid.height}×${grid.width} must have even height and width (2×2 cells)`);
  if (!Number.isInteger(phase) || phase < 0 || phase > 3) throw new Error(`running-cell mask: phase must be 0..3, got ${phase}`);
  const queue = [0, 1, 2, 3].map((i) => (i < m ? 1 : 0));
  const out = new Uint8Array(tokensOf(grid));
  let ptr = phase;
  for (let t = 0; t < grid.frames; t++) {
    ptr += 1;
    const cell = [0, 1, 2, 3].map((i) => queue[(i + ptr) % 4]!);
    for (let h = 0; h < grid.height; h++)
      for (let w = 0; w < grid.width; w++) out[(t * grid.height + h) * grid.width + w] = cell[(h % 2) * 2 + (w % 2)]!;
  }
  return out;
}

/** Official `RunningCellMaskingGenerator()`: the map of a random phase (drawn from `rng`). */
export function runningCellMask(grid: TeacherGrid, decoderMaskRatio: number, rng: Rng): Uint8Array {
  runningCellMasked(decoderMaskRatio);
  return runningCellMap(grid, decoderMaskRatio, rng.randint(0, 4));
}

/**
 * The masks of a batch, one draw per sample from `rng` (in sample order: encoder mask, then the
 * decoder's running cell when asked for): tube encoder masks (ratio `maskRatio`, default 0.9; with
 * `futureSlots` the last slots wholly masked too) and the decoder mask (`1 − encoderMask`, or the running-cell map).
 */
export function makePretrainMasks(batch: number, grid: TeacherGrid, opts: MaskOptions, rng: Rng): PretrainMasks {
  if (!Number.isInteger(batch) || batch < 1) throw new Error(`makePretrainMasks: batch must be a positive integer, got ${batch}`);
  const ratio = opts.maskRatio ?? 0.9;
  const dtype = opts.decoderMaskType ?? null;
  if (dtype !== null && dtype !== 'run_cell') throw new Error(`makePretrainMasks: decoderMaskType must be 'run_cell' or null, got ${JSON.stringify(dtype)}`);
  const future = opts.futureSlots ?? 0;
  const n = tokensOf(grid);
  const encoderMask = new Uint8Array(batch * n);
  const decoderMask = new Uint8Array(batch * n);
  for (let b = 0; b < batch; b++) {
    // the same draws as the official tube mask; future slots are set afterwards (no extra draw)
    const enc = future > 0 ? futureMask(grid, ratio, future, rng) : tubeMask(grid, ratio, rng);
    encoderMask.set(enc, b * n);
    if (dtype === 'run_cell') decoderMask.set(runningCellMask(grid, opts.decoderMaskRatio ?? 0.5, rng), b * n);
    else for (let i = 0; i < n; i++) decoderMask[b * n + i] = 1 - enc[i]!;
  }
  return { batch, tokens: n, encoderMask, decoderMask };
}

/** Token indices per sample where `mask[b·N + i] === value`, checked to be the same count in every sample. */
export function maskIndices(mask: Uint8Array, batch: number, tokens: number, value: 0 | 1, what: string): number[][] {
  const out: number[][] = [];
  for (let b = 0; b < batch; b++) {
    const idx: number[] = [];
    for (let i = 0; i < tokens; i++) if ((mask[b * tokens + i] ? 1 : 0) === value) idx.push(i);
    if (out.length && idx.length !== out[0]!.length)
      throw new Error(`${what}: sample ${b} selects ${idx.length} tokens but sample 0 selects ${out[0]!.length}; every sample needs the same count (as the official reshape(B, -1, C))`);
    out.push(idx);
  }
  return out;
}

/** Validate a masks object against a batch size and token count. */
export function checkMasks(m: PretrainMasks, batch: number, tokens: number, what: string): void {
  if (!m || !(m.encoderMask instanceof Uint8Array) || !(m.decoderMask instanceof Uint8Array))
    throw new Error(`${what}: masks must be { batch, tokens, encoderMask: Uint8Array, decoderMask: Uint8Array }`);
  if (m.batch !== batch || m.tokens !== tokens || m.encoderMask.length !== batch * tokens || m.decoderMask.length !== batch * tokens)
    throw new Error(`${what}: masks are for ${m.batch} × ${m.tokens} tokens (lengths ${m.encoderMask.length}, ${m.decoderMask.length}) but the clip has ${batch} × ${tokens}`);
}

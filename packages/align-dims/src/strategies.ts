/**
 * Grid matching (paper Table 5): put the projected student tokens and the teacher tokens on one grid.
 * Whichever side is not on the target grid is interpolated onto it; the student first drops latent
 * frame 0. The official default (`OFFICIAL_GRID_MATCH`): time and space on the teacher's grid, time by
 * trilinear interpolation (×2, PyTorch's scale_factor path), space by the learned strided conv.
 */
import * as tf from '@tensorflow/tfjs';
import { assertTokensOnGrid, formatGrid, gridSize, type TokenGrid, tokensToGrid } from './grid.js';
import { applyAlongAxis, cachedMatrix, interpolate, type InterpolationMode } from './interpolate.js';
import type { Downsampler } from './downsampler.js';

export interface GridMatchStrategy {
  /** Whose spatial grid the loss runs on. */
  space: 'teacher' | 'student';
  /** Whose temporal grid the loss runs on. */
  time: 'teacher' | 'student';
  /** How the student reaches the teacher's spatial grid (when space = 'teacher'): learned conv or interpolation. */
  spaceBy?: 'conv' | 'interpolate';
}

/** The official VideoREPA choice: everything on the teacher grid, space by the learned conv. */
export const OFFICIAL_GRID_MATCH: Readonly<GridMatchStrategy> = Object.freeze({ space: 'teacher', time: 'teacher', spaceBy: 'conv' });

/** Table 5's rows by name. */
export const GRID_MATCH_STRATEGIES: Readonly<Record<string, Readonly<GridMatchStrategy>>> = Object.freeze({
  /** VFM → VDM: the teacher is interpolated onto the student's latent grid (minus frame 0). */
  'student-space-student-time': Object.freeze({ space: 'student', time: 'student' } as GridMatchStrategy),
  /** Space on the teacher grid (learned conv), time on the student's. */
  'teacher-space-student-time': Object.freeze({ space: 'teacher', time: 'student', spaceBy: 'conv' } as GridMatchStrategy),
  /** Official: VDM → VFM in both. */
  'teacher-space-teacher-time': OFFICIAL_GRID_MATCH,
  /** VDM → VFM by pure interpolation (no learned conv). */
  'teacher-interpolated': Object.freeze({ space: 'teacher', time: 'teacher', spaceBy: 'interpolate' } as GridMatchStrategy),
});

export interface MatchGridsOptions {
  /** The student's (latent token) grid, including latent frame 0: 13×30×45 for CogVideoX-2B at 49×480×720. */
  studentGrid: TokenGrid;
  /** The teacher's token grid: 24×10×15 for VideoMAEv2-B on 48×160×240. */
  teacherGrid: TokenGrid;
  strategy?: GridMatchStrategy;
  /** Required when space = 'teacher' and spaceBy = 'conv'. */
  downsampler?: Downsampler;
  /** Drop latent frame 0 of the student (default true: VideoMAE-type teachers see frames 1..F-1). */
  dropFirstFrame?: boolean;
  /**
   * Time interpolation of the student by PyTorch's `scale_factor` path with this factor (official 2.0);
   * default: the `size` path to the target frame count. Both agree when frames·factor is an integer.
   */
  timeScaleFactor?: number;
  /** 'trilinear' (default) or 'nearest'. */
  interpolationMode?: Extract<InterpolationMode, 'trilinear' | 'nearest' | 'nearest-exact'>;
  alignCorners?: boolean;
  /**
   * The teacher tokens are already on the loss grid (from `teacherOnLossGrid`, e.g. cached per clip with
   * the teacher features) instead of on `teacherGrid`.
   */
  teacherPrepared?: boolean;
}

export interface MatchedGrids {
  /** Student tokens on `grid`, `[B, N, D]`. */
  student: tf.Tensor3D;
  /** Teacher tokens on `grid`, `[B, N, D']`. */
  teacher: tf.Tensor3D;
  grid: TokenGrid;
  /** Student after dropping frame 0 and interpolating in time (before space), `[B, F, H, W, D]`. */
  interpolated: tf.Tensor5D;
  /** Student on the target grid as `[B, F, h, w, D]`. */
  studentGridTensor: tf.Tensor5D;
}

function resolveStrategy(s: GridMatchStrategy | undefined): Required<GridMatchStrategy> {
  const r = { ...OFFICIAL_GRID_MATCH, ...(s ?? {}) } as Required<GridMatchStrategy>;
  if (r.space !== 'teacher' && r.space !== 'student') throw new Error(`matchGrids: strategy.space must be 'teacher' or 'student', got '${String(r.space)}'`);
  if (r.time !== 'teacher' && r.time !== 'student') throw new Error(`matchGrids: strategy.time must be 'teacher' or 'student', got '${String(r.time)}'`);
  if (r.spaceBy !== 'conv' && r.spaceBy !== 'interpolate') throw new Error(`matchGrids: strategy.spaceBy must be 'conv' or 'interpolate', got '${String(r.spaceBy)}'`);
  return r;
}

/** The grid the loss runs on for `opts` (no tensors touched). */
export function targetGrid(opts: Pick<MatchGridsOptions, 'studentGrid' | 'teacherGrid' | 'strategy' | 'dropFirstFrame'>): TokenGrid {
  const s = resolveStrategy(opts.strategy);
  const drop = opts.dropFirstFrame ?? true;
  const sf = opts.studentGrid.frames - (drop ? 1 : 0);
  return {
    frames: s.time === 'teacher' ? opts.teacherGrid.frames : sf,
    height: s.space === 'teacher' ? opts.teacherGrid.height : opts.studentGrid.height,
    width: s.space === 'teacher' ? opts.teacherGrid.width : opts.studentGrid.width,
  };
}

/**
 * Put `student [B, Fs·Hs·Ws, D]` (projected, on `studentGrid`) and `teacher [B, Ft·Ht·Wt, D']` (on
 * `teacherGrid`) on one grid following `strategy`. Differentiable in the student and the downsampler.
 */
export function matchGrids(student: tf.Tensor, teacher: tf.Tensor, opts: MatchGridsOptions): MatchedGrids {
  const s = resolveStrategy(opts.strategy);
  assertTokensOnGrid(student, opts.studentGrid, 'matchGrids: student');
  if (opts.teacherPrepared) assertTokensOnGrid(teacher, targetGrid(opts), 'matchGrids: prepared teacher (on the loss grid)');
  else assertTokensOnGrid(teacher, opts.teacherGrid, 'matchGrids: teacher');
  if (student.shape[0] !== teacher.shape[0]) throw new Error(`matchGrids: student batch ${student.shape[0]} does not match teacher batch ${teacher.shape[0]}`);
  const drop = opts.dropFirstFrame ?? true;
  if (drop && opts.studentGrid.frames < 2) {
    throw new Error(`matchGrids: student grid ${formatGrid(opts.studentGrid)} has ${opts.studentGrid.frames} latent frame(s); dropping latent frame 0 needs at least 2`);
  }
  const mode = opts.interpolationMode ?? 'trilinear';
  const ac = mode === 'trilinear' ? !!opts.alignCorners : undefined;
  const target = targetGrid(opts);
  if (s.space === 'teacher' && s.spaceBy === 'conv' && !opts.downsampler) {
    throw new Error("matchGrids: strategy space 'teacher' by 'conv' needs a downsampler");
  }
  const out = tf.tidy(() => {
    const [b, , d] = student.shape as [number, number, number];
    let x = tokensToGrid(student, opts.studentGrid, 'matchGrids: student') as tf.Tensor;
    const sg = opts.studentGrid;
    const frames = sg.frames - (drop ? 1 : 0);
    // time: dropping latent frame 0 and the time interpolation are one [target, F] matrix (zero column
    // for frame 0) applied along the frame axis: no slice, frame 0 gets a zero gradient
    let timeScale: number | undefined;
    if (opts.timeScaleFactor !== undefined) {
      const f2 = Math.floor(frames * opts.timeScaleFactor);
      if (f2 !== target.frames) {
        throw new Error(`matchGrids: timeScaleFactor ${opts.timeScaleFactor} maps ${frames} student frames to ${f2}, but the target grid ${formatGrid(target)} has ${target.frames}`);
      }
      timeScale = opts.timeScaleFactor;
    }
    const tm = cachedMatrix({ inSize: frames, outSize: target.frames, kernel: mode === 'trilinear' ? 'linear' : mode, alignCorners: ac, scaleFactor: timeScale }, drop ? 1 : 0);
    if (!tm.identity) x = applyAlongAxis(x, 1, tm.m, tm.mt, tm.outSize);
    const interpolated = x as tf.Tensor5D;
    // space
    if (s.space === 'teacher' && (sg.height !== target.height || sg.width !== target.width || s.spaceBy === 'conv')) {
      if (s.spaceBy === 'conv') {
        const ds = opts.downsampler!;
        const [ho, wo] = ds.outputSize(sg.height, sg.width);
        if (ho !== target.height || wo !== target.width) {
          throw new Error(`matchGrids: the downsampler maps ${sg.height}×${sg.width} to ${ho}×${wo}, but the teacher grid ${formatGrid(opts.teacherGrid)} is ${target.height}×${target.width}`);
        }
        const y = ds.apply(tf.reshape(x, [b * target.frames, sg.height, sg.width, d]));
        x = tf.reshape(y, [b, target.frames, ho, wo, y.shape[3]]);
      } else {
        x = interpolate(x, { size: [target.frames, target.height, target.width], mode, alignCorners: ac });
      }
    }
    const studentGridTensor = x as tf.Tensor5D;
    // teacher onto the target grid (no gradient needed; the teacher is frozen)
    const n = gridSize(target);
    return {
      student: tf.reshape(studentGridTensor, [b, n, studentGridTensor.shape[4]]) as tf.Tensor3D,
      teacher: opts.teacherPrepared ? (tf.clone(teacher) as tf.Tensor3D) : teacherOnLossGrid(teacher, opts).tokens,
      interpolated,
      studentGridTensor,
    };
  });
  return { ...out, grid: target };
}

/**
 * The teacher tokens moved onto the loss grid of `opts` (trilinear / nearest, no-op when already there).
 * The teacher is frozen, so this can run once per clip, outside the training step's gradient; pass the
 * result with `teacherPrepared: true`.
 */
export function teacherOnLossGrid(teacher: tf.Tensor, opts: Omit<MatchGridsOptions, 'teacherPrepared'>): { tokens: tf.Tensor3D; grid: TokenGrid } {
  assertTokensOnGrid(teacher, opts.teacherGrid, 'teacherOnLossGrid: teacher');
  const target = targetGrid(opts);
  const tg = opts.teacherGrid;
  const mode = opts.interpolationMode ?? 'trilinear';
  const ac = mode === 'trilinear' ? !!opts.alignCorners : undefined;
  const tokens = tf.tidy(() => {
    if (tg.frames === target.frames && tg.height === target.height && tg.width === target.width) return tf.clone(teacher) as tf.Tensor3D;
    const t = interpolate(tokensToGrid(teacher, tg, 'teacherOnLossGrid: teacher'), { size: [target.frames, target.height, target.width], mode, alignCorners: ac });
    return tf.reshape(t, [teacher.shape[0]!, gridSize(target), teacher.shape[2]!]) as tf.Tensor3D;
  });
  return { tokens, grid: target };
}

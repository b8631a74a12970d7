/**
 * The whole alignment path in one call: hidden state of the aligned block → projector → grid matching
 * (drop latent frame 0, time interpolation, learned conv or interpolation in space) → TRD / REPA loss
 * from @vrepa/relations. Differentiable in the hidden state and every parameter of the projector and the
 * downsampler.
 */
import * as tf from '@tensorflow/tfjs';
import { repaLoss, trdLoss } from '@vrepa/relations';
import { assertTokensOnGrid, type TokenGrid } from './grid.js';
import type { Projector } from './projector.js';
import { matchGrids, type MatchGridsOptions } from './strategies.js';

/**
 * 'trd' — official full-Gram TRD; 'trd-spatial' / 'trd-temporal' — the official ablations;
 * 'trd-paper' — paper Eq. 5 (spatial + temporal terms); 'repa' — −mean cosine.
 */
export type AlignLossKind = 'trd' | 'trd-spatial' | 'trd-temporal' | 'trd-paper' | 'repa';

const TRD_FORM = { trd: 'official', 'trd-spatial': 'spatial', 'trd-temporal': 'temporal', 'trd-paper': 'paper' } as const;

export interface AlignmentLossOptions extends MatchGridsOptions {
  projector: Projector;
  /** Default 'trd'. */
  loss?: AlignLossKind;
  /** TRD margin (default 0.1, the official value for VideoMAEv2). */
  margin?: number;
  /** TRD row-block size (see @vrepa/relations). */
  chunkSize?: number;
}

export interface AlignmentForward {
  loss: tf.Scalar;
  /** Projector output `[B, Fs·Hs·Ws, D]` on the student grid. */
  projected: tf.Tensor3D;
  /** Student after dropping frame 0 and the time interpolation, `[B, F, Hs, Ws, D]`. */
  interpolated: tf.Tensor5D;
  /** Student on the loss grid `[B, F, h, w, D]` (after the conv / interpolation). */
  studentGridTensor: tf.Tensor5D;
  /** Student and teacher tokens the loss compared, on `grid`. */
  student: tf.Tensor3D;
  teacher: tf.Tensor3D;
  grid: TokenGrid;
}

/** The alignment path returning every intermediate (dispose them, or use `alignmentLoss`). */
export function alignmentForward(hidden: tf.Tensor, teacher: tf.Tensor, opts: AlignmentLossOptions): AlignmentForward {
  assertTokensOnGrid(hidden, opts.studentGrid, 'alignmentLoss: hidden');
  if (!opts.teacherPrepared) assertTokensOnGrid(teacher, opts.teacherGrid, 'alignmentLoss: teacher');
  const kind = opts.loss ?? 'trd';
  if (!(kind in TRD_FORM) && kind !== 'repa') throw new Error(`alignmentLoss: loss must be trd, trd-spatial, trd-temporal, trd-paper or repa, got '${String(kind)}'`);
  let grid: TokenGrid | undefined;
  const out = tf.tidy(() => {
    const projected = opts.projector.apply(hidden) as tf.Tensor3D;
    const m = matchGrids(projected, teacher, opts);
    // When the teacher is already on the loss grid, hand the caller's tensor itself to the loss (it
    // outlives the forward scope of tf.grad; a reshaped copy made here would not).
    const tg = opts.teacherGrid;
    const teacherForLoss = opts.teacherPrepared || (tg.frames === m.grid.frames && tg.height === m.grid.height && tg.width === m.grid.width) ? (teacher as tf.Tensor3D) : m.teacher;
    let loss: tf.Scalar;
    if (kind === 'repa') {
      if (m.student.shape[2] !== m.teacher.shape[2]) {
        throw new Error(`alignmentLoss: REPA needs equal feature dims, student (projector output) has ${m.student.shape[2]}, teacher ${m.teacher.shape[2]}`);
      }
      loss = repaLoss(m.student, teacherForLoss);
    } else {
      loss = trdLoss(m.student, teacherForLoss, { grid: m.grid, margin: opts.margin ?? 0.1, form: TRD_FORM[kind], chunkSize: opts.chunkSize });
    }
    grid = m.grid;
    return { loss, projected, interpolated: m.interpolated, studentGridTensor: m.studentGridTensor, student: m.student, teacher: m.teacher };
  });
  return { ...out, grid: grid! };
}

/** `alignmentForward(...).loss`, with every intermediate disposed. */
export function alignmentLoss(hidden: tf.Tensor, teacher: tf.Tensor, opts: AlignmentLossOptions): tf.Scalar {
  return tf.tidy(() => alignmentForward(hidden, teacher, opts).loss);
}

/**
 * Conformance handler of the `trd_loss` case: everything (grid, margins, tolerances, which references
 * exist) comes from the manifest's sub-case, so other fixture sets with other shapes run unchanged.
 *
 * Per sub-case it checks: both relation matrices; for each of the official TRD ('trd'), only-spatial and
 * only-temporal references present, the loss and d loss / d student through the default chunked path, the
 * chunked path with a block size that does not divide N, and the naive path; the paper form against
 * only-spatial + only-temporal (the identity of DESIGN.md §4, when both are present); REPA when present.
 */
import * as tf from '@tensorflow/tfjs';
import type { ConformanceContext, ConformanceHandler } from '@vrepa/core';
import { repaLoss } from './repa.js';
import { relationMatrix, trdLoss, trdLossNaive, type TrdOptions } from './trd.js';
import type { TrdForm } from './validate.js';

function need(obj: Record<string, unknown>, key: string, what: string): unknown {
  const v = obj[key];
  if (v === undefined) throw new Error(`trd_loss conformance: sub-case has no ${what} '${key}'`);
  return v;
}

function firstNumber(p: Record<string, unknown>, keys: string[]): number {
  for (const k of keys) if (typeof p[k] === 'number') return p[k] as number;
  throw new Error(`trd_loss conformance: params has none of ${keys.join(', ')}`);
}

/** A block size in [1, N] that does not divide N when one exists (exercises ragged last blocks). */
export function raggedChunk(n: number): number {
  let c = Math.floor(n / 3) + 1;
  while (c < n && n % c === 0) c++;
  return Math.min(c, n);
}

export async function trdLossConformance(ctx: ConformanceContext): Promise<void> {
  const p = ctx.params;
  const tol = (ctx.subcase.tolerances ?? {}) as Record<string, string>;
  const grid = {
    frames: firstNumber(p, ['F', 'frames']),
    height: firstNumber(p, ['h', 'height']),
    width: firstNumber(p, ['w', 'width']),
  };
  const margin = firstNumber(p, ['margin']);
  const marginMatrix = typeof p.margin_matrix === 'number' ? (p.margin_matrix as number) : margin;
  const has = (name: string) => ctx.file.has(name);
  const student = ctx.ref('student') as tf.Tensor3D;
  const teacher = ctx.ref('teacher') as tf.Tensor3D;
  const N = student.shape[1];

  for (const [refName, x] of [
    ['trd_relation_student', student],
    ['trd_relation_teacher', teacher],
  ] as const) {
    if (!has(refName)) continue;
    const got = relationMatrix(x);
    ctx.compare(refName, got, need(tol, 'relations', 'tolerance') as string);
    got.dispose();
  }

  const variants: Array<[string, (s: tf.Tensor3D, t: tf.Tensor3D, o: TrdOptions) => tf.Scalar, Partial<TrdOptions>]> = [
    ['', trdLoss, {}],
    [` (chunk ${raggedChunk(N)})`, trdLoss, { chunkSize: raggedChunk(N) }],
    [' (naive)', trdLossNaive, {}],
  ];
  const run = (fn: (s: tf.Tensor3D, t: tf.Tensor3D, o: TrdOptions) => tf.Scalar, opts: TrdOptions) =>
    tf.valueAndGrad((s: tf.Tensor) => fn(s as tf.Tensor3D, teacher, opts))(student);

  const forms: Array<[string, TrdForm, number]> = [
    ['trd', 'official', margin],
    ['trd_only_spatial', 'spatial', marginMatrix],
    ['trd_only_temporal', 'temporal', marginMatrix],
  ];
  for (const [key, form, m] of forms) {
    if (!has(`${key}_loss`)) continue;
    if (form === 'temporal' && grid.frames < 2) continue; // undefined (0/0) for a single frame; trdLoss refuses it
    for (const [label, fn, extra] of variants) {
      const { value, grad } = run(fn, { grid, margin: m, form, ...extra });
      ctx.compare(`${key}_loss${label}`, value, need(tol, 'loss', 'tolerance') as string, ctx.ref(`${key}_loss`));
      if (has(`${key}_grad_student`)) ctx.compare(`${key}_grad_student${label}`, grad, need(tol, 'grad', 'tolerance') as string, ctx.ref(`${key}_grad_student`));
      tf.dispose([value, grad]);
    }
  }

  // paper Eq. 5 = mean over same-frame pairs + mean over cross-frame pairs = only-spatial + only-temporal.
  if (has('trd_only_spatial_loss') && has('trd_only_temporal_loss') && grid.frames > 1) {
    for (const [label, fn, extra] of variants) {
      const { value, grad } = run(fn, { grid, margin: marginMatrix, form: 'paper', ...extra });
      const wantLoss = tf.add(ctx.ref('trd_only_spatial_loss'), ctx.ref('trd_only_temporal_loss'));
      ctx.compare(`paper = only_spatial + only_temporal loss${label}`, value, need(tol, 'loss', 'tolerance') as string, wantLoss);
      if (has('trd_only_spatial_grad_student') && has('trd_only_temporal_grad_student')) {
        const wantGrad = tf.add(ctx.ref('trd_only_spatial_grad_student'), ctx.ref('trd_only_temporal_grad_student'));
        ctx.compare(`paper = only_spatial + only_temporal grad${label}`, grad, need(tol, 'grad', 'tolerance') as string, wantGrad);
        wantGrad.dispose();
      }
      tf.dispose([value, grad, wantLoss]);
    }
  }

  if (has('repa_loss')) {
    const { value, grad } = tf.valueAndGrad((s: tf.Tensor) => repaLoss(s as tf.Tensor3D, teacher))(student);
    ctx.compare('repa_loss', value, need(tol, 'loss', 'tolerance') as string);
    if (has('repa_grad_student')) ctx.compare('repa_grad_student', grad, need(tol, 'grad', 'tolerance') as string);
    tf.dispose([value, grad]);
  }
}

/** Case name → handler, for `registerConformanceHandler` / the `vrepa conformance` command. */
export const conformanceHandlers: Record<string, ConformanceHandler> = {
  trd_loss: trdLossConformance,
};

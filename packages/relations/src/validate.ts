/** Argument checks shared by the losses: one sentence naming the argument, what was expected and what came. */
import * as tf from '@tensorflow/tfjs';

/** The token grid of a sequence: `frames*height*width` tokens, frame-major (frame, row, col). */
export interface TokenGrid {
  frames: number;
  height: number;
  width: number;
}

/** The TRD reductions (DESIGN.md §4). */
export type TrdForm = 'official' | 'paper' | 'spatial' | 'temporal';
export const TRD_FORMS: readonly TrdForm[] = ['official', 'paper', 'spatial', 'temporal'];

export const DEFAULT_MARGIN = 0.1;

/** Throws unless `x` is a float32 rank-3 tensor; `what` names the argument (e.g. `trdLoss: student`). */
export function assertTokens(x: unknown, what: string): asserts x is tf.Tensor3D {
  if (!(x instanceof tf.Tensor)) {
    throw new Error(`${what} must be a tf.Tensor [batch, frames*height*width, dim], got ${x === null ? 'null' : typeof x}`);
  }
  if (x.rank !== 3) {
    throw new Error(`${what} must be a rank-3 tensor [batch, frames*height*width, dim], got rank ${x.rank} (shape [${x.shape.join(', ')}])`);
  }
  if (x.dtype !== 'float32') throw new Error(`${what} must be float32, got ${x.dtype}`);
  const [b, n, d] = x.shape;
  if (b! < 1 || n! < 1 || d! < 1) throw new Error(`${what} must have batch, tokens and dim ≥ 1, got shape [${x.shape.join(', ')}]`);
}

/** Student and teacher agree in batch and token count (and in dim when `sameDim`). */
export function assertPair(student: tf.Tensor3D, teacher: tf.Tensor3D, fn: string, sameDim: boolean): void {
  const [bs, ns, ds] = student.shape;
  const [bt, nt, dt] = teacher.shape;
  if (bs !== bt) throw new Error(`${fn}: teacher batch ${bt} does not match student batch ${bs}`);
  if (ns !== nt) throw new Error(`${fn}: teacher tokens ${nt} do not match student tokens ${ns}`);
  if (sameDim && ds !== dt) throw new Error(`${fn}: teacher dim ${dt} does not match student dim ${ds} (project the student to the teacher's dim first)`);
}

export function assertGrid(grid: unknown, tokens: number, fn: string): asserts grid is TokenGrid {
  if (grid === null || typeof grid !== 'object') throw new Error(`${fn}: opts.grid must be {frames, height, width}, got ${String(grid)}`);
  const g = grid as Record<string, unknown>;
  for (const k of ['frames', 'height', 'width'] as const) {
    const v = g[k];
    if (typeof v !== 'number' || !Number.isInteger(v) || v < 1) throw new Error(`${fn}: grid.${k} must be a positive integer, got ${String(v)}`);
  }
  const { frames, height, width } = g as unknown as TokenGrid;
  const n = frames * height * width;
  if (n !== tokens) throw new Error(`${fn}: grid ${frames}×${height}×${width} (${n} tokens) does not match student tokens ${tokens}`);
}

export function assertMargin(margin: unknown, fn: string): asserts margin is number {
  if (typeof margin !== 'number' || !Number.isFinite(margin) || margin < 0) {
    throw new Error(`${fn}: margin must be a finite number ≥ 0, got ${String(margin)}`);
  }
}

export function assertForm(form: unknown, frames: number, fn: string): asserts form is TrdForm {
  if (typeof form !== 'string' || !(TRD_FORMS as readonly string[]).includes(form)) {
    throw new Error(`${fn}: form must be one of ${TRD_FORMS.map((f) => `'${f}'`).join(', ')}, got ${typeof form === 'string' ? `'${form}'` : String(form)}`);
  }
  if (form === 'temporal' && frames < 2) throw new Error(`${fn}: form 'temporal' needs at least 2 frames, got grid.frames = ${frames}`);
}

export function assertChunk(chunk: unknown, fn: string): asserts chunk is number {
  if (typeof chunk !== 'number' || !Number.isInteger(chunk) || chunk < 1) {
    throw new Error(`${fn}: chunkSize must be a positive integer (rows per block), got ${String(chunk)}`);
  }
}

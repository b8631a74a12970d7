/**
 * Token Relation Distillation (TRD), DESIGN.md §4, exactly as the official trainer computes it
 * (aHapBean/VideoREPA `lora_trainer.py` `compute_loss`), plus the paper's Eq. 5 form and the two ablations.
 *
 * With H, Y the student and teacher tokens `[B, N, D]` (rows L2-normalised, torch eps 1e-12),
 * S_s = H·Hᵀ, S_t = Y·Yᵀ and E = relu(|S_s − S_t| − margin) (a hinge):
 * - 'official': mean of E over all B·N² entries (same-frame and cross-frame pairs, diagonal included);
 * - 'spatial':  mean of E over same-frame pairs (B·F·P² entries, P = height·width);
 * - 'temporal': E with the same-frame blocks zeroed, mean over all entries, times F/(F−1);
 * - 'paper':    spatial term + temporal term, i.e. mean over same-frame pairs + mean over cross-frame pairs.
 * Each is Σ w_ij·E_ij with w_ij = wSame for same-frame pairs and wOff for cross-frame pairs.
 */
import * as tf from '@tensorflow/tfjs';
import { l2Normalize, normalizeRowsBackward, normalizeRowsParts, stopGradient } from './normalize.js';
import {
  DEFAULT_MARGIN,
  assertChunk,
  assertForm,
  assertGrid,
  assertMargin,
  assertPair,
  assertTokens,
  type TokenGrid,
  type TrdForm,
} from './validate.js';

export interface TrdOptions {
  /** The token grid; frames·height·width must equal the token count N. */
  grid: TokenGrid;
  /** Hinge margin m ≥ 0 (default 0.1, the official value for VideoMAEv2). */
  margin?: number;
  /** Which reduction (default 'official'). */
  form?: TrdForm;
  /** Rows per block of the chunked path (default: {@link autoChunkSize}). */
  chunkSize?: number;
}

/** Weights of one same-frame and one cross-frame entry of E in the loss sum. */
export interface TrdFormWeights {
  wSame: number;
  wOff: number;
}

/** The per-entry weights of a form for batch B and grid F×P (P = height·width). */
export function trdFormWeights(form: TrdForm, batch: number, frames: number, perFrame: number): TrdFormWeights {
  const B = batch;
  const F = frames;
  const P = perFrame;
  const N = F * P;
  switch (form) {
    case 'official':
      return { wSame: 1 / (B * N * N), wOff: 1 / (B * N * N) };
    case 'spatial':
      return { wSame: 1 / (B * F * P * P), wOff: 0 };
    case 'temporal':
      return { wSame: 0, wOff: F / ((F - 1) * B * N * N) };
    case 'paper':
      return { wSame: 1 / (B * F * P * P), wOff: F > 1 ? 1 / (B * F * (F - 1) * P * P) : 0 };
  }
}

/**
 * The default block size of the chunked path: blocks of about 512 rows when the feature dim is ≥ 256
 * (XNNPACK's block GEMM [c,D]·[D,c] runs at its peak up to c ≈ 900 on wasm and falls to ~40 % of it
 * beyond, where the operands leave the cache), about 1024 rows for small dims (there the elementwise
 * work dominates and larger blocks amortise the per-op overhead); then balanced: nb = ⌈N / c₀⌉ blocks
 * of ⌈N / nb⌉ rows. Memory of the chunked path: O(N·D) for the normalised tokens and the gradient plus
 * about ten c×c blocks, never N×N.
 */
export function autoChunkSize(tokens: number, dim: number): number {
  const c0 = dim >= 256 ? 512 : 1024;
  const nb = Math.ceil(tokens / c0);
  return Math.ceil(tokens / nb);
}

interface ResolvedTrd {
  fn: string;
  margin: number;
  form: TrdForm;
  grid: TokenGrid;
  chunk: number;
}

function resolve(student: unknown, teacher: unknown, opts: TrdOptions | undefined, fn: string, chunked: boolean): ResolvedTrd {
  assertTokens(student, `${fn}: student`);
  assertTokens(teacher, `${fn}: teacher`);
  assertPair(student, teacher, fn, false);
  if (opts === null || typeof opts !== 'object') throw new Error(`${fn}: opts must be an object with a grid, got ${String(opts)}`);
  const N = student.shape[1];
  assertGrid(opts.grid, N, fn);
  const margin = opts.margin ?? DEFAULT_MARGIN;
  assertMargin(margin, fn);
  const form = opts.form ?? 'official';
  assertForm(form, opts.grid.frames, fn);
  let chunk = N;
  if (chunked) {
    if (opts.chunkSize !== undefined) {
      assertChunk(opts.chunkSize, fn);
      chunk = Math.min(opts.chunkSize, N);
    } else chunk = autoChunkSize(N, Math.max(student.shape[2], teacher.shape[2]));
  }
  return { fn, margin, form, grid: opts.grid, chunk };
}

/**
 * Relation (cosine Gram) matrices: tokens `[B, N, D]` → `[B, N, N]`, S = n(X)·n(X)ᵀ with rows L2-normalised
 * first (torch `F.normalize`, eps 1e-12). Symmetric, unit diagonal. Differentiable.
 */
export function relationMatrix(tokens: tf.Tensor3D): tf.Tensor3D {
  assertTokens(tokens, 'relationMatrix: tokens');
  return tf.tidy(() => gram(l2Normalize(tokens)));
}

/**
 * Selected rows of the relation matrix without forming it: tokens `[B, N, D]`, row indices `k` →
 * `[B, k, N]`, row r = n(X)·n(X_{rows[r]}) (cosines of token rows[r] with every token). O(k·N·D) work and
 * O(k·N) memory, so one row per click stays interactive at any N. Equals the same rows of relationMatrix.
 */
export function relationRows(tokens: tf.Tensor3D, rows: readonly number[]): tf.Tensor3D {
  assertTokens(tokens, 'relationRows: tokens');
  const [B, N, D] = tokens.shape;
  if (!Array.isArray(rows) || rows.length === 0) throw new Error('relationRows: rows must be a non-empty list of token indices');
  const bad = rows.find((r) => !Number.isInteger(r) || r < 0 || r >= N);
  if (bad !== undefined) throw new Error(`relationRows: row ${String(bad)} is not a token index in 0..${N - 1}`);
  return tf.tidy(() => {
    const n = l2Normalize(tokens);
    const picked = tf.gather(n, tf.tensor1d(rows as number[], 'int32'), 1); // [B, k, D]
    if (B === 1) return tf.reshape(tf.matMul(tf.reshape(picked, [rows.length, D]), tf.reshape(n, [N, D]), false, true), [1, rows.length, N]);
    return tf.matMul(picked, n, false, true);
  });
}

/** n·nᵀ per batch item using plain 2-D matmuls (the fast path on every backend). */
function gram(n: tf.Tensor3D): tf.Tensor3D {
  const [B, N, D] = n.shape;
  if (B === 1) {
    const n2 = tf.reshape(n, [N, D]);
    return tf.reshape(tf.matMul(n2, tf.transpose(n2)), [1, N, N]);
  }
  const items = tf.unstack(n) as tf.Tensor2D[];
  return tf.stack(items.map((x) => tf.matMul(x, tf.transpose(x)))) as tf.Tensor3D;
}

/**
 * Sum of all entries, row sums first: the wasm Sum kernel accumulates sequentially in float32, whose error
 * over 10⁶ entries (~1e-4 relative) would exceed the 1e-5 loss tolerance; two stages keep it near 1e-7.
 */
function sumRows(x: tf.Tensor): tf.Scalar {
  return tf.sum(tf.sum(x, -1));
}

/** [N, N] float mask: 1 where tokens i and j lie in the same frame (frame-major order). */
function sameFrameMask(frames: number, perFrame: number): tf.Tensor2D {
  return tf.tidy(() => {
    const ids = tf.floorDiv(tf.range(0, frames * perFrame, 1, 'int32'), tf.scalar(perFrame, 'int32'));
    return tf.cast(tf.equal(tf.reshape(ids, [-1, 1]), tf.reshape(ids, [1, -1])), 'float32') as tf.Tensor2D;
  });
}

/**
 * The reference implementation: full `[B, N, N]` relation matrices and tf autograd, as the official code
 * does it. Same value and gradient as {@link trdLoss}; memory O(B·N²). The teacher is a constant (zero gradient).
 */
export function trdLossNaive(student: tf.Tensor3D, teacher: tf.Tensor3D, opts: TrdOptions): tf.Scalar {
  const cfg = resolve(student, teacher, opts, 'trdLossNaive', false);
  return tf.tidy(() => {
    const B = student.shape[0];
    const P = cfg.grid.height * cfg.grid.width;
    const ss = relationMatrix(student);
    const st = stopGradient(relationMatrix(teacher));
    const e = tf.relu(tf.sub(tf.abs(tf.sub(ss, st)), cfg.margin));
    if (cfg.form === 'official') return tf.div(sumRows(e), e.size) as tf.Scalar;
    const w = trdFormWeights(cfg.form, B, cfg.grid.frames, P);
    const same = sameFrameMask(cfg.grid.frames, P);
    const eSame = sumRows(tf.mul(e, same));
    const eOff = sumRows(tf.mul(e, tf.sub(1, same)));
    return tf.add(tf.mul(eSame, w.wSame), tf.mul(eOff, w.wOff)) as tf.Scalar;
  });
}

/** How gradient recording stands: tfjs records a tape only inside tf.grad / valueAndGrad / variableGrads. */
function tapeIsRecording(): boolean {
  const state = (tf.engine() as unknown as { state?: { gradientDepth?: number } }).state;
  return (state?.gradientDepth ?? 1) > 0;
}

/**
 * TRD loss (scalar) between student and teacher tokens `[B, N, D_s]`, `[B, N, D_t]` on `opts.grid`.
 *
 * Chunked: the relation matrices are formed c×c block by block over the upper triangle (S is symmetric),
 * student and teacher in one matmul per block ([n(H)_I, −n(Y)_I]·[n(H)_J, n(Y)_J]ᵀ = S_s − S_t), so memory is
 * O(N·D + c²), never N×N. The gradient is a custom one, formed in the same pass when a gradient is being
 * recorded: G = w·sign(S_s − S_t)·1[|S_s − S_t| > m] is symmetric, so dL/dn(H) = (G + Gᵀ)·n(H) = 2·G·n(H), one
 * matmul per block pair and direction, then back through the normalisation. The teacher is a constant
 * (zero gradient), as in the official trainer. Same value and gradient as {@link trdLossNaive}.
 */
export function trdLoss(student: tf.Tensor3D, teacher: tf.Tensor3D, opts: TrdOptions): tf.Scalar {
  const cfg = resolve(student, teacher, opts, 'trdLoss', true);
  const wantGrad = tapeIsRecording();
  const op = tf.customGrad((...args: Array<tf.Tensor | tf.GradSaveFunc>) => {
    const s = args[0] as tf.Tensor;
    const t = args[1] as tf.Tensor;
    const save = args[2] as tf.GradSaveFunc;
    const { loss, grad } = trdBlocks(s as tf.Tensor3D, t as tf.Tensor3D, cfg, wantGrad);
    if (grad) save([grad]);
    // The teacher may be an intermediate of the differentiated function, disposed before the backward runs:
    // keep only its shape for the (zero) teacher gradient.
    const teacherShape = t.shape;
    return {
      value: loss,
      gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => {
        let g = saved[0];
        let own = false;
        if (!g) {
          const again = trdBlocks(s as tf.Tensor3D, t as tf.Tensor3D, cfg, true);
          again.loss.dispose();
          g = again.grad!;
          own = true;
        }
        const ds = tf.mul(dy, g);
        if (own) g.dispose();
        return [ds, tf.zeros(teacherShape)];
      },
    };
  });
  return op(student, teacher) as tf.Scalar;
}

/** Which weight applies inside a block of rows [a0, a1) × columns [b0, b1) of one sample. */
type BlockKind = { kind: 'skip' } | { kind: 'uniform'; r: number } | { kind: 'mixed' };

function classify(a0: number, a1: number, b0: number, b1: number, P: number, rSame: number, rOff: number): BlockKind {
  const fa0 = Math.floor(a0 / P);
  const fa1 = Math.floor((a1 - 1) / P);
  const fb0 = Math.floor(b0 / P);
  const fb1 = Math.floor((b1 - 1) / P);
  const overlap = fa0 <= fb1 && fb0 <= fa1;
  let k: BlockKind;
  if (!overlap) k = { kind: 'uniform', r: rOff };
  else if (fa0 === fa1 && fb0 === fb1) k = { kind: 'uniform', r: rSame };
  else if (rSame === rOff) k = { kind: 'uniform', r: rOff };
  else k = { kind: 'mixed' };
  return k.kind === 'uniform' && k.r === 0 ? { kind: 'skip' } : k;
}

/** Relative weight matrix of a mixed block: rSame on same-frame entries, rOff elsewhere. */
function mixedWeights(a0: number, a1: number, b0: number, b1: number, P: number, rSame: number, rOff: number): tf.Tensor2D {
  return tf.tidy(() => {
    const p = tf.scalar(P, 'int32');
    const fr = tf.reshape(tf.floorDiv(tf.range(a0, a1, 1, 'int32'), p), [-1, 1]);
    const fc = tf.reshape(tf.floorDiv(tf.range(b0, b1, 1, 'int32'), p), [1, -1]);
    const same = tf.cast(tf.equal(fr, fc), 'float32');
    return tf.add(tf.mul(same, rSame - rOff), rOff) as tf.Tensor2D;
  });
}

/**
 * Cut the rows of `x` into pieces of `sizes`. On the native backend one tf.split. Elsewhere the data are read
 * back once and each piece is written from a view of it: the wasm Slice kernel (used by split) copies its whole
 * input to JS on every call, so a k-way split of [N, D] costs k full copies (28 s for 80 pieces of
 * [36000, 1536] on wasm, against two copies here).
 */
function cutRows(x: tf.Tensor2D, sizes: number[], native: boolean): tf.Tensor2D[] {
  if (sizes.length === 1) return [tf.clone(x)];
  if (native) return tf.split(x, sizes, 0) as tf.Tensor2D[];
  const cols = x.shape[1];
  const v = x.dataSync() as Float32Array;
  let off = 0;
  return sizes.map((n) => {
    const piece = tf.tensor2d(v.subarray(off * cols, (off + n) * cols), [n, cols], 'float32');
    off += n;
    return piece;
  });
}

/**
 * The chunked computation: loss and (when `wantGrad`) dL/d student `[B, N, D_s]`, over row blocks of
 * cfg.chunk rows (the last one shorter) of each sample. Only blocks (I, J) with J ≥ I are formed.
 */
function trdBlocks(student: tf.Tensor3D, teacher: tf.Tensor3D, cfg: ResolvedTrd, wantGrad: boolean): { loss: tf.Scalar; grad?: tf.Tensor3D } {
  const [B, N, Ds] = student.shape;
  const Dt = teacher.shape[2];
  const P = cfg.grid.height * cfg.grid.width;
  const w = trdFormWeights(cfg.form, B, cfg.grid.frames, P);
  const wRef = w.wOff !== 0 ? w.wOff : w.wSame;
  const rSame = w.wSame / wRef;
  const rOff = w.wOff / wRef;
  // The margin as float32 (what the kernels see); XNNPACK's clamp rejects min = max, so 0 skips the clip.
  const m = Math.fround(cfg.margin);
  const c = cfg.chunk;
  const nb = Math.ceil(N / c);
  const starts = Array.from({ length: nb }, (_, i) => i * c);
  const sizes = starts.map((s) => Math.min(c, N - s));

  const live: tf.Tensor[] = [];
  const track = <T extends tf.Tensor>(x: T): T => {
    live.push(x);
    return x;
  };
  const native = tf.getBackend() === 'tensorflow';
  // Gradient accumulators per row block: contributions wait in a short list and are summed by one addN
  // (one read each) instead of a chain of adds (two reads and a write each); the list is bounded by FLUSH.
  const FLUSH = 4;
  const acc: Array<tf.Tensor2D | undefined> = new Array(B * nb).fill(undefined);
  const pending: tf.Tensor2D[][] = Array.from({ length: B * nb }, () => []);
  const flush = (k: number) => {
    const list = pending[k]!;
    if (list.length === 0) return;
    const all = acc[k] ? [acc[k]!, ...list] : list;
    const sum = all.length === 1 ? all[0]! : (tf.addN(all) as tf.Tensor2D);
    if (all.length > 1) tf.dispose(all);
    acc[k] = sum;
    pending[k] = [];
  };
  const addTo = (k: number, x: tf.Tensor) => {
    pending[k]!.push(x as tf.Tensor2D);
    if (pending[k]!.length >= FLUSH) flush(k);
  };
  // Block loss sums grouped by their multiplier (1 or 2, times the relative weight), scaled once at the end.
  const parts = new Map<number, tf.Scalar[]>();
  try {
    // Normalised rows; z = [n(H), −n(Y)] and u = [n(H), n(Y)], so z_I·u_Jᵀ = S_s − S_t on block (I, J), one matmul.
    const hs = normalizeRowsParts(tf.reshape(student, [B * N, Ds]));
    track(hs.n);
    track(hs.r);
    track(hs.live);
    const yn = track(tf.tidy(() => normalizeRowsParts(tf.reshape(teacher, [B * N, Dt])).n));
    const allSizes = Array.from({ length: B }, () => sizes).flat();
    const hB = cutRows(hs.n as tf.Tensor2D, allSizes, native).map(track);
    const yB = cutRows(yn as tf.Tensor2D, allSizes, native).map(track);
    const zB = hB.map((h, k) => track(tf.tidy(() => tf.concat([h, tf.neg(yB[k]!)], 1)) as tf.Tensor2D));
    const uT = hB.map((h, k) => track(tf.tidy(() => tf.transpose(tf.concat([h, yB[k]!], 1))) as tf.Tensor2D));
    tf.dispose([yn, ...yB]); // the teacher lives on in zB / uT

    for (let I = 0; I < nb; I++) {
      for (let J = I; J < nb; J++) {
        const a0 = starts[I]!;
        const a1 = a0 + sizes[I]!;
        const b0 = starts[J]!;
        const b1 = b0 + sizes[J]!;
        const kind = classify(a0, a1, b0, b1, P, rSame, rOff);
        if (kind.kind === 'skip') continue;
        const W = kind.kind === 'mixed' ? mixedWeights(a0, a1, b0, b1, P, rSame, rOff) : undefined;
        const mult = I === J ? 1 : 2;
        for (let b = 0; b < B; b++) {
          const kI = b * nb + I;
          const kJ = b * nb + J;
          const out = tf.tidy(() => {
            const d = tf.matMul(zB[kI]!, uT[kJ]!); // S_s − S_t on the block
            const t = m > 0 ? tf.sub(d, tf.clipByValue(d, -m, m)) : d; // sign(d)·relu(|d| − m)
            const at = tf.abs(t);
            const scaled = (native ? tf.sum : sumRows)(W ? tf.mul(at, W) : at) as tf.Scalar;
            if (!wantGrad) return { scaled };
            // sign(t); off the native backend as clip(t·1e30, −1, 1), exact for |t| ≥ 1e-30 (t ≠ 0 means
            // |t| ≥ ulp(m)): two fast ops where the wasm Sign kernel is slow.
            let g = (native ? tf.sign(t) : tf.clipByValue(tf.mul(t, 1e30), -1, 1)) as tf.Tensor2D;
            if (W) g = tf.mul(g, W) as tf.Tensor2D;
            else if (kind.kind === 'uniform' && kind.r !== 1) g = tf.mul(g, kind.r) as tf.Tensor2D;
            if (I === J) {
              const gs = tf.mul(tf.add(g, tf.transpose(g)), 0.5) as tf.Tensor2D;
              return { scaled, cI: tf.matMul(gs, hB[kI]!) };
            }
            return { scaled, cI: tf.matMul(g, hB[kJ]!), cJ: tf.matMul(g, hB[kI]!, true, false) };
          });
          const key = mult * (kind.kind === 'uniform' ? kind.r : 1);
          if (!parts.has(key)) parts.set(key, []);
          parts.get(key)!.push(out.scaled);
          if (out.cI) addTo(kI, out.cI);
          if (out.cJ) addTo(kJ, out.cJ);
        }
        W?.dispose();
      }
      for (let b = 0; b < B; b++) flush(b * nb + I);
    }
    for (let k = 0; k < B * nb; k++) flush(k);
    const loss = tf.tidy(() => {
      let total: tf.Tensor = tf.scalar(0);
      for (const [mult, list] of parts) total = tf.add(total, tf.mul(list.length === 1 ? list[0]! : tf.addN(list), mult));
      return tf.mul(total, wRef) as tf.Scalar;
    });
    if (!wantGrad) return { loss };
    const grad = tf.tidy(() => {
      const blocks = acc.map((x, k) => x ?? tf.zeros([sizes[k % nb]!, Ds]));
      const dn = tf.mul(blocks.length === 1 ? blocks[0]! : tf.concat(blocks, 0), 2 * wRef);
      return tf.reshape(normalizeRowsBackward(dn, hs.n, hs.r, hs.live), [B, N, Ds]) as tf.Tensor3D;
    });
    return { loss, grad };
  } finally {
    tf.dispose(live);
    tf.dispose(acc.filter((x): x is tf.Tensor2D => !!x));
    tf.dispose(pending.flat());
    tf.dispose([...parts.values()].flat());
  }
}

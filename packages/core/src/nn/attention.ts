/**
 * Multi-head attention core: softmax(q·kᵀ·scale + mask)·v on `[B, heads, N, d]`, with optional q/k
 * normalisation and rotary hooks, and query chunking whose backward recomputes each chunk, so neither
 * the forward nor the backward ever holds more than one `[B, heads, chunk, Nk]` score block.
 */
import * as tf from '@tensorflow/tfjs';
import { applyRotary } from './rotary.js';
import { customOp } from './custom.js';

export interface AttentionOptions {
  /** score scale; default 1/√d (T5 uses 1) */
  scale?: number;
  /**
   * Additive mask / bias broadcastable to `[B, heads, Nq, Nk]` (rank ≤ 4; e.g. `[B, 1, 1, Nk]` key
   * padding, `[1, heads, Nq, Nk]` T5 position bias), or a bool tensor (true = attend). Treated as a
   * constant: no gradient flows into it.
   */
  mask?: tf.Tensor;
  /**
   * Queries per chunk. 'auto' (default) chunks only when the whole score tensor would exceed
   * `maxScoreElements`; a number forces that chunk size; 0/Infinity never chunks.
   */
  chunkSize?: number | 'auto';
  /** score-block budget for 'auto' (elements of `[B, heads, chunk, Nk]`); default 2^24 (64 MiB) */
  maxScoreElements?: number;
  /** applied to q `[B, heads, Nq, d]` before rotary (e.g. CogVideoX's LayerNorm over the head dim) */
  qNorm?: (q: tf.Tensor) => tf.Tensor;
  /** applied to k `[B, heads, Nk, d]` before rotary */
  kNorm?: (k: tf.Tensor) => tf.Tensor;
  /** rotary tables `[S − offset, d]` applied to q and k (see applyRotary) */
  rotary?: { cos: tf.Tensor; sin: tf.Tensor; offset?: number };
}

/** The most negative float32: additive value for masked positions (as transformers' finfo.min). */
export const MASK_MIN = -3.4028234663852886e38;

/** `[B, N, heads·d]` → `[B, heads, N, d]` */
export function splitHeads(x: tf.Tensor, heads: number): tf.Tensor {
  if (x.rank !== 3 || x.shape[2]! % heads !== 0)
    throw new Error(`splitHeads: expected [B, N, heads·d] with dim divisible by ${heads}, got [${x.shape.join(', ')}]`);
  const [b, n, c] = x.shape as [number, number, number];
  return tf.tidy(() => tf.transpose(tf.reshape(x, [b, n, heads, c / heads]), [0, 2, 1, 3]));
}

/** `[B, heads, N, d]` → `[B, N, heads·d]` */
export function mergeHeads(x: tf.Tensor): tf.Tensor {
  if (x.rank !== 4) throw new Error(`mergeHeads: expected [B, heads, N, d], got [${x.shape.join(', ')}]`);
  const [b, h, n, d] = x.shape as [number, number, number, number];
  return tf.tidy(() => tf.reshape(tf.transpose(x, [0, 2, 1, 3]), [b, n, h * d]));
}

/**
 * softmax(q·kᵀ·scale + mask)·v. q `[B, H, Nq, d]`, k `[B, H, Nk, d]`, v `[B, H, Nk, dv]` → `[B, H, Nq, dv]`.
 * Hooks run in the order qNorm/kNorm, then rotary.
 */
export function attention(q: tf.Tensor, k: tf.Tensor, v: tf.Tensor, opts: AttentionOptions = {}): tf.Tensor {
  if (q.rank !== 4 || k.rank !== 4 || v.rank !== 4)
    throw new Error(`attention: q, k, v must be [B, heads, N, d], got q [${q.shape.join(', ')}], k [${k.shape.join(', ')}], v [${v.shape.join(', ')}]`);
  const [b, h, nq, d] = q.shape as [number, number, number, number];
  const nk = k.shape[2]!;
  if (k.shape[0] !== b || k.shape[1] !== h || k.shape[3] !== d)
    throw new Error(`attention: k must be [${b}, ${h}, Nk, ${d}] to match q [${q.shape.join(', ')}], got [${k.shape.join(', ')}]`);
  if (v.shape[0] !== b || v.shape[1] !== h || v.shape[2] !== nk)
    throw new Error(`attention: v must be [${b}, ${h}, ${nk}, dv] to match k [${k.shape.join(', ')}], got [${v.shape.join(', ')}]`);
  const scale = opts.scale ?? 1 / Math.sqrt(d);
  const chunk = resolveChunk(opts, b, h, nq, nk);
  return tf.tidy(() => {
    let qq = opts.qNorm ? opts.qNorm(q) : q;
    let kk = opts.kNorm ? opts.kNorm(k) : k;
    if (opts.rotary) {
      qq = applyRotary(qq, opts.rotary.cos, opts.rotary.sin, { offset: opts.rotary.offset });
      kk = applyRotary(kk, opts.rotary.cos, opts.rotary.sin, { offset: opts.rotary.offset });
    }
    const mask = opts.mask ? normaliseMask(opts.mask, b, h, nq, nk) : null;
    if (chunk >= nq) return attentionDirect(qq, kk, v, scale, mask);
    return chunkedAttention(qq, kk, v, scale, mask, chunk);
  });
}

function resolveChunk(opts: AttentionOptions, b: number, h: number, nq: number, nk: number): number {
  const c = opts.chunkSize ?? 'auto';
  if (c === 'auto') {
    const budget = opts.maxScoreElements ?? 2 ** 24;
    if (b * h * nq * nk <= budget) return nq;
    return Math.max(1, Math.floor(budget / (b * h * nk)));
  }
  if (c === 0 || c === Infinity) return nq;
  if (!Number.isInteger(c) || c < 1) throw new Error(`attention: chunkSize must be a positive integer, 0 or 'auto', got ${c}`);
  return c;
}

function normaliseMask(mask: tf.Tensor, b: number, h: number, nq: number, nk: number): tf.Tensor {
  if (mask.rank > 4) throw new Error(`attention: mask must have rank ≤ 4, got [${mask.shape.join(', ')}]`);
  const shape = [...new Array(4 - mask.rank).fill(1), ...mask.shape];
  const full = [b, h, nq, nk];
  shape.forEach((s, i) => {
    if (s !== 1 && s !== full[i])
      throw new Error(`attention: mask [${mask.shape.join(', ')}] does not broadcast to scores [${full.join(', ')}]`);
  });
  const m = tf.reshape(mask, shape);
  if (m.dtype === 'bool') return tf.where(m, tf.zeros(shape), tf.fill(shape, MASK_MIN));
  return m.dtype === 'float32' ? m : tf.cast(m, 'float32');
}

function attentionDirect(q: tf.Tensor, k: tf.Tensor, v: tf.Tensor, scale: number, mask: tf.Tensor | null): tf.Tensor {
  let s = tf.matMul(tf.mul(q, scale), k, false, true);
  if (mask) s = tf.add(s, mask);
  return tf.matMul(tf.softmax(s), v);
}

function rows(x: tf.Tensor, r0: number, r1: number): tf.Tensor {
  return tf.slice(x, [0, 0, r0, 0], [-1, -1, r1 - r0, -1]);
}

function maskRows(mask: tf.Tensor | null, r0: number, r1: number): tf.Tensor | null {
  if (!mask || mask.shape[2] === 1) return mask;
  return rows(mask, r0, r1);
}

/**
 * Chunked attention as one custom-gradient op: the forward keeps only the output, the backward
 * recomputes each chunk's probabilities (flash-attention style):
 * dV += Pᵀ·dO, dP = dO·Vᵀ, dS = P∘(dP − rowsum(dO∘O)), dQ = dS·K·scale, dK += dSᵀ·(Q·scale).
 */
function chunkedAttention(q: tf.Tensor, k: tf.Tensor, v: tf.Tensor, scale: number, mask: tf.Tensor | null, chunk: number): tf.Tensor {
  const nq = q.shape[2]!;
  const probs = (qc: tf.Tensor, kk: tf.Tensor, mm: tf.Tensor | null, r0: number, r1: number) => {
    let s = tf.matMul(qc, kk, false, true);
    const m = maskRows(mm, r0, r1);
    if (m) s = tf.add(s, m);
    return tf.softmax(s);
  };
  const op = customOp(([qi, ki, vi], save) => {
    const outs: tf.Tensor[] = [];
    for (let r0 = 0; r0 < nq; r0 += chunk) {
      const r1 = Math.min(nq, r0 + chunk);
      outs.push(tf.tidy(() => tf.matMul(probs(tf.mul(rows(qi, r0, r1), scale), ki, mask, r0, r1), vi)));
    }
    const out = outs.length === 1 ? outs[0]! : tf.concat(outs, 2);
    save(mask ? [qi, ki, vi, out, mask] : [qi, ki, vi, out]);
    return {
      value: out,
      gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => {
        const [qs, ks, vs, os, ms] = saved as [tf.Tensor, tf.Tensor, tf.Tensor, tf.Tensor, tf.Tensor | undefined];
        let dk = tf.zerosLike(ks);
        let dv = tf.zerosLike(vs);
        const dqs: tf.Tensor[] = [];
        for (let r0 = 0; r0 < nq; r0 += chunk) {
          const r1 = Math.min(nq, r0 + chunk);
          const [dq, dkNew, dvNew] = tf.tidy(() => {
            const qc = tf.mul(rows(qs, r0, r1), scale);
            const p = probs(qc, ks, ms ?? null, r0, r1);
            const doc = rows(dy, r0, r1);
            const dvAcc = tf.add(dv, tf.matMul(p, doc, true, false));
            const dp = tf.matMul(doc, vs, false, true);
            const rowDot = tf.sum(tf.mul(doc, rows(os, r0, r1)), -1, true);
            const ds = tf.mul(p, tf.sub(dp, rowDot));
            const dqc = tf.mul(tf.matMul(ds, ks), scale);
            const dkAcc = tf.add(dk, tf.matMul(ds, qc, true, false));
            return [dqc, dkAcc, dvAcc];
          });
          dk.dispose();
          dv.dispose();
          dk = dkNew!;
          dv = dvNew!;
          dqs.push(dq!);
        }
        const dq = dqs.length === 1 ? dqs[0]! : tf.concat(dqs, 2);
        return [dq, dk, dv];
      },
    };
  });
  return op(q, k, v);
}

/**
 * Multi-head attention core: softmax(q·kᵀ·scale + mask)·v on `[B, heads, N, d]`, with optional q/k
 * normalisation and rotary hooks, and query chunking whose backward recomputes each chunk, so neither
 * the forward nor the backward ever holds more than one `[B, heads, chunk, Nk]` score block.
 */
import * as tf from '@tensorflow/tfjs';
import { applyRotary } from './rotary.js';
import { customOp, leanReshape } from './custom.js';

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
   * Queries per block. 'auto' (default) splits only when the whole score tensor would exceed
   * `maxScoreElements`: then into blocks of (batch·head) groups × query chunks of at least
   * `minChunk` queries; a number forces that query chunk (all heads at once unless `headsPerChunk`);
   * 0/Infinity never chunks.
   */
  chunkSize?: number | 'auto';
  /** (batch·head) slices per block; default: as many as the budget allows ('auto') or all (explicit chunkSize) */
  headsPerChunk?: number;
  /** score-block budget for 'auto' (elements of one `[heads, chunk, Nk]` block); default 2^24 (64 MiB) */
  maxScoreElements?: number;
  /** 'auto': smallest query chunk (small chunks make slow matmuls); default 256 */
  minChunk?: number;
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
  return tf.tidy(() => tf.transpose(leanReshape(x, [b, n, heads, c / heads]), [0, 2, 1, 3]));
}

/** `[B, heads, N, d]` → `[B, N, heads·d]` */
export function mergeHeads(x: tf.Tensor): tf.Tensor {
  if (x.rank !== 4) throw new Error(`mergeHeads: expected [B, heads, N, d], got [${x.shape.join(', ')}]`);
  const [b, h, n, d] = x.shape as [number, number, number, number];
  return tf.tidy(() => leanReshape(tf.transpose(x, [0, 2, 1, 3]), [b, n, h * d]));
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
  const plan = resolvePlan(opts, b * h, nq, nk);
  return tf.tidy(() => {
    let qq = opts.qNorm ? opts.qNorm(q) : q;
    let kk = opts.kNorm ? opts.kNorm(k) : k;
    if (opts.rotary) {
      qq = applyRotary(qq, opts.rotary.cos, opts.rotary.sin, { offset: opts.rotary.offset });
      kk = applyRotary(kk, opts.rotary.cos, opts.rotary.sin, { offset: opts.rotary.offset });
    }
    const mask = opts.mask ? normaliseMask(opts.mask, b, h, nq, nk) : null;
    if (!plan) return attentionDirect(qq, kk, v, scale, mask);
    // blocks work on [B·H, N, d]; a mask that varies over batch or head is broadcast to [B·H, mq, Nk]
    const m3 = !mask ? null : mask.shape[0] === 1 && mask.shape[1] === 1 ? leanReshape(mask, mask.shape.slice(1)) : leanReshape(tf.broadcastTo(mask, [b, h, mask.shape[2]!, nk]), [b * h, mask.shape[2]!, nk]);
    const out = blockedAttention(leanReshape(qq, [b * h, nq, d]), leanReshape(kk, [b * h, nk, d]), leanReshape(v, [b * h, nk, v.shape[3]!]), scale, m3, plan);
    return leanReshape(out, [b, h, nq, v.shape[3]!]);
  });
}

interface BlockPlan {
  /** (batch·head) slices per block */
  groups: number;
  /** queries per block */
  chunk: number;
}

/** null: one direct computation. */
function resolvePlan(opts: AttentionOptions, bh: number, nq: number, nk: number): BlockPlan | null {
  const c = opts.chunkSize ?? 'auto';
  const budget = opts.maxScoreElements ?? 2 ** 24;
  const hp = opts.headsPerChunk;
  if (hp !== undefined && (!Number.isInteger(hp) || hp < 1)) throw new Error(`attention: headsPerChunk must be a positive integer, got ${hp}`);
  if (c === 'auto') {
    if (bh * nq * nk <= budget && hp === undefined) return null;
    const chunk = Math.min(nq, Math.max(opts.minChunk ?? 256, Math.floor(budget / nk)));
    const groups = Math.min(bh, hp ?? Math.max(1, Math.floor(budget / (chunk * nk))));
    return { groups, chunk };
  }
  if (c === 0 || c === Infinity) return hp === undefined ? null : { groups: Math.min(bh, hp), chunk: nq };
  if (!Number.isInteger(c) || c < 1) throw new Error(`attention: chunkSize must be a positive integer, 0 or 'auto', got ${c}`);
  return { groups: Math.min(bh, hp ?? bh), chunk: Math.min(c, nq) };
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

/** rows [r0, r1) of axis 1 and slices [g0, g1) of axis 0 of a rank-3 tensor */
function block(x: tf.Tensor, g0: number, g1: number, r0: number, r1: number): tf.Tensor {
  if (g0 === 0 && g1 === x.shape[0] && r0 === 0 && r1 === x.shape[1]) return x;
  return tf.slice(x, [g0, r0, 0], [g1 - g0, r1 - r0, -1]);
}

/**
 * Blocked attention on `[BH, N, d]` as one custom-gradient op. Blocks are (batch·head) groups × query
 * chunks; the forward keeps only the output, the backward recomputes each block's probabilities
 * (flash-attention style): dV += Pᵀ·dO, dP = dO·Vᵀ, dS = P∘(dP − rowsum(dO∘O)), dQ = dS·K·scale,
 * dK += dSᵀ·(Q·scale). `mask` is `[1 | BH, 1 | Nq, Nk]`.
 */
function blockedAttention(q: tf.Tensor, k: tf.Tensor, v: tf.Tensor, scale: number, mask: tf.Tensor | null, plan: BlockPlan): tf.Tensor {
  const [bh, nq] = q.shape as [number, number, number];
  const { groups, chunk } = plan;
  const maskBlock = (m: tf.Tensor | null, g0: number, g1: number, r0: number, r1: number) => {
    if (!m) return null;
    const [mg, mq] = m.shape as [number, number, number];
    return block(m, mg === 1 ? 0 : g0, mg === 1 ? 1 : g1, mq === 1 ? 0 : r0, mq === 1 ? 1 : r1);
  };
  const probs = (qc: tf.Tensor, kg: tf.Tensor, mb: tf.Tensor | null) => {
    let s = tf.matMul(qc, kg, false, true);
    if (mb) s = tf.add(s, mb);
    return tf.softmax(s);
  };
  const op = customOp(([qi, ki, vi], save) => {
    const groupOuts: tf.Tensor[] = [];
    for (let g0 = 0; g0 < bh; g0 += groups) {
      const g1 = Math.min(bh, g0 + groups);
      groupOuts.push(
        tf.tidy(() => {
          const kg = block(ki!, g0, g1, 0, ki!.shape[1]!);
          const vg = block(vi!, g0, g1, 0, vi!.shape[1]!);
          const outs: tf.Tensor[] = [];
          for (let r0 = 0; r0 < nq; r0 += chunk) {
            const r1 = Math.min(nq, r0 + chunk);
            outs.push(tf.tidy(() => tf.matMul(probs(tf.mul(block(qi!, g0, g1, r0, r1), scale), kg, maskBlock(mask, g0, g1, r0, r1)), vg)));
          }
          return outs.length === 1 ? outs[0]! : tf.concat(outs, 1);
        }),
      );
    }
    const out = groupOuts.length === 1 ? groupOuts[0]! : tf.concat(groupOuts, 0);
    save(mask ? [qi!, ki!, vi!, out, mask] : [qi!, ki!, vi!, out]);
    return {
      value: out,
      gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => {
        const [qs, ks, vs, os, ms] = saved as [tf.Tensor, tf.Tensor, tf.Tensor, tf.Tensor, tf.Tensor | undefined];
        const dqs: tf.Tensor[] = [];
        const dks: tf.Tensor[] = [];
        const dvs: tf.Tensor[] = [];
        for (let g0 = 0; g0 < bh; g0 += groups) {
          const g1 = Math.min(bh, g0 + groups);
          const kg = block(ks, g0, g1, 0, ks.shape[1]!);
          const vg = block(vs, g0, g1, 0, vs.shape[1]!);
          let dk = tf.zerosLike(kg);
          let dv = tf.zerosLike(vg);
          const dqg: tf.Tensor[] = [];
          for (let r0 = 0; r0 < nq; r0 += chunk) {
            const r1 = Math.min(nq, r0 + chunk);
            const [dq, dkNew, dvNew] = tf.tidy(() => {
              const qc = tf.mul(block(qs, g0, g1, r0, r1), scale);
              const p = probs(qc, kg, maskBlock(ms ?? null, g0, g1, r0, r1));
              const doc = block(dy, g0, g1, r0, r1);
              const dvAcc = tf.add(dv, tf.matMul(p, doc, true, false));
              const dp = tf.matMul(doc, vg, false, true);
              const rowDot = tf.sum(tf.mul(doc, block(os, g0, g1, r0, r1)), -1, true);
              const ds = tf.mul(p, tf.sub(dp, rowDot));
              const dqc = tf.mul(tf.matMul(ds, kg), scale);
              const dkAcc = tf.add(dk, tf.matMul(ds, qc, true, false));
              return [dqc, dkAcc, dvAcc];
            });
            dk.dispose();
            dv.dispose();
            dk = dkNew!;
            dv = dvNew!;
            dqg.push(dq!);
          }
          if (kg !== ks) kg.dispose();
          if (vg !== vs) vg.dispose();
          dqs.push(dqg.length === 1 ? dqg[0]! : tf.concat(dqg, 1));
          dks.push(dk);
          dvs.push(dv);
        }
        const cat = (xs: tf.Tensor[]) => (xs.length === 1 ? xs[0]! : tf.concat(xs, 0));
        return [cat(dqs), cat(dks), cat(dvs)];
      },
    };
  });
  return op(q, k, v);
}

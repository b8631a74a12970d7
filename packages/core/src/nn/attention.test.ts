import * as tf from '@tensorflow/tfjs';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { attention, mergeHeads, splitHeads } from './attention.js';
import { applyRotary, applyRotaryReference } from './rotary.js';
import { layerNorm } from './norm.js';
import { tensorLeakAcross } from '../leaks.js';
import { gradCheck, maxAbs, maxAbsDiff, rand } from './testutil.js';

/** Plain float64 attention on host arrays for one (batch, head): the independent expectation. */
function hostAttention(q: number[][], k: number[][], v: number[][], scale: number, bias?: number[][]): number[][] {
  return q.map((qi, i) => {
    const s = k.map((kj, j) => qi.reduce((a, x, t) => a + x * kj[t]!, 0) * scale + (bias ? bias[i]![j]! : 0));
    const m = Math.max(...s);
    const e = s.map((x) => Math.exp(x - m));
    const z = e.reduce((a, b) => a + b, 0);
    return v[0]!.map((_, c) => e.reduce((a, w, j) => a + (w / z) * v[j]![c]!, 0));
  });
}

describe('attention', () => {
  it('matches a float64 host computation of softmax(q kᵀ/√d) v, per batch and head', () => {
    const [B, H, N, M, d, dv] = [2, 3, 5, 7, 4, 6];
    const q = rand([B, H, N, d], 1);
    const k = rand([B, H, M, d], 2);
    const v = rand([B, H, M, dv], 3);
    const got = attention(q, k, v).arraySync() as number[][][][];
    const [qa, ka, va] = [q, k, v].map((t) => t.arraySync() as number[][][][]);
    for (let b = 0; b < B; b++)
      for (let h = 0; h < H; h++) {
        const want = hostAttention(qa![b]![h]!, ka![b]![h]!, va![b]![h]!, 1 / Math.sqrt(d));
        want.forEach((row, i) => row.forEach((x, c) => expect(Math.abs(got[b]![h]![i]![c]! - x)).toBeLessThan(1e-5)));
      }
    tf.dispose([q, k, v]);
  });

  it('softmax rows sum to 1 (v = ones gives ones); one key returns v', () => {
    const q = rand([1, 2, 9, 8], 4, 3);
    const k = rand([1, 2, 9, 8], 5, 3);
    const ones = attention(q, k, tf.ones([1, 2, 9, 1]), { chunkSize: 4 });
    expect(maxAbsDiff(ones, tf.ones([1, 2, 9, 1]))).toBeLessThan(1e-6);
    const v1 = rand([1, 2, 1, 5], 6);
    const out = attention(q, rand([1, 2, 1, 8], 7), v1);
    expect(maxAbsDiff(out, tf.broadcastTo(v1, [1, 2, 9, 5]))).toBeLessThan(1e-6);
  });

  it('chunked equals unchunked, forward and gradients, for any chunk size and masks', () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 13 }), fc.integer({ min: 1, max: 11 }), fc.integer({ min: 1, max: 14 }), fc.constantFrom('none', 'keys', 'full', 'bool'), fc.option(fc.integer({ min: 1, max: 5 })), fc.nat(), (n, m, chunk, maskKind, heads, seed) => {
        tf.tidy(() => {
          const q = rand([2, 2, n, 4], seed);
          const k = rand([2, 2, m, 4], seed + 1);
          const v = rand([2, 2, m, 3], seed + 2);
          const mask =
            maskKind === 'keys'
              ? tf.concat([tf.zeros([2, 1, 1, 1]), rand([2, 1, 1, m - 1], seed + 3)], 3).reshape([2, 1, 1, m])
              : maskKind === 'full'
                ? rand([1, 2, n, m], seed + 4)
                : maskKind === 'bool'
                  ? tf.logicalOr(tf.greater(rand([2, 1, n, m], seed + 5), -0.5), tf.tensor4d(Array.from({ length: n * m }, (_, i) => (i % m === 0 ? 1 : 0)), [1, 1, n, m], 'bool'))
                  : undefined;
          const r = rand([2, 2, n, 3], seed + 6);
          const f = (c: number | 'auto') => (a: tf.Tensor, b: tf.Tensor, cc: tf.Tensor) => attention(a, b, cc, { mask, chunkSize: c, headsPerChunk: c === 0 ? undefined : (heads ?? undefined) });
          const full = f(0)(q, k, v);
          const part = f(chunk)(q, k, v);
          expect(maxAbsDiff(full, part)).toBeLessThan(1e-5);
          const g = (c: number) => tf.grads((a: tf.Tensor, b: tf.Tensor, cc: tf.Tensor) => tf.sum(tf.mul(f(c)(a, b, cc), r)))([q, k, v]);
          const gf = g(0);
          const gc = g(chunk);
          gf.forEach((t, i) => expect(maxAbsDiff(t, gc[i]!)).toBeLessThan(2e-5 * Math.max(1, maxAbs(t))));
        });
      }),
      { numRuns: 40 },
    );
  });

  it("'auto' splits into (batch·head) groups × query chunks within the budget, same result", () => {
    const q = rand([2, 3, 40, 4], 14);
    const k = rand([2, 3, 30, 4], 15);
    const v = rand([2, 3, 30, 5], 16);
    const mask = rand([2, 3, 40, 30], 17); // varies over batch and head
    const r = rand([2, 3, 40, 5], 18);
    const run = (o: object) => tf.grads((a: tf.Tensor, b: tf.Tensor, c: tf.Tensor) => tf.sum(tf.mul(attention(a, b, c, { mask, ...o }), r)))([q, k, v]);
    const want = run({ chunkSize: 0 });
    for (const o of [{ maxScoreElements: 600, minChunk: 8 }, { maxScoreElements: 100, minChunk: 1 }, { chunkSize: 0, headsPerChunk: 4 }, { chunkSize: 7, headsPerChunk: 2 }]) {
      const got = run(o);
      got.forEach((g, i) => expect(maxAbsDiff(g, want[i]!), JSON.stringify(o)).toBeLessThan(2e-5));
      expect(maxAbsDiff(attention(q, k, v, { mask, ...o }), attention(q, k, v, { mask }))).toBeLessThan(1e-5);
    }
    expect(() => attention(q, k, v, { headsPerChunk: 0 })).toThrow(/headsPerChunk must be a positive integer/);
  });

  it('chunked gradient matches finite differences', () => {
    const q = rand([1, 2, 10, 4], 11);
    const k = rand([1, 2, 10, 4], 12);
    const v = rand([1, 2, 10, 4], 13);
    expect(gradCheck((a, b, c) => attention(a, b, c, { chunkSize: 3 }), [q, k, v])).toBeLessThan(5e-3);
    tf.dispose([q, k, v]);
  });

  it('masked keys (bool false or additive −∞-like) have no effect', () => {
    const q = rand([1, 1, 4, 4], 21);
    const k = rand([1, 1, 6, 4], 22);
    const v = rand([1, 1, 6, 2], 23);
    const keep = tf.tensor4d([1, 1, 0, 1, 0, 1], [1, 1, 1, 6]).cast('bool');
    const got = attention(q, k, v, { mask: keep, chunkSize: 3 });
    const idx = tf.tensor1d([0, 1, 3, 5], 'int32');
    const want = attention(q, tf.gather(k, idx, 2), tf.gather(v, idx, 2));
    expect(maxAbsDiff(got, want)).toBeLessThan(1e-6);
  });

  it('scale, qNorm/kNorm and rotary hooks are applied before the scores', () => {
    const q = rand([1, 2, 5, 8], 31);
    const k = rand([1, 2, 5, 8], 32);
    const v = rand([1, 2, 5, 8], 33);
    const cos = rand([3, 8], 34);
    const sin = rand([3, 8], 35);
    const norm = (x: tf.Tensor) => layerNorm(x, null, null, 1e-6);
    const got = attention(q, k, v, { scale: 0.3, qNorm: norm, kNorm: norm, rotary: { cos, sin, offset: 2 } });
    const rq = applyRotary(norm(q), cos, sin, { offset: 2 });
    const rk = applyRotary(norm(k), cos, sin, { offset: 2 });
    const want = tf.matMul(tf.softmax(tf.mul(tf.matMul(rq, rk, false, true), 0.3)), v);
    expect(maxAbsDiff(got, want)).toBeLessThan(1e-5);
  });

  it('never materialises more than one score chunk: peak bytes ≤ 25% of unchunked, forward and backward', async () => {
    const [N, d] = [1024, 16];
    const q = rand([1, 2, N, d], 41);
    const k = rand([1, 2, N, d], 42);
    const v = rand([1, 2, N, d], 43);
    const fwd = async (opts: object) => (await tf.profile(() => attention(q, k, v, opts).dispose())).peakBytes;
    const bwd = async (opts: object) =>
      (await tf.profile(() => tf.dispose(tf.grads((a: tf.Tensor, b: tf.Tensor, c: tf.Tensor) => tf.sum(attention(a, b, c, opts)))([q, k, v])))).peakBytes;
    const full = 2 * N * N * 4; // bytes of one [1, 2, N, N] score tensor
    const [f0, f1, b0, b1] = [await fwd({ chunkSize: 0 }), await fwd({ chunkSize: 64 }), await bwd({ chunkSize: 0 }), await bwd({ chunkSize: 64 })];
    expect(f0).toBeGreaterThanOrEqual(full);
    expect(f1).toBeLessThan(0.25 * f0);
    expect(b1).toBeLessThan(0.25 * b0);
    expect(b1).toBeLessThan(full); // less than ONE full score tensor
    // 'auto' chunks once the score tensor exceeds the budget
    expect(await fwd({ maxScoreElements: 2 ** 16 })).toBeLessThan(0.25 * f0);
    tf.dispose([q, k, v]);
  });

  it('names bad shapes', () => {
    const q = tf.zeros([1, 2, 3, 4]);
    expect(() => attention(q, tf.zeros([1, 2, 3, 5]), tf.zeros([1, 2, 3, 4]))).toThrow(/k must be \[1, 2, Nk, 4\]/);
    expect(() => attention(q, q, q, { mask: tf.zeros([2, 1, 1, 3]) })).toThrow(/mask \[2, 1, 1, 3\] does not broadcast to scores \[1, 2, 3, 3\]/);
  });

  it('splitHeads / mergeHeads invert each other', () => {
    const x = rand([2, 5, 12], 51);
    const h = splitHeads(x, 3);
    expect(h.shape).toEqual([2, 3, 5, 4]);
    expect(maxAbsDiff(mergeHeads(h), x)).toBe(0);
    // head 1 of token 2 is channels 4..7
    expect(maxAbsDiff(h.slice([0, 1, 2, 0], [1, 1, 1, 4]).reshape([4]), x.slice([0, 2, 4], [1, 1, 4]).reshape([4]))).toBe(0);
  });

  it('leaks no tensors, chunked and not, forward and backward', async () => {
    const q = rand([1, 2, 6, 4], 61);
    const mask = tf.zeros([1, 1, 6, 6]);
    for (const chunkSize of [0, 4]) {
      expect(await tensorLeakAcross(() => attention(q, q, q, { chunkSize, mask }))).toBe(0);
      expect(await tensorLeakAcross(() => tf.grads((a: tf.Tensor, b: tf.Tensor) => tf.sum(attention(a, b, b, { chunkSize, mask })))([q, q]))).toBe(0);
    }
    tf.dispose([q, mask]);
  });
});

describe('applyRotary', () => {
  it('rotates adjacent channel pairs: [1, 0] by θ → [cos θ, sin θ]; [0, 1] → [−sin θ, cos θ]', () => {
    const th = 0.7;
    const x = tf.tensor4d([1, 0, 0, 1], [1, 1, 1, 4]);
    const cos = tf.fill([1, 4], Math.cos(th));
    const sin = tf.fill([1, 4], Math.sin(th));
    const y = applyRotary(x, cos, sin).dataSync();
    [Math.cos(th), Math.sin(th), -Math.sin(th), Math.cos(th)].forEach((v, i) => expect(y[i]).toBeCloseTo(v, 6));
  });

  it('equals the literal diffusers formula (unbind pairs, stack(−imag, real)) and its gradient', () => {
    const x = rand([2, 3, 5, 8], 71);
    const cos = rand([5, 8], 72);
    const sin = rand([5, 8], 73);
    expect(maxAbsDiff(applyRotary(x, cos, sin), applyRotaryReference(x, cos, sin))).toBeLessThan(1e-6);
    const r = rand([2, 3, 5, 8], 74);
    const g = tf.grad((a: tf.Tensor) => tf.sum(tf.mul(applyRotary(a, cos, sin), r)))(x);
    const gr = tf.grad((a: tf.Tensor) => tf.sum(tf.mul(applyRotaryReference(a, cos, sin), r)))(x);
    expect(maxAbsDiff(g, gr)).toBeLessThan(1e-6);
  });

  it('scores of rotated q, k depend only on the position difference', () => {
    const d = 8;
    const freqs = [1, 0.3, 0.1, 0.01];
    const table = (pos: number[]) => {
      const c: number[] = [];
      const s: number[] = [];
      for (const p of pos) for (const f of freqs) c.push(Math.cos(p * f), Math.cos(p * f)), s.push(Math.sin(p * f), Math.sin(p * f));
      return [tf.tensor2d(c, [pos.length, d]), tf.tensor2d(s, [pos.length, d])] as const;
    };
    const q = rand([1, 1, 1, d], 81);
    const k = rand([1, 1, 1, d], 82);
    const dot = (m: number, n: number) => {
      const [cm, sm] = table([m]);
      const [cn, sn] = table([n]);
      return tf.sum(tf.mul(applyRotary(q, cm, sm), applyRotary(k, cn, sn))).dataSync()[0]!;
    };
    expect(dot(5, 2)).toBeCloseTo(dot(13, 10), 4);
    expect(dot(0, 7)).toBeCloseTo(dot(3, 10), 4);
  });

  it('leaves the first `offset` tokens unchanged', () => {
    const x = rand([1, 2, 5, 4], 91);
    const y = applyRotary(x, rand([3, 4], 92), rand([3, 4], 93), { offset: 2 });
    expect(maxAbsDiff(y.slice([0, 0, 0, 0], [1, 2, 2, 4]), x.slice([0, 0, 0, 0], [1, 2, 2, 4]))).toBe(0);
    expect(() => applyRotary(x, tf.zeros([5, 4]), tf.zeros([5, 4]), { offset: 2 })).toThrow(/cos must be \[3, 4\]/);
  });
});

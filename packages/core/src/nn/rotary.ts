/**
 * Rotary position embedding, the diffusers convention CogVideoX uses (`apply_rotary_emb` with
 * use_real=True, use_real_unbind_dim=-1): channels form adjacent pairs (x[2i], x[2i+1]) rotated by the
 * angle whose cos/sin sit (repeat-interleaved) at columns 2i and 2i+1 of the tables:
 *   out[2i]   = x[2i]·cos[2i]     − x[2i+1]·sin[2i]
 *   out[2i+1] = x[2i+1]·cos[2i+1] + x[2i]·sin[2i+1]
 */
import * as tf from '@tensorflow/tfjs';
import { customOp } from './custom.js';

export interface RotaryOptions {
  /** tokens before this index are left unchanged (CogVideoX: the text tokens come first); default 0 */
  offset?: number;
}

/**
 * Apply rotary embedding to `x` `[B, heads, S, D]` with `cos`, `sin` `[S − offset, D]` (D even).
 * Implemented as x·cos + swapPairs(x)·(±sin): one reverse over pairs and three elementwise ops, no
 * slicing. Differentiable in `x`; the tables are constants (no gradient flows into cos / sin).
 */
export function applyRotary(x: tf.Tensor, cos: tf.Tensor, sin: tf.Tensor, opts: RotaryOptions = {}): tf.Tensor {
  const offset = opts.offset ?? 0;
  if (x.rank !== 4) throw new Error(`applyRotary: x must be [B, heads, S, D], got [${x.shape.join(', ')}]`);
  const [, , s, d] = x.shape as [number, number, number, number];
  if (d % 2 !== 0) throw new Error(`applyRotary: head dim must be even, got ${d}`);
  const want = [s - offset, d];
  for (const [t, n] of [
    [cos, 'cos'],
    [sin, 'sin'],
  ] as const)
    if (t.rank !== 2 || t.shape[0] !== want[0] || t.shape[1] !== want[1])
      throw new Error(`applyRotary: ${n} must be [${want.join(', ')}] for x [${x.shape.join(', ')}] with offset ${offset}, got [${t.shape.join(', ')}]`);
  return rotaryOp(x, cos, sin, offset);
}

/** Swap the channels of each adjacent pair: [a, b, c, d] → [b, a, d, c] (its own inverse and transpose). */
const swapPairs = (x: tf.Tensor, d: number) => tf.reshape(tf.reverse(tf.reshape(x, [-1, d / 2, 2]), -1), x.shape);

/**
 * y = x·c + swap(x)·s with s = sin·(−1, +1, …): one op whose gradient dx = dy·c + swap(dy·s) saves only
 * the two `[S, D]` tables, not the `[B, heads, S, D]` activations the autodiff chain keeps.
 */
function rotaryOp(x: tf.Tensor, cos: tf.Tensor, sin: tf.Tensor, offset: number): tf.Tensor {
  const d = x.shape[3]!;
  return customOp(([xi], save) => {
    // sign pattern (−1, +1, −1, +1, …) folded into sin
    const sign = tf.tensor1d(Float32Array.from({ length: d }, (_, i) => (i % 2 === 0 ? -1 : 1)));
    let c = cos;
    let sn = tf.mul(sin, sign);
    if (offset > 0) {
      c = tf.concat([tf.ones([offset, d]), c], 0);
      sn = tf.concat([tf.zeros([offset, d]), sn], 0);
    }
    save([c, sn]);
    return {
      value: tf.add(tf.mul(xi!, c), tf.mul(swapPairs(xi!, d), sn)),
      gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => [() => tf.add(tf.mul(dy, saved[0]!), swapPairs(tf.mul(dy, saved[1]!), d))],
    };
  })(x);
}

/** The literal diffusers formula (unbind pairs, stack(−imag, real)), the reference for tests. */
export function applyRotaryReference(x: tf.Tensor, cos: tf.Tensor, sin: tf.Tensor): tf.Tensor {
  return tf.tidy(() => {
    const d = x.shape[3]!;
    const pairs = tf.reshape(x, [...x.shape.slice(0, 3), d / 2, 2]);
    const [re, im] = tf.unstack(pairs, 4) as [tf.Tensor, tf.Tensor];
    const rotated = tf.reshape(tf.stack([tf.neg(im), re], -1), x.shape);
    return tf.add(tf.mul(x, cos), tf.mul(rotated, sin));
  });
}

import * as tf from '@tensorflow/tfjs';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { attention, mergeHeads, splitHeads } from './attention.js';
import { gelu, geluTanh, silu } from './activations.js';
import { leanAdd, leanConcat, leanReshape } from './custom.js';
import { Linear, linear, linearReference } from './linear.js';
import { savedForBackward } from './memory.js';
import { MLP } from './mlp.js';
import { LayerNorm } from './norm.js';
import { tensorLeakAcross } from '../leaks.js';
import { maxAbsDiff, rand } from './testutil.js';

/** Bytes the tape keeps after `forward` (inputs and parameters excluded), under tf.variableGrads. */
function heldBytes(forward: () => tf.Tensor, vars: tf.Variable[], exclude: tf.Tensor[]): number {
  let held = -1;
  const g = tf.variableGrads(() => {
    const y = forward();
    held = savedForBackward([...exclude, ...vars]).bytes;
    return tf.sum(y) as tf.Scalar;
  }, vars);
  tf.dispose([g.value, ...Object.values(g.grads)]);
  return held;
}

describe('memory held from forward to backward', () => {
  it('MLP fc1 → GELU → fc2 keeps exactly fc1(x) and gelu(fc1(x)) (the autodiff form keeps more)', () => {
    const [N, inF, hidden] = [37, 16, 64];
    const m = new MLP(inF, hidden, { activation: 'gelu' });
    const x = rand([1, N, inF], 1);
    const vars = m.parameters();
    // by hand: GELU's backward needs its input h = fc1(x) [N, hidden]; fc2's weight gradient needs gelu(h) [N, hidden]
    const bound = 2 * N * hidden * 4;
    expect(heldBytes(() => m.forward(x), vars, [x])).toBe(bound);
    // the same MLP from the autodiff ops: matMul outputs kept for the bias adds, the activation's chain
    const p = (n: string) => m.namedParameters().find(([k]) => k === n)![1].value;
    const ref = () => linearReference(tf.mul(tf.sigmoid(tf.mul(linearReference(x, p('fc1.weight'), p('fc1.bias')), 1.702)), 1), p('fc2.weight'), p('fc2.bias'));
    expect(heldBytes(ref, vars, [x])).toBeGreaterThan(bound);
    m.dispose();
  });

  it('attention block (to_q/k/v → heads → QK LayerNorm → blocked attention → to_out) keeps 7·N·D + 2·B·H·N floats', () => {
    const [B, N, H, d] = [1, 50, 4, 8];
    const D = H * d;
    const lin = ['to_q', 'to_k', 'to_v', 'to_out'].map(() => new Linear(D, D));
    const [nq, nk] = [new LayerNorm(d, { eps: 1e-6 }), new LayerNorm(d, { eps: 1e-6 })];
    const x = rand([B, N, D], 2);
    const vars = [...lin.flatMap((l) => l.parameters()), ...nq.parameters(), ...nk.parameters()];
    const block = () => {
      const [q, k, v] = lin.slice(0, 3).map((l) => splitHeads(l.forward(x), H));
      const o = attention(q!, k!, v!, { qNorm: (t) => nq.forward(t), kNorm: (t) => nk.forward(t), chunkSize: 16 });
      return lin[3]!.forward(mergeHeads(o));
    };
    // by hand: LayerNorm x̂ and 1/σ of q and k (2·N·D + 2·B·H·N), attention's q, k, v and output (4·N·D),
    // to_out's input, the merged heads (N·D)
    const bound = (7 * B * N * D + 2 * B * H * N) * 4;
    expect(heldBytes(block, vars, [x])).toBeLessThanOrEqual(bound);
    [...lin, nq, nk].forEach((m) => m.dispose());
  });

  it('a frozen weight gets no gradient work: linear backward for x alone runs one matMul, not two', async () => {
    const x = rand([8, 6], 3);
    const w = rand([6, 5], 4);
    const b = rand([5], 5);
    const count = async (f: () => tf.Tensor) => (await tf.profile(() => f())).kernels.filter((k) => k.name === 'BatchMatMul').length;
    const gx = (lin: typeof linear) => () => tf.grad((a: tf.Tensor) => tf.sum(lin(a, w, b)))(x);
    expect(await count(gx(linearReference))).toBe(2); // forward + dx: tfjs' own kernel gradients are lazy
    expect(await count(gx(linear))).toBe(2);
    expect(maxAbsDiff(gx(linear)(), gx(linearReference)())).toBeLessThan(1e-5);
    expect(await tensorLeakAcross(gx(linear))).toBe(0);
  });

  it('activations keep only their input', () => {
    const x = rand([3, 40], 6);
    for (const act of [gelu, geluTanh, silu]) {
      const v = tf.variable(x);
      // act(v + 0): the sum is a fresh buffer (v itself is excluded as a parameter); leanAdd saves nothing
      expect(heldBytes(() => act(leanAdd(v, tf.scalar(0))), [v], [])).toBe(x.size * 4);
      v.dispose();
    }
  });

  it('leanAdd / leanConcat / leanReshape: same values and gradients as tf.add / tf.concat / tf.reshape, nothing saved', () => {
    fc.assert(
      fc.property(fc.array(fc.integer({ min: 1, max: 4 }), { minLength: 1, maxLength: 4 }), fc.array(fc.boolean(), { minLength: 4, maxLength: 4 }), fc.nat(), (shape, ones, seed) => {
        tf.tidy(() => {
          const a = rand(shape, seed);
          const b = rand(shape.map((s, i) => (ones[i] ? 1 : s)).slice(shape.length > 1 && ones[3] ? 1 : 0), seed + 1);
          const r = rand(shape, seed + 2);
          const f = (add: typeof tf.add) => (p: tf.Tensor, q: tf.Tensor) => tf.sum(tf.mul(add(p, q), r));
          const [ga, gb] = tf.grads(f(leanAdd as typeof tf.add))([a, b]);
          const [wa, wb] = tf.grads(f(tf.add))([a, b]);
          expect(maxAbsDiff(leanAdd(a, b), tf.add(a, b))).toBe(0);
          expect(maxAbsDiff(ga!, wa!)).toBeLessThan(1e-5);
          expect(maxAbsDiff(gb!, wb!)).toBeLessThan(1e-5);
          const axis = seed % shape.length;
          const c = rand(shape.map((s, i) => (i === axis ? s + 1 : s)), seed + 3);
          const rc = rand(shape.map((s, i) => (i === axis ? 2 * s + 1 : s)), seed + 4);
          const cat = (cc: typeof tf.concat) => (p: tf.Tensor, q: tf.Tensor) => tf.sum(tf.mul(cc([p, q], axis), rc));
          expect(maxAbsDiff(leanConcat([a, c], axis), tf.concat([a, c], axis))).toBe(0);
          const [la, lc] = tf.grads(cat(leanConcat as typeof tf.concat))([a, c]);
          const [ta, tc] = tf.grads(cat(tf.concat))([a, c]);
          expect(maxAbsDiff(la!, ta!) + maxAbsDiff(lc!, tc!)).toBe(0);
          const flat = (p: tf.Tensor) => tf.sum(tf.mul(leanReshape(p, [-1]), tf.reshape(r, [-1])));
          expect(maxAbsDiff(tf.grad(flat)(a), r)).toBe(0);
        });
      }),
      { numRuns: 25 },
    );
    const a = tf.variable(rand([4, 6], 7));
    const b = tf.variable(rand([6], 8));
    expect(heldBytes(() => leanConcat([leanReshape(leanAdd(a, b), [6, 4]), a.reshape([6, 4])], 0), [a, b], [])).toBe(0);
    expect(() => leanReshape(a, [5, -1])).toThrow(/cannot reshape \[4, 6\]/);
    tf.dispose([a, b]);
  });
});

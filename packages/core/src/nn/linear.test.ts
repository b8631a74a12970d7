import * as tf from '@tensorflow/tfjs';
import { describe, expect, it } from 'vitest';
import { Linear, linear } from './linear.js';
import { MLP } from './mlp.js';
import { gelu } from './activations.js';
import { Rng } from '../rng.js';
import { tensorLeakAcross } from '../leaks.js';
import { gradCheck, maxAbsDiff, rand } from './testutil.js';

describe('Linear', () => {
  it('works on [..., in] (folds leading axes) and equals the 2-D product row by row', () => {
    const m = new Linear(5, 3);
    const x = rand([2, 4, 5], 1);
    const y = m.forward(x);
    expect(y.shape).toEqual([2, 4, 3]);
    const y2 = m.forward(x.reshape([8, 5])).reshape([2, 4, 3]);
    expect(maxAbsDiff(y, y2)).toBe(0);
    m.dispose();
  });

  it('weight and bias gradients (variableGrads on [B, N, in]) match finite differences', () => {
    const x = rand([2, 3, 4], 2);
    const w = rand([4, 6], 3);
    const b = rand([6], 4);
    expect(gradCheck((a, ww, bb) => linear(a, ww, bb), [x, w, b])).toBeLessThan(2e-3);
    const m = new Linear(4, 6);
    const { grads } = tf.variableGrads(() => tf.sum(tf.square(m.forward(x))) as tf.Scalar, m.parameters());
    expect(Object.values(grads).map((g) => g.shape)).toEqual([
      [4, 6],
      [6],
    ]);
    m.dispose();
  });

  it('PyTorch default init: U(−1/√in, 1/√in), reproducible from the rng; no-bias and zeros options', () => {
    const a = new Linear(100, 50, { rng: Rng.fromSeed(1) });
    const b = new Linear(100, 50, { rng: Rng.fromSeed(1) });
    const w = a.weight.value.dataSync();
    expect(Math.max(...w)).toBeLessThanOrEqual(0.1);
    expect(Math.min(...w)).toBeGreaterThanOrEqual(-0.1);
    expect(Math.max(...w)).toBeGreaterThan(0.09);
    expect(maxAbsDiff(a.weight.value, b.weight.value)).toBe(0);
    const c = new Linear(3, 2, { bias: false, init: 'zeros' });
    expect(c.namedParameters().map(([n]) => n)).toEqual(['weight']);
    expect(c.weight.value.dataSync().every((v) => v === 0)).toBe(true);
    expect(() => c.forward(tf.zeros([2, 4]))).toThrow(/input last dim 4 does not match weight in-features 3/);
    [a, b, c].forEach((m) => m.dispose());
  });
});

describe('MLP', () => {
  it('is fc2(act(fc1(x))) with timm names, and its gradients match finite differences', () => {
    const m = new MLP(4, 8, { outFeatures: 3 });
    expect(m.namedParameters().map(([n]) => n)).toEqual(['fc1.weight', 'fc1.bias', 'fc2.weight', 'fc2.bias']);
    const x = rand([2, 5, 4], 5);
    const want = m.fc2.forward(gelu(m.fc1.forward(x)));
    expect(maxAbsDiff(m.forward(x), want)).toBe(0);
    expect(gradCheck((a) => m.forward(a), [x])).toBeLessThan(2e-3);
    m.dispose();
  });

  it('leaks no tensors, forward and backward', async () => {
    const m = new MLP(4, 8, { activation: 'gelu_tanh' });
    const x = rand([3, 4], 6);
    expect(await tensorLeakAcross(() => m.forward(x))).toBe(0);
    expect(await tensorLeakAcross(() => tf.variableGrads(() => tf.sum(m.forward(x)) as tf.Scalar, m.parameters()))).toBe(0);
    m.dispose();
  });
});

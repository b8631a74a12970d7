import * as tf from '@tensorflow/tfjs';
import { describe, expect, it } from 'vitest';
import { activation, gelu, geluTanh, silu, reference } from './activations.js';
import { tensorLeakAcross } from '../leaks.js';
import { gradCheck, maxAbsDiff, rand } from './testutil.js';

// Hand-derived values: Φ(1) = 0.841344746, Φ(−1) = 0.158655254, Φ(2) = 0.977249868, σ(1) = 0.731058579
const xs = [-3, -1, 0, 1, 2];
const geluExact = [-3 * 0.001349898, -0.158655254, 0, 0.841344746, 2 * 0.977249868];
const tanhForm = (x: number) => 0.5 * x * (1 + Math.tanh(Math.sqrt(2 / Math.PI) * (x + 0.044715 * x ** 3)));

describe('activations', () => {
  it('GELU exact matches x·Φ(x) at hand-derived points', () => {
    const y = gelu(tf.tensor1d(xs)).dataSync();
    xs.forEach((_, i) => expect(y[i]).toBeCloseTo(geluExact[i]!, 5));
  });

  it('GELU tanh form matches 0.5x(1+tanh(√(2/π)(x+0.044715x³)))', () => {
    const y = geluTanh(tf.tensor1d(xs)).dataSync();
    xs.forEach((x, i) => expect(y[i]).toBeCloseTo(tanhForm(x), 6));
  });

  it('SiLU matches x·σ(x)', () => {
    const y = silu(tf.tensor1d([1, -1, 0])).dataSync();
    expect(y[0]).toBeCloseTo(0.731058579, 6);
    expect(y[1]).toBeCloseTo(-0.268941421, 6);
    expect(y[2]).toBe(0);
  });

  it('custom gradients equal autodiff of the plain formulas and finite differences', () => {
    const x = rand([64, 33], 3, 2);
    for (const [name, f, ref] of [
      ['gelu', gelu, reference.gelu],
      ['geluTanh', geluTanh, reference.geluTanh],
      ['silu', silu, reference.silu],
    ] as const) {
      const g = tf.grad((t: tf.Tensor) => tf.sum(tf.mul(f(t), t)))(x);
      const gr = tf.grad((t: tf.Tensor) => tf.sum(tf.mul(ref(t), t)))(x);
      expect(maxAbsDiff(g, gr), name).toBeLessThan(2e-5);
      expect(maxAbsDiff(f(x), ref(x)), name).toBeLessThan(2e-6);
      expect(gradCheck(f, [x]), name).toBeLessThan(5e-3);
      tf.dispose([g, gr]);
    }
    x.dispose();
  });

  it('resolves names and rejects unknown ones', () => {
    expect(activation('gelu-approximate')).toBe(geluTanh);
    expect(activation('swish')).toBe(silu);
    expect(() => activation('mish')).toThrow(/unknown activation "mish"/);
  });

  it('leak no tensors, forward and backward', async () => {
    const x = rand([5, 7]);
    for (const f of [gelu, geluTanh, silu]) {
      expect(await tensorLeakAcross(() => f(x))).toBe(0);
      expect(await tensorLeakAcross(() => tf.grad((t: tf.Tensor) => tf.sum(f(t)))(x))).toBe(0);
    }
    x.dispose();
  });
});

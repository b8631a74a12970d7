import util from 'node:util';
import * as tf from '@tensorflow/tfjs';
import { describe, expect, it } from 'vitest';
import { microsPerOp, profileOps } from './op-profile.js';

describe('profileOps', () => {
  it('counts each top-level kernel once, by name, and removes its hooks', () => {
    const a = tf.ones([4, 3]);
    const before = tf.memory().numTensors;
    const p = profileOps(() => tf.tidy(() => tf.sum(tf.add(tf.mul(a, a), tf.mul(a, a)))));
    const counts = Object.fromEntries(p.kernels.map((k) => [k.name, k.count]));
    expect(counts).toEqual({ Multiply: 2, Add: 1, Sum: 1 });
    expect(p.result.dataSync()[0]).toBe(24); // 12 elements × (1 + 1)
    expect(p.wallMs).toBeGreaterThanOrEqual(p.kernels.reduce((s, k) => s + k.totalMs, 0));
    expect(Object.prototype.hasOwnProperty.call(tf.engine(), 'runKernelFunc')).toBe(false);
    if (tf.getBackend() === 'tensorflow') {
      // the native kernels map one to one onto eager TF ops, or (small float32 binary ops, binding patch 32)
      // onto the binding's own loop
      const tfOps = Object.fromEntries(p.binding.filter((b) => b.name.startsWith('TF ') || b.name.startsWith('native ')).map((b) => [b.name, b.count]));
      const small = process.env.VREPA_TF_SMALL_BINARY !== '0' && typeof (tf.backend() as unknown as { binding: { smallBinary?: unknown } }).binding.smallBinary === 'function';
      expect(tfOps).toEqual(small ? { 'native Mul': 2, 'native Add': 1, 'TF Sum': 1 } : { 'TF Mul': 2, 'TF Add': 1, 'TF Sum': 1 });
      expect(Object.prototype.hasOwnProperty.call(tf.backend(), 'binding')).toBe(true);
      expect(util.types.isProxy((tf.backend() as unknown as { binding: object }).binding)).toBe(false);
    } else expect(p.binding).toEqual([]);
    p.result.dispose();
    expect(tf.memory().numTensors).toBe(before);
    a.dispose();
  });

  it('names a customGrad scope and still counts the gradient kernels of the backward pass', () => {
    const f = tf.customGrad((x, save) => {
      (save as tf.GradSaveFunc)([x as tf.Tensor]);
      return { value: tf.square(x as tf.Tensor), gradFunc: (dy, [s]) => tf.mul(dy, tf.mul(s!, 2)) };
    });
    const x = tf.tensor1d([1, 2, 3]);
    const p = profileOps(() => tf.grad((v) => tf.sum(f(v) as tf.Tensor))(x));
    expect(Array.from(p.result.dataSync())).toEqual([2, 4, 6]);
    const names = p.kernels.map((k) => k.name);
    expect(names.some((n) => n.startsWith('customGrad'))).toBe(true);
    expect(p.kernels.find((k) => k.name === 'Multiply')!.count).toBeGreaterThanOrEqual(2); // the hand-written gradient
    tf.dispose([x, p.result]);
  });

  it('restores the engine when the profiled function throws', () => {
    expect(() => profileOps(() => { throw new Error('boom'); })).toThrow('boom');
    expect(Object.prototype.hasOwnProperty.call(tf.engine(), 'runKernelFunc')).toBe(false);
  });
});

describe('microsPerOp', () => {
  it('returns a positive per-op time and leaks no tensors', () => {
    const a = tf.ones([8, 16]);
    const before = tf.memory().numTensors;
    const us = microsPerOp(() => tf.add(a, a), { reps: 50, rounds: 3 });
    expect(us).toBeGreaterThan(0);
    expect(microsPerOp(() => tf.add(a, a), { reps: 50, rounds: 3, clock: 'cpu', stat: 'min' })).toBeGreaterThanOrEqual(0);
    expect(tf.memory().numTensors).toBe(before);
    a.dispose();
  });
});

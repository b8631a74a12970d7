/**
 * Binding patch 32's fast paths (native-fast.ts): executeOpIo and smallBinary against the stock tfjs-node
 * path, switched per call in one process (VREPA_TF_FAST_EXEC / VREPA_TF_SMALL_BINARY = '0').
 */
import * as tf from '@tensorflow/tfjs';
import fc from 'fast-check';
import { afterEach, describe, expect, it } from 'vitest';
import { profileOps } from '../op-profile.js';
import { SMALL_BINARY_MAX, hasFastExec } from './native-fast.js';

const native = tf.getBackend() === 'tensorflow' && hasFastExec(tf.backend());
const binding = () => (tf.backend() as unknown as { binding: { getNumOfTensors(): number } }).binding;
const KEYS = ['VREPA_TF_FAST_EXEC', 'VREPA_TF_SMALL_BINARY'] as const;
const saved = Object.fromEntries(KEYS.map((k) => [k, process.env[k]]));
afterEach(() => {
  for (const k of KEYS) {
    if (saved[k] === undefined) delete process.env[k];
    else process.env[k] = saved[k];
  }
});
/** `f` with both fast paths on (defaults) and off (stock tfjs-node): values as bits, shapes, dtypes. */
function both<T extends tf.Tensor | tf.Tensor[]>(f: () => T): { fast: T; stock: T } {
  for (const k of KEYS) delete process.env[k];
  const fast = f();
  for (const k of KEYS) process.env[k] = '0';
  const stock = f();
  for (const k of KEYS) delete process.env[k];
  return { fast, stock };
}
const bits = (t: tf.Tensor) => Array.from(new Uint32Array(new Float32Array(t.dataSync() as Float32Array).buffer));
const same = (x: tf.Tensor, y: tf.Tensor) => {
  expect(x.shape).toEqual(y.shape);
  expect(x.dtype).toBe(y.dtype);
  if (x.dtype === 'float32') expect(bits(x)).toEqual(bits(y));
  else expect(Array.from(x.dataSync())).toEqual(Array.from(y.dataSync()));
};

// float32 values with the awkward ones: denormals (flushed by TensorFlow's kernels), ±0, ±Inf, huge, tiny
const special = [0, -0, 1e-45, -3e-39, 1.1754942e-38, 3.4e38, -3.4e38, Infinity, -Infinity, 1, -1, 0.1];
const value = fc.oneof(fc.float({ noNaN: true }), fc.constantFrom(...special));
const shapeArb = fc.array(fc.integer({ min: 1, max: 5 }), { minLength: 0, maxLength: 4 });

describe.skipIf(!native)('tfjs-node fast paths (binding patch 32)', () => {
  it('smallBinary: Add / Sub / Mul / Div bit-identical to TensorFlow\'s kernels (NumPy broadcasts, JS scalars, denormals)', () => {
    fc.assert(
      fc.property(
        shapeArb,
        fc.constantFrom('add', 'sub', 'mul', 'div'),
        fc.constantFrom('equal', 'scalarB', 'scalarA', 'jsB', 'jsA', 'ones', 'row', 'col', 'mixed'),
        fc.array(value, { minLength: 400, maxLength: 400 }),
        (shape, op, form, vals) => {
          const size = tf.util.sizeFromShape(shape);
          // up to 100 generated values per operand, the rest cycling through them
          const make = (s: number[], off: number) => tf.tensor(Array.from({ length: tf.util.sizeFromShape(s) }, (_, k) => vals[off + (k % 100)]!), s, 'float32');
          const x = make(shape, 0);
          const ones = shape.map(() => 1).slice(shape.length > 1 ? 1 : 0);
          // row: the trailing axes (bias-like); col: the last axis 1 (LayerNorm-like); mixed: every other axis 1,
          // and x's own axes alternately 1 the other way, so that both operands broadcast
          const yShape = { equal: shape, ones, row: shape.slice(Math.min(1, shape.length)), col: [...shape.slice(0, -1), 1].slice(0, shape.length), mixed: shape.map((d, k) => (k % 2 ? 1 : d)) }[form as 'equal'] ?? [];
          const xs = form === 'mixed' ? shape.map((d, k) => (k % 2 ? d : 1)) : shape;
          const x2 = form === 'mixed' ? make(xs, 0) : undefined;
          const y = make(yShape, 200);
          const s = Math.fround(vals[300]!);
          const fn = { add: tf.add, sub: tf.sub, mul: tf.mul, div: tf.div }[op];
          const run = () =>
            form === 'jsB' ? fn(x, s) : form === 'jsA' ? fn(tf.scalar(s), x) : form === 'scalarA' || form === 'ones' || form === 'col' ? fn(y, x) : fn(x2 ?? x, y);
          const { fast, stock } = both(run);
          same(fast, stock);
          expect(size).toBeLessThanOrEqual(SMALL_BINARY_MAX);
          tf.dispose([x, y, fast, stock, ...(x2 ? [x2] : [])]);
        },
      ),
      { numRuns: 300 },
    );
  });

  it('smallBinary runs in the binding (no eager op) and falls back for other dtypes and sizes', () => {
    const a = tf.randomNormal([8, 16]);
    const b = tf.randomNormal([8, 16]);
    const row = tf.randomNormal([16]);
    const big = tf.randomNormal([SMALL_BINARY_MAX + 1]);
    const i = tf.tensor1d([1, 2, 3], 'int32');
    const ops = (f: () => tf.Tensor) => {
      const p = profileOps(() => {
        const y = f();
        y.dataSync();
        y.dispose();
      });
      return Object.fromEntries(p.binding.filter((c) => c.name.startsWith('TF ') || c.name.startsWith('native ')).map((c) => [c.name, c.count]));
    };
    expect(ops(() => tf.add(a, b))).toEqual({ 'native Add': 1 });
    expect(ops(() => tf.mul(a, 0.9))).toEqual({ 'native Mul': 1 }); // the JS scalar never becomes a TF tensor
    expect(ops(() => tf.sub(a, row))).toEqual({ 'native Sub': 1 }); // broadcast in the binding too
    expect(ops(() => tf.add(big, big))).toEqual({ 'TF Add': 1 });
    expect(ops(() => tf.add(i, i))).toEqual({ 'TF Add': 1 });
    const { fast, stock } = both(() => tf.sub(a, row));
    same(fast, stock);
    tf.dispose([a, b, row, big, i, fast, stock]);
  });

  it('gradients through the fast paths are bit-identical to the stock ones', () => {
    fc.assert(
      fc.property(fc.array(fc.integer({ min: 1, max: 6 }), { minLength: 1, maxLength: 3 }), fc.nat(1000), (shape, seed) => {
        const a = tf.randomNormal(shape, 0, 1, 'float32', seed);
        const b = tf.randomNormal(shape, 0, 1, 'float32', seed + 1);
        const w = tf.randomNormal([shape.at(-1)!, 3], 0, 1, 'float32', seed + 2);
        const f = (p: tf.Tensor, q: tf.Tensor) => tf.sum(tf.matMul(tf.div(tf.sub(tf.mul(p, q), tf.mul(p, 0.5)), tf.add(tf.square(q), 1)).reshape([-1, shape.at(-1)!]), w));
        const { fast, stock } = both(() => tf.grads(f)([a, b]));
        same(fast[0]!, stock[0]!);
        same(fast[1]!, stock[1]!);
        tf.dispose([a, b, w, ...fast, ...stock]);
      }),
      { numRuns: 40 },
    );
  });

  it('executeOpIo: multi-output and int32 ops give the stock results', () => {
    const x = tf.randomNormal([6, 10], 0, 1, 'float32', 3);
    const check = (f: () => tf.Tensor | tf.Tensor[]) => {
      const { fast, stock } = both(f);
      const fs = Array.isArray(fast) ? fast : [fast];
      const ss = Array.isArray(stock) ? stock : [stock];
      expect(fs.length).toBe(ss.length);
      fs.forEach((t, k) => same(t, ss[k]!));
      tf.dispose([...fs, ...ss]);
    };
    check(() => tf.split(x, [3, 7], 1));
    check(() => { const r = tf.topk(x, 4); return [r.values, r.indices]; });
    check(() => tf.sum(x, 1));
    check(() => tf.transpose(x));
    check(() => tf.argMax(x, 1));
    check(() => tf.matMul(x, x, false, true));
    check(() => tf.concat([x, x], 0));
    check(() => tf.tensor4d(Array.from({ length: 2 * 3 * 4 * 5 }, (_, k) => k), [2, 3, 4, 5]).transpose([3, 1, 0, 2]));
    x.dispose();
  });

  it('no leaks: tfjs tensors and binding handles stay level across calls', () => {
    const a = tf.randomNormal([4, 8]);
    const step = () => {
      const [g] = tf.grads((p: tf.Tensor) => tf.sum(tf.mul(tf.add(p, 1), tf.sub(p, tf.scalar(2)))))([a]);
      const parts = tf.split(g!, 2, 1);
      tf.dispose([g!, ...parts]);
    };
    step();
    const t0 = tf.memory().numTensors;
    const h0 = binding().getNumOfTensors();
    for (let k = 0; k < 50; k++) step();
    expect(tf.memory().numTensors).toBe(t0);
    expect(binding().getNumOfTensors()).toBe(h0);
    a.dispose();
  });
});

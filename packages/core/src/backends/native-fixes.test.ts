/** core's fixes of tfjs-node kernels (native-fixes.ts): same-dtype Cast and float32 Mean without a TensorFlow Cast. */
import * as tf from '@tensorflow/tfjs';
import { describe, expect, it } from 'vitest';
import { profileOps } from '../op-profile.js';

const native = tf.getBackend() === 'tensorflow';
const calls = (f: () => tf.Tensor) => {
  const p = profileOps(() => {
    const y = f();
    const v = Array.from(y.dataSync());
    y.dispose();
    return v;
  });
  return { values: p.result, tf: Object.fromEntries(p.binding.filter((b) => b.name.startsWith('TF ')).map((b) => [b.name, b.count])) };
};

describe.skipIf(!native || process.env.VREPA_TF_CAST_FIX === '0')('tfjs-node kernel fixes', () => {
  it('a same-dtype cast shares the input (no TensorFlow op); other casts convert', () => {
    const x = tf.tensor1d([1.5, -2.25, 3e-39]);
    const same = calls(() => tf.cast(x, 'float32'));
    expect(same.tf).toEqual({});
    expect(new Float32Array(same.values)).toEqual(x.dataSync());
    const i = tf.tensor1d([3, -4], 'int32');
    const toFloat = calls(() => tf.cast(i, 'float32'));
    expect(toFloat.values).toEqual([3, -4]);
    expect(toFloat.tf).toEqual({ 'TF Cast': 1 });
    expect(calls(() => tf.cast(x, 'int32')).values).toEqual([1, -2, 0]);
    // disposing the cast leaves the input intact (shared data is reference counted)
    const c = tf.cast(x, 'float32');
    c.dispose();
    expect(Array.from(x.dataSync())).toEqual([1.5, -2.25, Math.fround(3e-39)]);
    tf.dispose([x, i]);
  });

  it('a float32 mean is one TensorFlow Mean (values: the float64 mean of the float32 inputs, to float32 rounding); int32 keeps the stock path', () => {
    const x = tf.randomNormal([6, 33], 0, 1, 'float32', 7);
    const got = calls(() => tf.mean(x, 1));
    expect(got.tf).toEqual({ 'TF Mean': 1 });
    const v = x.dataSync();
    got.values.forEach((m, r) => {
      let s = 0;
      for (let c = 0; c < 33; c++) s += v[r * 33 + c]!;
      expect(Math.abs(m - s / 33)).toBeLessThan(1e-6);
    });
    expect(calls(() => tf.mean(tf.tensor2d([[1, 2], [3, 5]]), 0, true)).values).toEqual([2, 3.5]);
    const i = tf.tensor1d([1, 2, 4], 'int32');
    expect(tf.mean(i).dataSync()[0]).toBeCloseTo(7 / 3, 6);
    tf.dispose([x, i]);
  });
});

const viewBinding = native ? (tf.backend() as unknown as { binding: { reshapeTensor?: unknown; getNumOfTensors(): number } }).binding : undefined;

// outside the suite it guards: inside, a stale binding would skip the check along with the suite
describe.skipIf(!native)('tfjs-node GatherV2 without the JS bounds check', () => {
  it('gives the stock kernel\'s values and gradients without reading the indices back; TensorFlow still refuses an index out of range', () => {
    const x = tf.tensor2d([[1, 2], [3, 4], [5, 6]]);
    const idx = tf.tensor1d([2, 0, 2, 1], 'int32');
    const run = (off: boolean) => {
      if (off) process.env.VREPA_TF_GATHER_FIX = '0';
      else delete process.env.VREPA_TF_GATHER_FIX;
      try {
        const p = profileOps(() => tf.tidy(() => {
          const g = tf.grad((v: tf.Tensor) => tf.sum(tf.mul(tf.gather(v, idx), tf.tensor2d([[1, 2], [3, 4], [5, 6], [7, 8]]))))(x);
          return [Array.from(tf.gather(x, idx).dataSync()), Array.from(tf.gather(x, tf.tensor2d([[1], [0]], [2, 1], 'int32'), 1).dataSync()), Array.from(g.dataSync())];
        }));
        return { values: p.result };
      } finally {
        delete process.env.VREPA_TF_GATHER_FIX;
      }
    };
    const fixed = run(false);
    const stock = run(true);
    expect(fixed.values).toEqual(stock.values);
    expect(fixed.values[0]).toEqual([5, 6, 1, 2, 5, 6, 3, 4]); // hand-derived rows 2, 0, 2, 1
    expect(fixed.values[2]).toEqual([3, 4, 7, 8, 6, 8]); // row 0 gets row 1 of the weights, row 1 row 3, row 2 rows 0 + 2
    expect(() => tf.gather(x, tf.tensor1d([3], 'int32')).dataSync()).toThrow(/not in \[0, 3\)/);
    tf.dispose([x, idx]);
  });
});

describe('binding patch 31 availability', () => {
  it('is there wherever the patched binding runs (VREPA_REQUIRE_NATIVE=1)', () => {
    if (process.env.VREPA_REQUIRE_NATIVE === '1' && native) expect(typeof viewBinding?.reshapeTensor, 'binding.reshapeTensor missing: rebuild with `vrepa backend install-native`').toBe('function');
  });
});

describe.skipIf(!native || typeof viewBinding?.reshapeTensor !== 'function' || process.env.VREPA_TF_RESHAPE_VIEW === '0')('tfjs-node reshape as a view (binding patch 31)', () => {

  it('same values and shapes as the data read in order (float32, int32, bool, -1, scalars, empty), no TensorFlow Reshape', () => {
    const x = tf.tensor2d([[1, 2, 3], [4, 5, 6]]);
    const r = calls(() => tf.reshape(x, [3, -1]));
    expect(r.values).toEqual([1, 2, 3, 4, 5, 6]);
    expect(r.tf).toEqual({});
    const y = tf.reshape(x, [-1, 1, 2]);
    expect(y.shape).toEqual([3, 1, 2]);
    expect(tf.transpose(y, [2, 1, 0]).arraySync()).toEqual([[[1, 3, 5]], [[2, 4, 6]]]);
    expect(tf.reshape(tf.tensor1d([7, 8], 'int32'), [2, 1]).arraySync()).toEqual([[7], [8]]);
    const b = tf.reshape(tf.tensor1d([true, false], 'bool'), [1, 2]);
    expect([b.dtype, b.shape, Array.from(b.dataSync())]).toEqual(['bool', [1, 2], [1, 0]]);
    expect(tf.reshape(tf.scalar(3), [1, 1]).arraySync()).toEqual([[3]]);
    expect(tf.reshape(tf.zeros([0, 3]), [3, 0]).shape).toEqual([3, 0]);
    expect(() => tf.reshape(x, [4, 2])).toThrow();
    tf.dispose([x, y]);
  });

  it('the view outlives its source, gradients flow through it, and repeated reshapes leave no handles behind', () => {
    const x = tf.tensor1d([1, 2, 3, 4]);
    const v = tf.reshape(x, [2, 2]);
    x.dispose();
    expect(v.arraySync()).toEqual([[1, 2], [3, 4]]);
    const g = tf.grad((a: tf.Tensor) => tf.sum(tf.mul(tf.reshape(a, [4]), tf.tensor1d([1, 2, 3, 4]))))(v);
    expect(g.arraySync()).toEqual([[1, 2], [3, 4]]);
    const handles = viewBinding!.getNumOfTensors();
    for (let i = 0; i < 100; i++) tf.tidy(() => tf.reshape(tf.reshape(v, [4]), [1, 4]).dataSync());
    expect(viewBinding!.getNumOfTensors()).toBe(handles);
    tf.dispose([v, g]);
  });
});

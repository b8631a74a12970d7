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

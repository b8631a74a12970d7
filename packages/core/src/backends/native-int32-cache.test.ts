/** core's int32 handle cache on tfjs-node (native-fixes.ts installNativeInt32Cache). */
import * as tf from '@tensorflow/tfjs';
import { describe, expect, it } from 'vitest';

const backend = tf.getBackend() === 'tensorflow' ? (tf.backend() as unknown as { vrepaInt32Cache?: { size(): number }; binding: { getNumOfTensors(): number } }) : undefined;

describe.skipIf(!backend)('int32 handle cache (tfjs-node)', () => {
  it('is installed by initBackend unless VREPA_TF_INT32_CACHE=0', () => {
    if (process.env.VREPA_TF_INT32_CACHE !== '0') expect(backend!.vrepaInt32Cache).toBeDefined();
  });

  it('reshape, sum, transpose, slice, split give the expected values, and repeated ops leave no handles behind', () => {
    const x = tf.tensor2d([[1, 2, 3], [4, 5, 6]]);
    const run = () =>
      tf.tidy(() => {
        const r = tf.reshape(x, [3, 2]);
        const s = tf.sum(x, 1);
        const t = tf.transpose(x);
        const sl = tf.slice(x, [0, 1], [2, 2]);
        const [a, b] = tf.split(x, [1, 2], 1);
        return [r, s, t, sl, a!, b!].map((y) => [y.shape, Array.from(y.dataSync())]);
      });
    const first = run();
    expect(first).toEqual([
      [[3, 2], [1, 2, 3, 4, 5, 6]],
      [[2], [6, 15]],
      [[3, 2], [1, 4, 2, 5, 3, 6]],
      [[2, 2], [2, 3, 5, 6]],
      [[2, 1], [1, 4]],
      [[2, 2], [2, 3, 5, 6]],
    ]);
    const handles = backend!.binding.getNumOfTensors();
    const cached = backend!.vrepaInt32Cache?.size();
    for (let i = 0; i < 50; i++) expect(run()).toEqual(first);
    expect(backend!.binding.getNumOfTensors()).toBe(handles);
    expect(backend!.vrepaInt32Cache?.size()).toBe(cached);
    x.dispose();
  });

  it('tensors with the same int32 values share a handle: disposing one leaves the other intact', () => {
    const a = tf.tensor1d([7, -3], 'int32');
    const b = tf.tensor1d([7, -3], 'int32');
    const s = tf.add(a, b);
    expect(Array.from(s.dataSync())).toEqual([14, -6]);
    a.dispose();
    expect(Array.from(b.dataSync())).toEqual([7, -3]);
    const s2 = tf.add(b, b);
    expect(Array.from(s2.dataSync())).toEqual([14, -6]);
    tf.dispose([b, s, s2]);
    // a later tensor with those values still reads right
    const c = tf.tensor1d([7, -3], 'int32');
    expect(Array.from(tf.neg(c).dataSync())).toEqual([-7, 3]);
    c.dispose();
  });
});

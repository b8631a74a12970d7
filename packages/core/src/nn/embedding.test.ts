import * as tf from '@tensorflow/tfjs';
import { describe, expect, it } from 'vitest';
import { Embedding, embedding } from './embedding.js';
import { tensorLeakAcross } from '../leaks.js';
import { rand } from './testutil.js';

describe('Embedding', () => {
  it('returns the table rows for each id, keeping the ids shape', () => {
    const w = rand([5, 3], 1);
    const rows = w.arraySync() as number[][];
    const y = embedding([[4, 0], [2, 2]], w);
    expect(y.shape).toEqual([2, 2, 3]);
    expect(y.arraySync()).toEqual([[rows[4], rows[0]], [rows[2], rows[2]]]);
  });

  it('rejects ids outside the table, naming the id', () => {
    const w = rand([5, 3], 1);
    expect(() => embedding([1, 5], w)).toThrow(/id 5 .*5 rows/);
    expect(() => embedding([-1], w)).toThrow(/id -1/);
  });

  it('module: weight [num, dim] in the state dict, loads, and leaks nothing', async () => {
    const m = new Embedding(7, 4, { init: 'zeros' });
    expect([...m.stateDictShapes()]).toEqual([['weight', [7, 4]]]);
    const w = rand([7, 4], 2);
    m.loadStateDict({ weight: w });
    expect(tf.max(tf.abs(tf.sub(m.forward([3]), tf.slice(w, [3, 0], [1, 4])))).dataSync()[0]).toBe(0);
    const ids = tf.tensor([[1, 2]], undefined, 'int32');
    expect(await tensorLeakAcross(() => m.forward(ids))).toBe(0);
    ids.dispose();
    m.dispose();
  });
});

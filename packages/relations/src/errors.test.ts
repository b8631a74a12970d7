import * as tf from '@tensorflow/tfjs';
import { afterAll, describe, expect, it } from 'vitest';
import { relationMatrix, repaLoss, trdLoss, trdLossNaive } from './index.js';

const s = tf.zeros([2, 6, 4]) as tf.Tensor3D;
const t = tf.zeros([2, 6, 3]) as tf.Tensor3D;
const grid = { frames: 2, height: 1, width: 3 };
afterAll(() => tf.dispose([s, t]));

describe('bad input: one clear error naming the argument, expected and actual', () => {
  for (const [name, fn] of [
    ['trdLoss', trdLoss],
    ['trdLossNaive', trdLossNaive],
  ] as const) {
    it(`${name}`, () => {
      const r2 = tf.zeros([6, 4]);
      expect(() => fn(r2 as never, t, { grid })).toThrow(`${name}: student must be a rank-3 tensor [batch, frames*height*width, dim], got rank 2 (shape [6, 4])`);
      expect(() => fn(s, r2 as never, { grid })).toThrow(`${name}: teacher must be a rank-3 tensor`);
      expect(() => fn(s, tf.zeros([1, 6, 3]) as tf.Tensor3D, { grid })).toThrow(`${name}: teacher batch 1 does not match student batch 2`);
      expect(() => fn(s, tf.zeros([2, 5, 3]) as tf.Tensor3D, { grid })).toThrow(`${name}: teacher tokens 5 do not match student tokens 6`);
      expect(() => fn(s, t, { grid: { frames: 3, height: 1, width: 3 } })).toThrow(`${name}: grid 3×1×3 (9 tokens) does not match student tokens 6`);
      expect(() => fn(s, t, { grid: { frames: 2, height: 1.5, width: 2 } })).toThrow(`${name}: grid.height must be a positive integer, got 1.5`);
      expect(() => fn(s, t, {} as never)).toThrow(`${name}: opts.grid must be {frames, height, width}, got undefined`);
      expect(() => fn(s, t, { grid, margin: -0.1 })).toThrow(`${name}: margin must be a finite number ≥ 0, got -0.1`);
      expect(() => fn(s, t, { grid, margin: NaN })).toThrow(`${name}: margin must be a finite number ≥ 0, got NaN`);
      expect(() => fn(s, t, { grid, margin: Infinity })).toThrow(`${name}: margin must be a finite number ≥ 0, got Infinity`);
      expect(() => fn(s, t, { grid, form: 'spatio' as never })).toThrow(`${name}: form must be one of 'official', 'paper', 'spatial', 'temporal', got 'spatio'`);
      expect(() => fn(s, t, { grid: { frames: 1, height: 2, width: 3 }, form: 'temporal' })).toThrow(`${name}: form 'temporal' needs at least 2 frames, got grid.frames = 1`);
      expect(() => fn(tf.zeros([2, 6, 4], 'int32') as tf.Tensor3D, t, { grid })).toThrow(`${name}: student must be float32, got int32`);
      r2.dispose();
    });
  }

  it('trdLoss chunkSize', () => {
    expect(() => trdLoss(s, t, { grid, chunkSize: 0 })).toThrow('trdLoss: chunkSize must be a positive integer (rows per block), got 0');
    expect(() => trdLoss(s, t, { grid, chunkSize: -3 })).toThrow('trdLoss: chunkSize must be a positive integer (rows per block), got -3');
    expect(() => trdLoss(s, t, { grid, chunkSize: 2.5 })).toThrow('trdLoss: chunkSize must be a positive integer (rows per block), got 2.5');
  });

  it('relationMatrix and repaLoss', () => {
    expect(() => relationMatrix(tf.zeros([4]) as never)).toThrow('relationMatrix: tokens must be a rank-3 tensor [batch, frames*height*width, dim], got rank 1 (shape [4])');
    expect(() => repaLoss(s, t)).toThrow('repaLoss: teacher dim 3 does not match student dim 4 (project the student to the teacher\'s dim first)');
    expect(() => repaLoss(s, tf.zeros([2, 5, 4]) as tf.Tensor3D)).toThrow('repaLoss: teacher tokens 5 do not match student tokens 6');
    expect(() => repaLoss(s, tf.zeros([3, 6, 4]) as tf.Tensor3D)).toThrow('repaLoss: teacher batch 3 does not match student batch 2');
    expect(() => repaLoss(s, [1, 2] as never)).toThrow('repaLoss: teacher must be a tf.Tensor [batch, frames*height*width, dim], got object');
  });

  it('a chunkSize larger than N is clamped to N (one block)', () => {
    const a = tf.randomNormal([2, 6, 4]) as tf.Tensor3D;
    const b = tf.randomNormal([2, 6, 3]) as tf.Tensor3D;
    const x = trdLoss(a, b, { grid, chunkSize: 1000 });
    const y = trdLossNaive(a, b, { grid });
    expect(x.dataSync()[0]).toBeCloseTo(y.dataSync()[0]!, 6);
    tf.dispose([a, b, x, y]);
  });
});

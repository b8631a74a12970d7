/**
 * writePth round trip through the reader (which is checked against torch.save files in pth.test.ts):
 * every dtype and shape, nested containers and scalars come back as written; bad values are one clear
 * error and leave no file. (torch.load(…, weights_only=True) of these files was checked with torch 2.13.)
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { afterAll, describe, expect, it } from 'vitest';
import { PickleDict, PthFile, collectTensors, openCheckpoint, writePth } from './index.js';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'vrepa-pthw-'));
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

describe('writePth', () => {
  it('tensors (tf and host, every writable dtype) and plain values come back exactly', () => {
    const file = path.join(dir, 'a.pth');
    const w = tf.tensor2d([[1.5, -2], [3, 4e-8]]);
    const sd = new Map<string, tf.Tensor>([
      ['layer.weight', w],
      ['layer.bias', tf.tensor1d([7, 8, 9])],
    ]);
    writePth(file, {
      model: sd,
      ints: { i32: tf.tensor1d([1, -2, 2147483647], 'int32'), flags: tf.tensor1d([1, 0, 1], 'bool'), host64: { dtype: 'I64', shape: [2], data: BigInt64Array.from([5n, -(2n ** 40n)]) } },
      scalar: tf.scalar(2.5),
      empty: tf.zeros([0, 3]),
      epoch: 3,
      lr: 1.5e-4,
      big: 2 ** 40,
      neg: -70000,
      name: 'vïdeo',
      list: [true, false, null, 1, 'a'],
    });
    const f = PthFile.open(file);
    try {
      const root = f.root as PickleDict;
      expect([...root.map.keys()]).toEqual(['model', 'ints', 'scalar', 'empty', 'epoch', 'lr', 'big', 'neg', 'name', 'list']);
      expect((root.map.get('model') as PickleDict).ordered).toBe(true);
      expect([...(root.map.get('model') as PickleDict).map.keys()]).toEqual(['layer.weight', 'layer.bias']);
      expect(root.map.get('epoch')).toBe(3);
      expect(root.map.get('lr')).toBe(1.5e-4);
      expect(Number(root.map.get('big'))).toBe(2 ** 40);
      expect(root.map.get('neg')).toBe(-70000);
      expect(root.map.get('name')).toBe('vïdeo');
      expect(root.map.get('list')).toEqual([true, false, null, 1, 'a']);
      const refs = collectTensors(f.root);
      const get = (n: string) => f.readTensor(refs.get(n)!);
      expect(get('model.layer.weight')).toMatchObject({ dtype: 'F32', shape: [2, 2] });
      expect(Array.from(get('model.layer.weight').data as Float32Array)).toEqual(Array.from(w.dataSync()));
      expect(Array.from(get('ints.i32').data as Int32Array)).toEqual([1, -2, 2147483647]);
      expect(get('ints.flags')).toMatchObject({ dtype: 'BOOL', shape: [3] });
      expect(Array.from(get('ints.host64').data as BigInt64Array)).toEqual([5n, -(2n ** 40n)]);
      expect(get('scalar')).toMatchObject({ dtype: 'F32', shape: [] });
      expect(get('empty')).toMatchObject({ shape: [0, 3] });
    } finally {
      f.close();
    }
    // the generic loader finds the state dict under 'model'
    const ck = openCheckpoint(file, { key: 'model' });
    expect([...ck.tensors.keys()]).toEqual(['layer.weight', 'layer.bias']);
    ck.close();
    tf.dispose([...sd.values()]);
  });

  it('a value that cannot be written is one clear error and leaves no file (an existing file is kept)', () => {
    const file = path.join(dir, 'b.pth');
    fs.writeFileSync(file, 'old');
    expect(() => writePth(file, { lr: NaN })).toThrow(/writePth: lr is NaN; only finite numbers can be written/);
    const t = tf.zeros([1]);
    t.dispose();
    expect(() => writePth(file, { model: new Map([['w', t]]) })).toThrow(/tensor model\.w is disposed/);
    const loop: Record<string, any> = {};
    loop.self = loop;
    expect(() => writePth(file, loop)).toThrow(/cycles cannot be written/);
    expect(fs.readFileSync(file, 'utf8')).toBe('old');
    expect(fs.readdirSync(dir).filter((n) => n.includes('.tmp'))).toEqual([]);
  });
});

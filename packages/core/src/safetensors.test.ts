import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { describe, expect, it } from 'vitest';
import { SafetensorsFile, fixturesDir, writeSafetensors } from './index.js';

const fx = fixturesDir()!;

describe('safetensors', () => {
  it('reads every tensor of the trd_loss fixture with the manifest shapes', () => {
    const manifest = JSON.parse(fs.readFileSync(path.join(fx, 'trd_loss/manifest.json'), 'utf8'));
    for (const sc of manifest.subcases) {
      const f = SafetensorsFile.open(path.join(fx, 'trd_loss', sc.file));
      for (const [name, t] of Object.entries<any>(sc.tensors)) {
        expect(f.info(name).shape).toEqual(t.shape);
        expect(f.info(name).dtype).toEqual(t.dtype);
      }
      expect(Array.from(f.read('trd_loss').data as Float32Array)[0]).toBeCloseTo(sc.values.trd_loss, 6);
      f.close();
    }
  });

  it('round-trips a written file', () => {
    const p = path.join(os.tmpdir(), `vrepa-st-${process.pid}.safetensors`);
    const a = tf.tensor([[1, 2, 3], [4, 5, 6]]);
    writeSafetensors(p, { a, b: { dtype: 'I64', shape: [2], data: new BigInt64Array([1n, -2n]) } }, { metadata: { format: 'pt' } });
    const f = SafetensorsFile.open(p);
    expect(f.metadata).toEqual({ format: 'pt' });
    expect(Array.from(f.read('a').data as Float32Array)).toEqual([1, 2, 3, 4, 5, 6]);
    expect(Array.from(f.read('b').data as BigInt64Array)).toEqual([1n, -2n]);
    f.close();
    a.dispose();
    fs.rmSync(p);
  });
});

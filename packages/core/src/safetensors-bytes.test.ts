// The in-memory (browser) safetensors reader and writer against the Node file reader/writer: the same
// bytes, the same tensors, the same checks; and the browser stand-ins of the file API say what to use.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { describe, expect, it } from 'vitest';
import * as browser from './browser.js';
import { SafetensorsBytes, SafetensorsFile, fixturesDir, openCheckpoint, openCheckpointBytes, serializeSafetensors, writeSafetensors } from './index.js';

const tmp = () => path.join(os.tmpdir(), `vrepa-stb-${process.pid}-${Math.random().toString(36).slice(2)}.safetensors`);

describe('SafetensorsBytes / serializeSafetensors', () => {
  it('serializes exactly the bytes writeSafetensors writes (F32, F16, BF16, I64, BOOL, metadata)', () => {
    const a = tf.tensor([[1.5, -2, 3], [4, 5e-3, 6]]);
    const host = {
      i: { dtype: 'I64' as const, shape: [3], data: new BigInt64Array([1n, -2n, 3n]) },
      m: { dtype: 'BOOL' as const, shape: [2], data: Uint8Array.of(1, 0) },
    };
    for (const dtype of ['F32', 'F16', 'BF16'] as const) {
      const p = tmp();
      writeSafetensors(p, { a, ...host }, { metadata: { format: 'pt' }, dtype });
      const fromFile = new Uint8Array(fs.readFileSync(p));
      fs.rmSync(p);
      expect(serializeSafetensors({ a, ...host }, { metadata: { format: 'pt' }, dtype })).toEqual(fromFile);
    }
    a.dispose();
  });

  it('reads every tensor of the trd_loss fixture like SafetensorsFile does', () => {
    const dir = path.join(fixturesDir()!, 'trd_loss');
    const manifest = JSON.parse(fs.readFileSync(path.join(dir, 'manifest.json'), 'utf8'));
    for (const sc of manifest.subcases) {
      const file = SafetensorsFile.open(path.join(dir, sc.file));
      const bytes = SafetensorsBytes.from(fs.readFileSync(path.join(dir, sc.file)), sc.file);
      expect(bytes.keys()).toEqual(file.keys());
      expect(bytes.metadata).toEqual(file.metadata);
      for (const name of file.keys()) {
        expect(bytes.info(name)).toEqual(file.info(name));
        expect(bytes.read(name)).toEqual(file.read(name));
      }
      file.close();
    }
  });

  it('reads from an ArrayBuffer and from a view at an odd offset', () => {
    const payload = serializeSafetensors({ x: { dtype: 'F32', shape: [2, 2], data: Float32Array.of(1, 2, 3, 4) } });
    const padded = new Uint8Array(payload.length + 3);
    padded.set(payload, 3);
    for (const src of [payload.slice().buffer, padded.subarray(3)]) {
      const f = SafetensorsBytes.from(src);
      expect(f.info('x').shape).toEqual([2, 2]);
      const t = f.tensor('x');
      expect(Array.from(t.dataSync())).toEqual([1, 2, 3, 4]);
      t.dispose();
    }
  });

  it('rejects truncated and malformed bytes with one message naming the input', () => {
    const good = serializeSafetensors({ x: { dtype: 'F32', shape: [4], data: new Float32Array(4) } });
    expect(() => SafetensorsBytes.from(good.subarray(0, 5), 'clip.safetensors')).toThrow(/clip\.safetensors: file is 5 bytes/);
    expect(() => SafetensorsBytes.from(good.subarray(0, good.length - 4), 'w.safetensors')).toThrow(/w\.safetensors: tensor 'x': data_offsets \[0, 16\] run past/);
    const huge = good.slice();
    new DataView(huge.buffer).setBigUint64(0, 1n << 40n, true);
    expect(() => SafetensorsBytes.from(huge)).toThrow(/exceeds the 100000000-byte limit/);
    expect(() => SafetensorsBytes.from(good).info('y')).toThrow(/no tensor named 'y'/);
  });

  it('openCheckpointBytes selects keys and strips prefixes like openCheckpoint', () => {
    const p = tmp();
    const tensors = {
      'module.blocks.0.w': { dtype: 'F32' as const, shape: [2], data: Float32Array.of(1, 2) },
      'module.blocks.0.b': { dtype: 'F16' as const, shape: [1], data: Float32Array.of(0.5) },
      'other.z': { dtype: 'I32' as const, shape: [1], data: Int32Array.of(7) },
    };
    writeSafetensors(p, tensors);
    const fromFile = openCheckpoint(p, { key: 'module', stripPrefix: 'blocks.' });
    const fromBytes = openCheckpointBytes(fs.readFileSync(p), { key: 'module', stripPrefix: 'blocks.', name: 'w.safetensors' });
    expect([...fromBytes.tensors.keys()]).toEqual(['0.w', '0.b']);
    expect([...fromBytes.tensors.keys()]).toEqual([...fromFile.tensors.keys()]);
    for (const k of fromFile.tensors.keys()) expect(fromBytes.tensors.get(k)!.read()).toEqual(fromFile.tensors.get(k)!.read());
    expect(fromBytes.path).toBe('w.safetensors');
    expect(() => openCheckpointBytes(fs.readFileSync(p), { key: 'nope' })).toThrow(/key 'nope' selects nothing/);
    fromFile.close();
    fromBytes.close();
    fs.rmSync(p);
    expect(() => openCheckpointBytes(Uint8Array.of(0x50, 0x4b, 3, 4, 0, 0, 0, 0, 0), { name: 'x.pth' })).toThrow(/x\.pth: is a PyTorch zip checkpoint/);
  });

  it("the browser entry's file API throws, naming the bytes-based call", () => {
    expect(() => browser.SafetensorsFile.open('a.safetensors')).toThrow(/a\.safetensors: opening a safetensors file needs Node's file system; .*SafetensorsBytes\.from/);
    expect(() => browser.writeSafetensors('b.safetensors', {})).toThrow(/serializeSafetensors/);
    expect(() => browser.openCheckpoint('c.pth')).toThrow(/c\.pth: .*openCheckpointBytes/);
    expect(browser.SafetensorsBytes).toBe(SafetensorsBytes);
  });
});

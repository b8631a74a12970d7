/** Reads are lazy and positional: a tensor at the end of a multi-GiB (sparse) file reads without touching the rest. */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { SafetensorsFile, openCheckpoint } from './index.js';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'vrepa-st-lazy-'));
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

describe('lazy safetensors reads', () => {
  it('reads the last tensor of a 6 GiB file (offsets past 2^32) without buffering the file', () => {
    const bigBytes = 6 * 2 ** 30;
    const header = {
      __metadata__: { format: 'pt' },
      big: { dtype: 'F32', shape: [1536, 1024, 1024], data_offsets: [0, bigBytes] },
      small: { dtype: 'F32', shape: [4], data_offsets: [bigBytes, bigBytes + 16] },
    };
    const json = Buffer.from(JSON.stringify(header));
    const p = path.join(dir, 'sparse.safetensors');
    const fd = fs.openSync(p, 'w');
    const len = Buffer.alloc(8);
    len.writeBigUInt64LE(BigInt(json.length));
    fs.writeSync(fd, len, 0, 8, 0);
    fs.writeSync(fd, json, 0, json.length, 8);
    // the 6 GiB tensor is a hole in the file (sparse: no disk space, zeros when read)
    fs.writeSync(fd, Buffer.from(Float32Array.from([1.5, -2, 3, 4]).buffer), 0, 16, 8 + json.length + bigBytes);
    fs.closeSync(fd);
    expect(fs.statSync(p).size).toBe(8 + json.length + bigBytes + 16);

    const before = process.memoryUsage().rss;
    const t0 = performance.now();
    const f = SafetensorsFile.open(p);
    expect(f.info('big').shape).toEqual([1536, 1024, 1024]);
    expect(Array.from(f.read('small').data as Float32Array)).toEqual([1.5, -2, 3, 4]);
    f.close();
    const ck = openCheckpoint(p);
    expect(ck.tensors.get('big')!.byteLength).toBe(bigBytes);
    expect(Array.from(ck.tensors.get('small')!.read().data as Float32Array)).toEqual([1.5, -2, 3, 4]);
    ck.close();
    expect(performance.now() - t0).toBeLessThan(2000);
    expect(process.memoryUsage().rss - before).toBeLessThan(256 * 2 ** 20);
  });
});

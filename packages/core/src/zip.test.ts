import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import fc from 'fast-check';
import { afterAll, describe, expect, it } from 'vitest';
import { ZipError, ZipReader, crc32, writeZip } from './index.js';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'vrepa-zip-'));
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));
let n = 0;
const tmp = () => path.join(dir, `z${n++}.zip`);

describe('zip reader', () => {
  it('crc32 matches the standard check value', () => {
    expect(crc32(new TextEncoder().encode('123456789'))).toBe(0xcbf43926);
  });

  it('reads stored, deflated and zip64 entries written by writeZip (property)', () => {
    fc.assert(
      fc.property(
        fc.array(fc.record({ data: fc.uint8Array({ maxLength: 300 }), deflate: fc.boolean() }), { minLength: 1, maxLength: 5 }),
        fc.boolean(),
        (files, zip64) => {
          const p = tmp();
          writeZip(p, files.map((f, i) => ({ name: `arc/data/${i}`, ...f })), { zip64 });
          const z = ZipReader.open(p);
          try {
            expect(z.names()).toEqual(files.map((_, i) => `arc/data/${i}`));
            files.forEach((f, i) => {
              expect(Array.from(z.read(`arc/data/${i}`))).toEqual(Array.from(f.data));
              if (f.data.length > 2) expect(Array.from(z.readRange(`arc/data/${i}`, 1, f.data.length - 2))).toEqual(Array.from(f.data.subarray(1, -1)));
            });
          } finally {
            z.close();
          }
        },
      ),
      { numRuns: 40, seed: 3 },
    );
  });

  it('reads a zip written by another tool (Python zipfile: deflate + zip64, in the test data)', () => {
    const z = ZipReader.open(path.join(import.meta.dirname, '__testdata__', 'dtypes_deflate_zip64.pth'));
    const pkl = z.names().find((x) => x.endsWith('/data.pkl'))!;
    expect(z.entry(pkl).method).toBe(8);
    expect(z.read(pkl)[0]).toBe(0x80); // a pickle PROTO opcode
    z.close();
  });

  it('detects corruption by CRC', () => {
    const p = tmp();
    const data = new TextEncoder().encode('hello hello hello');
    writeZip(p, [{ name: 'a', data }]);
    const b = fs.readFileSync(p);
    b[30 + 1 + 3] ^= 0xff; // a byte of the stored data (after the 30-byte header and the 1-byte name)
    fs.writeFileSync(p, b);
    const z = ZipReader.open(p);
    expect(() => z.read('a')).toThrow(/'a' fails its CRC-32 check/);
    z.close();
  });

  it('refuses truncated archives, non-zips and unknown methods with clear errors', () => {
    const p = tmp();
    writeZip(p, [{ name: 'a', data: new Uint8Array(100) }]);
    const b = fs.readFileSync(p);
    fs.writeFileSync(p, b.subarray(0, b.length - 10));
    expect(() => ZipReader.open(p)).toThrow(ZipError);
    expect(() => ZipReader.open(p)).toThrow(/no end-of-central-directory record/);
    const q = tmp();
    fs.writeFileSync(q, Buffer.alloc(100, 7));
    expect(() => ZipReader.open(q)).toThrow(new RegExp(`${q}: no end-of-central-directory`));
    // Central directory claiming a method we do not support (12 = bzip2).
    const r = tmp();
    writeZip(r, [{ name: 'a', data: new Uint8Array(4) }]);
    const rb = fs.readFileSync(r);
    const cd = rb.indexOf(Buffer.from([0x50, 0x4b, 0x01, 0x02]));
    rb.writeUInt16LE(12, cd + 10);
    fs.writeFileSync(r, rb);
    const z = ZipReader.open(r);
    expect(() => z.read('a')).toThrow(/compression method 12; only stored \(0\) and deflate \(8\)/);
    expect(() => z.read('b')).toThrow(/no entry named 'b'/);
    z.close();
  });

  it('refuses a deflated entry that inflates to a different size than declared', () => {
    const p = tmp();
    writeZip(p, [{ name: 'a', data: new Uint8Array(1000).fill(1), deflate: true }]);
    const b = fs.readFileSync(p);
    const cd = b.indexOf(Buffer.from([0x50, 0x4b, 0x01, 0x02]));
    b.writeUInt32LE(10, cd + 24); // declared size 10
    fs.writeFileSync(p, b);
    const z = ZipReader.open(p);
    expect(() => z.read('a')).toThrow(/'a' does not inflate|inflates to/);
    z.close();
  });
});

describe('zip reader ranges', () => {
  it('checks the CRC of a stored entry read whole by range, not of a part', () => {
    const p = path.join(dir, 'range.zip');
    writeZip(p, [{ name: 'a', data: Uint8Array.from({ length: 64 }, (_, i) => i) }]);
    const b = fs.readFileSync(p);
    b[30 + 1 + 40] ^= 1;
    fs.writeFileSync(p, b);
    const z = ZipReader.open(p);
    expect(Array.from(z.readRange('a', 0, 8))).toEqual([0, 1, 2, 3, 4, 5, 6, 7]);
    expect(() => z.readRange('a', 0, 64)).toThrow(/'a' fails its CRC-32 check/);
    expect(() => z.readRange('a', 60, 8)).toThrow(/byte range \[60, 68\) is outside its 64 bytes/);
    z.close();
  });
});

import { inflateSync } from 'node:zlib';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { encodePng } from './png.js';

/** Bitwise CRC-32 (IEEE), no table: an independent check of every chunk's CRC. */
function crcBitwise(bytes: Uint8Array): number {
  let c = 0xffffffff;
  for (const b of bytes) {
    c ^= b;
    for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ 0xedb88320 : c >>> 1;
  }
  return (c ^ 0xffffffff) >>> 0;
}

/** An independent reader for what encodePng promises: the chunk list, and the pixels of an RGB8 non-interlaced PNG. */
function decode(png: Buffer): { types: string[]; width: number; height: number; rgb: Uint8Array } {
  const types: string[] = [];
  const idat: Buffer[] = [];
  let width = 0;
  let height = 0;
  for (let o = 8; o < png.length; ) {
    const len = png.readUInt32BE(o);
    const type = png.toString('ascii', o + 4, o + 8);
    const data = png.subarray(o + 8, o + 8 + len);
    types.push(type);
    expect(png.readUInt32BE(o + 8 + len)).toBe(crcBitwise(png.subarray(o + 4, o + 8 + len)));
    if (type === 'IHDR') {
      width = data.readUInt32BE(0);
      height = data.readUInt32BE(4);
      expect([...data.subarray(8)]).toEqual([8, 2, 0, 0, 0]);
    }
    if (type === 'IDAT') idat.push(data);
    o += 12 + len;
  }
  const raw = inflateSync(Buffer.concat(idat));
  const rgb = new Uint8Array(width * height * 3);
  for (let y = 0; y < height; y++) {
    const row = raw.subarray(y * (width * 3 + 1), (y + 1) * (width * 3 + 1));
    expect(row[0]).toBe(0); // filter none
    rgb.set(row.subarray(1), y * width * 3);
  }
  return { types, width, height, rgb };
}

describe('encodePng', () => {
  it('writes the PNG signature and the known IHDR/IEND bytes (CRCs included) of a 1×1 RGB image', () => {
    const png = encodePng(new Uint8Array([255, 0, 0]), 1, 1);
    expect([...png.subarray(0, 8)]).toEqual([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
    // IHDR of every 1×1 8-bit RGB PNG: length 13, 'IHDR', 1, 1, 8, 2, 0, 0, 0, CRC 0x907753de.
    expect(png.subarray(8, 33).toString('hex')).toBe('0000000d49484452000000010000000108020000009077' + '53de');
    // IEND: length 0, 'IEND', CRC 0xae426082.
    expect(png.subarray(png.length - 12).toString('hex')).toBe('0000000049454e44ae426082');
  });

  it('round-trips any RGB image through an independent inflate-based reader', () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 9 }), fc.integer({ min: 1, max: 7 }), fc.integer(), (w, h, seed) => {
        const rgb = new Uint8Array(w * h * 3).map((_, i) => (Math.imul(seed ^ i, 2654435761) >>> 24) & 255);
        const d = decode(encodePng(rgb, w, h));
        expect(d.types).toEqual(['IHDR', 'IDAT', 'IEND']);
        expect([d.width, d.height]).toEqual([w, h]);
        expect(d.rgb).toEqual(rgb);
      }),
      { numRuns: 50 },
    );
  });

  it('names the expected and actual sizes on a wrong buffer', () => {
    expect(() => encodePng(new Uint8Array(5), 2, 1)).toThrow('encodePng: expected 2×1×3 = 6 bytes, got 5.');
    expect(() => encodePng(new Uint8Array(0), 0, 1)).toThrow(/positive integers/);
  });
});

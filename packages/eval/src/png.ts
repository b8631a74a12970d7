/** A minimal PNG encoder for RGB8 images (zlib from node:zlib), for frame previews and contact sheets. */
import { deflateSync } from 'node:zlib';

const CRC_TABLE = (() => {
  const t = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    t[n] = c >>> 0;
  }
  return t;
})();

function crc32(bytes: Uint8Array): number {
  let c = 0xffffffff;
  for (let i = 0; i < bytes.length; i++) c = CRC_TABLE[(c ^ bytes[i]!) & 0xff]! ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

function chunk(type: string, data: Uint8Array): Buffer {
  const out = Buffer.alloc(12 + data.length);
  out.writeUInt32BE(data.length, 0);
  out.write(type, 4, 'ascii');
  Buffer.from(data.buffer, data.byteOffset, data.byteLength).copy(out, 8);
  out.writeUInt32BE(crc32(out.subarray(4, 8 + data.length)), 8 + data.length);
  return out;
}

/** Encode `[height, width, 3]` RGB bytes as a PNG file. */
export function encodePng(rgb: Uint8Array, width: number, height: number): Buffer {
  if (rgb.length !== width * height * 3) throw new RangeError(`encodePng: expected ${width}×${height}×3 = ${width * height * 3} bytes, got ${rgb.length}.`);
  const raw = Buffer.alloc((width * 3 + 1) * height);
  for (let y = 0; y < height; y++) {
    raw[y * (width * 3 + 1)] = 0; // filter: none
    Buffer.from(rgb.buffer, rgb.byteOffset + y * width * 3, width * 3).copy(raw, y * (width * 3 + 1) + 1);
  }
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(width, 0);
  ihdr.writeUInt32BE(height, 4);
  ihdr[8] = 8; // bit depth
  ihdr[9] = 2; // colour type RGB
  return Buffer.concat([Buffer.from([137, 80, 78, 71, 13, 10, 26, 10]), chunk('IHDR', ihdr), chunk('IDAT', deflateSync(raw)), chunk('IEND', new Uint8Array(0))]);
}

/** Tile frames `[n, H, W, 3]` into a grid image (`cols` per row), returning its RGB bytes and size. */
export function contactSheet(frames: Uint8Array, width: number, height: number, indices: number[], cols: number): { rgb: Uint8Array; width: number; height: number } {
  const rows = Math.ceil(indices.length / cols);
  const W = width * cols;
  const H = height * rows;
  const out = new Uint8Array(W * H * 3).fill(255);
  indices.forEach((f, k) => {
    const ox = (k % cols) * width;
    const oy = Math.floor(k / cols) * height;
    for (let y = 0; y < height; y++) {
      const src = (f * height + y) * width * 3;
      out.set(frames.subarray(src, src + width * 3), ((oy + y) * W + ox) * 3);
    }
  });
  return { rgb: out, width: W, height: H };
}

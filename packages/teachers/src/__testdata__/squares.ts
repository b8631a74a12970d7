/** Test clips shared by the pre-training tests. */
import type { RawClip } from '../pretrain-data.js';

/** Moving squares: clip i has a square of its own colour sliding right one pixel per frame. */
export function squares(n: number, frames = 10, h = 12, w = 20): { name: string; clip: RawClip }[] {
  return Array.from({ length: n }, (_, i) => {
    const data = new Uint8Array(frames * h * w * 3).fill(40);
    for (let f = 0; f < frames; f++)
      for (let y = 3; y < 9; y++)
        for (let x = 0; x < 6; x++) {
          const o = ((f * h + y) * w + ((x + f + 2 * i) % w)) * 3;
          data[o] = 200;
          data[o + 1] = (60 * i) % 256;
          data[o + 2] = 255 - 40 * i;
        }
    return { name: `sq${i}`, clip: { frames: data, count: frames, height: h, width: w } };
  });
}

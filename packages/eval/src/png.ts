/** Contact sheets for frame previews; the PNG encoder itself is @vrepa/core's (re-exported for existing users). */
export { encodePng } from '@vrepa/core';

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

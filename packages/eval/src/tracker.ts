/**
 * A colour tracker for our scenes' coloured objects: per frame, per target colour, a soft mask (anti-aliased edge
 * pixels get their coverage, estimated by unmixing the pixel between the target colour and the best-fitting
 * palette colour), then the coverage-weighted centroid, area, principal-axis orientation, bounding box and the
 * number of connected blobs.
 */
import type { RGB } from './scenes.js';

export interface TrackedObject {
  /** Whether enough of the colour is visible (area ≥ minArea px). */
  present: boolean;
  /** Visible area in pixels (sum of coverage). */
  area: number;
  /** Coverage-weighted centroid in pixels from the image's top-left corner (pixel centres at +0.5). */
  cx: number;
  cy: number;
  /** Orientation of the principal axis in radians (image axes, y down), in (−π/2, π/2]; NaN for isotropic blobs. */
  angle: number;
  /** Elongation: ratio of the principal second moments (1 = isotropic). */
  elongation: number;
  /** 8-connected components of the hard mask (coverage ≥ 0.35) with at least minBlob pixels and 10% of the largest one's size. */
  blobs: number;
  bbox: [number, number, number, number];
}

export interface TrackerOptions {
  /** Maximum distance (RGB units) of a pixel from the unmixing line (default 24). */
  tolerance?: number;
  /** Minimum visible area for `present` (default 4 px). */
  minArea?: number;
  /** Minimum blob size counted in `blobs` (default 3 px). */
  minBlob?: number;
  /** Non-target colours the targets blend with (default: estimated from the first frame; give the scene's colours when known, thin objects' colours are hard to estimate). */
  palette?: RGB[];
}

/**
 * The dominant colours of a frame (quantised histogram, bins holding ≥ `minShare` of the pixels, mean colour
 * of each), excluding colours within `exclude` distance of the given targets.
 */
export function estimatePalette(frame: Uint8Array, width: number, height: number, targets: RGB[] = [], minShare = 0.0008, exclude = 60): RGB[] {
  const bins = new Map<number, [number, number, number, number]>();
  for (let i = 0; i < width * height; i++) {
    const r = frame[3 * i]!;
    const g = frame[3 * i + 1]!;
    const b = frame[3 * i + 2]!;
    const key = ((r >> 4) << 8) | ((g >> 4) << 4) | (b >> 4);
    const e = bins.get(key) ?? bins.set(key, [0, 0, 0, 0]).get(key)!;
    e[0] += r;
    e[1] += g;
    e[2] += b;
    e[3]++;
  }
  const out: RGB[] = [];
  for (const [, [r, g, b, n]] of [...bins.entries()].sort((x, y) => y[1][3] - x[1][3])) {
    if (n < minShare * width * height) break;
    const c: RGB = [r / n, g / n, b / n];
    if (targets.some((t) => dist(t, c) < exclude)) continue;
    if (out.some((o) => dist(o, c) < 6)) continue;
    // a blend of a target with a more frequent palette colour (thin or small objects' edges) is not a colour
    if (out.some((o) => targets.some((t) => unmix(line(o, t), c[0], c[1], c[2])[0] < 8))) continue;
    out.push(c);
  }
  return out;
}

function dist(a: ArrayLike<number>, b: ArrayLike<number>): number {
  return Math.hypot(a[0]! - b[0]!, a[1]! - b[1]!, a[2]! - b[2]!);
}

interface UnmixLine {
  r: RGB;
  d: RGB;
  dd: number;
}

function line(from: RGB, to: RGB): UnmixLine {
  const d: RGB = [to[0] - from[0], to[1] - from[1], to[2] - from[2]];
  return { r: from, d, dd: d[0] * d[0] + d[1] * d[1] + d[2] * d[2] || 1 };
}

/** Distance of p from the segment of a line, and the position along it (clamped to [0, 1]). */
function unmix(l: UnmixLine, p0: number, p1: number, p2: number): [number, number] {
  const q0 = p0 - l.r[0];
  const q1 = p1 - l.r[1];
  const q2 = p2 - l.r[2];
  const a = Math.min(1, Math.max(0, (q0 * l.d[0] + q1 * l.d[1] + q2 * l.d[2]) / l.dd));
  return [Math.hypot(q0 - a * l.d[0], q1 - a * l.d[1], q2 - a * l.d[2]), a];
}

/**
 * Coverage of `target` in each pixel of one frame, `[H·W]` in [0, 1]: a pixel near the target colour has
 * coverage 1; otherwise it is unmixed as a blend of the target with each palette colour, and counts (with the
 * blend weight) only if that explains it better than any blend of two palette colours.
 */
export function colourCoverage(frame: Uint8Array, width: number, height: number, target: RGB, palette: RGB[], tolerance = 24): Float32Array {
  const cov = new Float32Array(width * height);
  const toTarget = palette.map((r) => line(r, target));
  const between: UnmixLine[] = [];
  for (let i = 0; i < palette.length; i++) for (let j = i + 1; j < palette.length; j++) between.push(line(palette[i]!, palette[j]!));
  const t2 = tolerance * tolerance * 0.25;
  for (let i = 0; i < width * height; i++) {
    const p0 = frame[3 * i]!;
    const p1 = frame[3 * i + 1]!;
    const p2 = frame[3 * i + 2]!;
    const e0 = p0 - target[0];
    const e1 = p1 - target[1];
    const e2 = p2 - target[2];
    if (e0 * e0 + e1 * e1 + e2 * e2 <= t2) {
      cov[i] = 1;
      continue;
    }
    let pure = false;
    for (const c of palette) {
      const f0 = p0 - c[0];
      const f1 = p1 - c[1];
      const f2 = p2 - c[2];
      if (f0 * f0 + f1 * f1 + f2 * f2 <= t2) {
        pure = true;
        break;
      }
    }
    if (pure) continue;
    let best = Infinity;
    let alpha = 0;
    for (const l of toTarget) {
      const [res, a] = unmix(l, p0, p1, p2);
      if (res < best) {
        best = res;
        alpha = a;
      }
    }
    if (!(best <= tolerance && alpha > 0.04)) continue;
    let other = Infinity;
    for (const l of between) other = Math.min(other, unmix(l, p0, p1, p2)[0]);
    if (best < other) cov[i] = alpha;
  }
  return cov;
}

/** Summarise a coverage map into a tracked object. */
export function summariseCoverage(cov: Float32Array, width: number, height: number, opts: TrackerOptions = {}): TrackedObject {
  let m = 0;
  let sx = 0;
  let sy = 0;
  let x0 = Infinity;
  let y0 = Infinity;
  let x1 = -Infinity;
  let y1 = -Infinity;
  for (let v = 0; v < height; v++)
    for (let u = 0; u < width; u++) {
      const w = cov[v * width + u]!;
      if (w <= 0) continue;
      m += w;
      sx += w * (u + 0.5);
      sy += w * (v + 0.5);
      if (w >= 0.5) {
        x0 = Math.min(x0, u);
        y0 = Math.min(y0, v);
        x1 = Math.max(x1, u + 1);
        y1 = Math.max(y1, v + 1);
      }
    }
  const minArea = opts.minArea ?? 4;
  if (m < 1e-9) return { present: false, area: 0, cx: NaN, cy: NaN, angle: NaN, elongation: NaN, blobs: 0, bbox: [NaN, NaN, NaN, NaN] };
  const cx = sx / m;
  const cy = sy / m;
  let mxx = 0;
  let myy = 0;
  let mxy = 0;
  for (let v = 0; v < height; v++)
    for (let u = 0; u < width; u++) {
      const w = cov[v * width + u]!;
      if (w <= 0) continue;
      const dx = u + 0.5 - cx;
      const dy = v + 0.5 - cy;
      mxx += w * dx * dx;
      myy += w * dy * dy;
      mxy += w * dx * dy;
    }
  const tr = (mxx + myy) / 2;
  const det = Math.sqrt(((mxx - myy) / 2) ** 2 + mxy * mxy);
  const l1 = tr + det;
  const l2 = Math.max(tr - det, 1e-12);
  const elongation = l1 / l2;
  const angle = elongation < 1.02 ? NaN : 0.5 * Math.atan2(2 * mxy, mxx - myy);
  return { present: m >= minArea, area: m, cx, cy, angle, elongation, blobs: countBlobs(cov, width, height, opts.minBlob ?? 3), bbox: [x0, y0, x1, y1] };
}

/** Pixels with at least this coverage form the hard mask whose 8-connected blobs are counted. */
const BLOB_COVERAGE = 0.35;

function countBlobs(cov: Float32Array, width: number, height: number, minBlob: number): number {
  const seen = new Uint8Array(width * height);
  const stack: number[] = [];
  const sizes: number[] = [];
  for (let i = 0; i < width * height; i++) {
    if (seen[i] || cov[i]! < BLOB_COVERAGE) continue;
    let size = 0;
    stack.push(i);
    seen[i] = 1;
    while (stack.length) {
      const j = stack.pop()!;
      size++;
      const u = j % width;
      const v = (j - u) / width;
      for (let dv = -1; dv <= 1; dv++)
        for (let du = -1; du <= 1; du++) {
          const uu = u + du;
          const vv = v + dv;
          if (uu < 0 || vv < 0 || uu >= width || vv >= height) continue;
          const k = vv * width + uu;
          if (!seen[k] && cov[k]! >= BLOB_COVERAGE) {
            seen[k] = 1;
            stack.push(k);
          }
        }
    }
    sizes.push(size);
  }
  const largest = Math.max(0, ...sizes);
  return sizes.filter((z) => z >= Math.max(minBlob, 0.1 * largest)).length;
}

/**
 * Track target colours through frames `[n, H, W, 3]`: one TrackedObject per frame per target. The palette the
 * targets blend with is estimated once from the first frame unless given.
 */
export function trackColours(frames: Uint8Array, width: number, height: number, targets: RGB[], opts: TrackerOptions = {}): TrackedObject[][] {
  const size = width * height * 3;
  if (frames.length % size !== 0) throw new RangeError(`trackColours: ${frames.length} bytes is not a whole number of ${width}×${height} RGB frames.`);
  const n = frames.length / size;
  const palette = opts.palette ?? estimatePalette(frames.subarray(0, size), width, height, targets);
  const out: TrackedObject[][] = [];
  for (let f = 0; f < n; f++) {
    const frame = frames.subarray(f * size, (f + 1) * size);
    // when tracking one target, the other targets are colours it may blend with too
    out.push(
      targets.map((t, k) =>
        summariseCoverage(colourCoverage(frame, width, height, t, [...palette, ...targets.filter((_, j) => j !== k)], opts.tolerance), width, height, opts),
      ),
    );
  }
  return out;
}

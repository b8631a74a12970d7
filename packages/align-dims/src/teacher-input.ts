/**
 * Teacher input strategies (paper Table 6). Videos are `[batch, frames, height, width, 3]` in [-1, 1].
 * Each strategy returns the clips to encode (normalised for an ImageNet-trained video teacher) and an
 * `assemble` that puts the per-clip features back on one token grid.
 *
 * (1) `reduced` (official): frames 1..F-1, (x+1)/2, ImageNet mean/std, bicubic to H/3×W/3.
 * (2) `temporal-groups`: frames 1..F-1 at high resolution, split into consecutive groups encoded
 *     separately; features concatenated in time.
 * (3) `spatial-crops`: frames 1..F-1 at high resolution cut into rows×cols crops encoded separately;
 *     features stitched in space.
 */
import * as tf from '@tensorflow/tfjs';
import { assertTokensOnGrid, formatGrid, gridToTokens, type TokenGrid, tokensToGrid } from './grid.js';
import { interpolate } from './interpolate.js';

export const IMAGENET_MEAN = [0.485, 0.456, 0.406] as const;
export const IMAGENET_STD = [0.229, 0.224, 0.225] as const;

function assertVideo(video: tf.Tensor, what = 'video'): [number, number, number, number, number] {
  if (video.rank !== 5) throw new Error(`${what}: expected [batch, frames, height, width, channels], got shape [${video.shape.join(', ')}]`);
  return video.shape as [number, number, number, number, number];
}

/**
 * (x + 1)/2 then (x − mean[c]) / std[c] on the channel axis (last), as the official trainer does with
 * torchvision's Normalize. `[B, F, H, W, C]` in [-1, 1] → same shape.
 */
export function normalizeFrames(video: tf.Tensor, opts: { mean?: readonly number[]; std?: readonly number[] } = {}): tf.Tensor5D {
  const [, , , , c] = assertVideo(video);
  const mean = opts.mean ?? IMAGENET_MEAN;
  const std = opts.std ?? IMAGENET_STD;
  if (mean.length !== c || std.length !== c) throw new Error(`normalizeFrames: mean/std have ${mean.length}/${std.length} entries, video has ${c} channels`);
  return tf.tidy(() => {
    const x01 = tf.div(tf.add(video, 1), 2);
    return tf.div(tf.sub(x01, tf.tensor1d([...mean])), tf.tensor1d([...std])) as tf.Tensor5D;
  });
}

/** Frames 1..F-1 (the VAE encodes frame 0 alone as latent frame 0; VideoMAE-type teachers skip it). */
export function dropFirstFrame(video: tf.Tensor, what = 'video'): tf.Tensor5D {
  const [b, f, h, w, c] = assertVideo(video, what);
  if (f < 2) throw new Error(`${what}: has ${f} frame(s); dropping frame 0 needs at least 2`);
  return tf.slice(video, [0, 1, 0, 0, 0], [b, f - 1, h, w, c]) as tf.Tensor5D;
}

/** Resize every frame of `[B, F, H, W, C]` to `size` with PyTorch bicubic (align_corners false). */
export function resizeFrames(video: tf.Tensor, size: [number, number], mode: 'bicubic' | 'bilinear' = 'bicubic'): tf.Tensor5D {
  const [b, f, h, w, c] = assertVideo(video);
  if (size[0] === h && size[1] === w) return tf.clone(video) as tf.Tensor5D;
  return tf.tidy(() => {
    const frames = tf.reshape(video, [b * f, h, w, c]);
    return tf.reshape(interpolate(frames, { size, mode }), [b, f, size[0], size[1], c]) as tf.Tensor5D;
  });
}

export interface ReducedOptions {
  /** Output frame size; default (H // factor, W // factor). */
  size?: [number, number];
  /** Spatial reduction factor (official 3). */
  factor?: number;
  /** Skip frame 0 (default true). */
  dropFirstFrame?: boolean;
  /** Apply (x+1)/2 + ImageNet mean/std (default true). */
  normalize?: boolean;
}

/** Strategy (1), the official pre-processing: `[B, F, H, W, 3]` → `[B, F-1, H//3, W//3, 3]`. */
export function teacherInputReduced(video: tf.Tensor, opts: ReducedOptions = {}): { clip: tf.Tensor5D } {
  const [, , h, w] = assertVideo(video);
  const factor = opts.factor ?? 3;
  if (!(factor > 0)) throw new Error(`teacherInputReduced: factor must be > 0, got ${factor}`);
  const size = opts.size ?? [Math.floor(h / factor), Math.floor(w / factor)];
  if (size[0] < 1 || size[1] < 1) throw new Error(`teacherInputReduced: frames ${h}×${w} reduced by ${factor} leave ${size[0]}×${size[1]} pixels`);
  return {
    clip: tf.tidy(() => {
      let x: tf.Tensor = video;
      if (opts.normalize ?? true) x = normalizeFrames(x);
      if (opts.dropFirstFrame ?? true) x = dropFirstFrame(x);
      return resizeFrames(x, size, 'bicubic');
    }),
  };
}

export type TeacherInputStrategy =
  | ({ kind: 'reduced' } & ReducedOptions)
  | { kind: 'temporal-groups'; groups: number; size?: [number, number]; dropFirstFrame?: boolean; normalize?: boolean }
  | { kind: 'spatial-crops'; rows: number; cols: number; size?: [number, number]; dropFirstFrame?: boolean; normalize?: boolean };

export interface TeacherInputs {
  /** Clips to encode, each `[B, frames, height, width, 3]`. */
  clips: tf.Tensor5D[];
  /**
   * Put the per-clip teacher features (`[B, tokens, D]`, one per clip, each on its grid) on one grid:
   * concatenated in time (temporal groups) or stitched in space (crops).
   */
  assemble(features: tf.Tensor[], grids: TokenGrid[]): { tokens: tf.Tensor3D; grid: TokenGrid };
}

/** Build the teacher's input clips for a strategy; dispose `clips` when done. */
export function teacherInputs(video: tf.Tensor, strategy: TeacherInputStrategy): TeacherInputs {
  const [, f, h, w] = assertVideo(video);
  if (strategy.kind === 'reduced') {
    const { clip } = teacherInputReduced(video, strategy);
    return {
      clips: [clip],
      assemble(features, grids) {
        if (features.length !== 1 || grids.length !== 1) throw new Error(`teacherInputs(reduced): expected 1 feature tensor and grid, got ${features.length} and ${grids.length}`);
        assertTokensOnGrid(features[0]!, grids[0]!, 'teacher features');
        return { tokens: tf.clone(features[0]!) as tf.Tensor3D, grid: { ...grids[0]! } };
      },
    };
  }
  const drop = strategy.dropFirstFrame ?? true;
  const prep = (): tf.Tensor5D =>
    tf.tidy(() => {
      let x: tf.Tensor = video;
      if (strategy.normalize ?? true) x = normalizeFrames(x);
      if (drop) x = dropFirstFrame(x);
      return strategy.size ? resizeFrames(x, strategy.size, 'bicubic') : (tf.clone(x) as tf.Tensor5D);
    });
  const frames = drop ? f - 1 : f;
  if (strategy.kind === 'temporal-groups') {
    const g = strategy.groups;
    if (!Number.isInteger(g) || g < 1 || frames % g !== 0) {
      throw new Error(`teacherInputs(temporal-groups): groups must be a positive integer dividing the ${frames} frames, got ${g}`);
    }
    const clips = tf.tidy(() => tf.split(prep(), g, 1) as tf.Tensor5D[]);
    return {
      clips,
      assemble(features, grids) {
        if (features.length !== g || grids.length !== g) throw new Error(`teacherInputs(temporal-groups): expected ${g} feature tensors and grids, got ${features.length} and ${grids.length}`);
        features.forEach((t, i) => assertTokensOnGrid(t, grids[i]!, `teacher features of group ${i}`));
        const g0 = grids[0]!;
        grids.forEach((gr, i) => {
          if (gr.height !== g0.height || gr.width !== g0.width) throw new Error(`teacherInputs(temporal-groups): group ${i} grid ${formatGrid(gr)} differs in space from group 0 ${formatGrid(g0)}`);
        });
        // frame-major tokens: concatenating along the token axis concatenates in time
        const tokens = tf.concat(features, 1) as tf.Tensor3D;
        return { tokens, grid: { frames: grids.reduce((s, gr) => s + gr.frames, 0), height: g0.height, width: g0.width } };
      },
    };
  }
  const { rows, cols } = strategy;
  const [ht, wt] = strategy.size ?? [h, w];
  if (!Number.isInteger(rows) || rows < 1 || ht % rows !== 0 || !Number.isInteger(cols) || cols < 1 || wt % cols !== 0) {
    throw new Error(`teacherInputs(spatial-crops): rows×cols ${rows}×${cols} must be positive integers dividing the ${ht}×${wt} frames`);
  }
  const clips = tf.tidy(() => {
    const x = prep();
    const out: tf.Tensor5D[] = [];
    for (const band of tf.split(x, rows, 2)) out.push(...(tf.split(band, cols, 3) as tf.Tensor5D[]));
    return out;
  });
  return {
    clips,
    assemble(features, grids) {
      const k = rows * cols;
      if (features.length !== k || grids.length !== k) throw new Error(`teacherInputs(spatial-crops): expected ${k} feature tensors and grids (row-major crops), got ${features.length} and ${grids.length}`);
      features.forEach((t, i) => assertTokensOnGrid(t, grids[i]!, `teacher features of crop ${i}`));
      const g0 = grids[0]!;
      grids.forEach((gr, i) => {
        if (gr.frames !== g0.frames || gr.height !== g0.height || gr.width !== g0.width) throw new Error(`teacherInputs(spatial-crops): crop ${i} grid ${formatGrid(gr)} differs from crop 0 ${formatGrid(g0)}`);
      });
      const grid: TokenGrid = { frames: g0.frames, height: rows * g0.height, width: cols * g0.width };
      const tokens = tf.tidy(() => {
        const bands: tf.Tensor[] = [];
        for (let r = 0; r < rows; r++) {
          bands.push(tf.concat(features.slice(r * cols, (r + 1) * cols).map((t, c) => tokensToGrid(t, grids[r * cols + c]!)), 3));
        }
        return gridToTokens(tf.concat(bands, 2)).tokens;
      });
      return { tokens, grid };
    },
  };
}

/**
 * Clips for masked video pre-training, sampled and augmented as VideoMAE samples them (browser-safe: no
 * file system here; sources that read videos from disk are in pretrain-sources.node.ts):
 * - frames: official `VideoMAE._sample_train_indices` with one segment — a start drawn uniformly in
 *   [0, count − numFrames·rate], then every `rate`-th frame; near the end of a short clip the index
 *   stops advancing (the official loop only steps while `offset + rate < duration`);
 * - space: a random resized crop (torchvision `RandomResizedCrop.get_params`: area scale and aspect
 *   ratio, 10 tries, else the centre crop), the same box for every frame, bilinear to the model size,
 *   and a horizontal flip with probability ½ (both seeded);
 * - values: `x/255`, then ImageNet mean/std — the model's input layout `[B, F, H, W, 3]`.
 * Every random choice of step `s` comes from a generator seeded by (seed, s), so a batch depends only
 * on the step: resuming at step s draws exactly the batches of an uninterrupted run.
 */
import * as tf from '@tensorflow/tfjs';
import { Rng } from '@vrepa/core';

export const IMAGENET_MEAN = [0.485, 0.456, 0.406] as const;
export const IMAGENET_STD = [0.229, 0.224, 0.225] as const;

/** A decoded clip: RGB frames `[count, height, width, 3]`, uint8, row-major. */
export interface RawClip {
  frames: Uint8Array;
  count: number;
  height: number;
  width: number;
}

/** Where pre-training clips come from: `size` clips, each read by index (decoded frames). */
export interface ClipSource {
  readonly size: number;
  /** a name for clip `i` in messages (e.g. its file) */
  name(i: number): string;
  clip(i: number): RawClip;
  /** clips left out (unreadable, too short), with the reason; counted in logs */
  readonly skipped: ReadonlyArray<{ item: string; reason: string }>;
}

/** How clips become training samples. */
export interface ClipSampling {
  numFrames: number;
  /** official `sampling_rate`: the frame step between sampled frames */
  samplingRate: number;
  /** output frame size [height, width] */
  size: readonly [number, number];
  /** RandomResizedCrop area scale range, e.g. [0.5, 1] (torchvision default [0.08, 1]) */
  cropScale: readonly [number, number];
  /** RandomResizedCrop aspect ratio range (default [3/4, 4/3]) */
  cropRatio?: readonly [number, number];
  /** random horizontal flip with probability ½ */
  flip: boolean;
}

/** Official one-segment VideoMAE train indices for a clip of `count` frames. Throws for clips shorter than numFrames. */
export function sampleFrameIndices(count: number, numFrames: number, rate: number, rng: Rng): number[] {
  if (!Number.isInteger(rate) || rate < 1) throw new Error(`sampleFrameIndices: sampling rate must be a positive integer, got ${rate}`);
  if (count < numFrames) throw new Error(`clip has ${count} frames, fewer than num_frames ${numFrames}`);
  const skip = numFrames * rate;
  const span = count - skip + 1;
  let offset = span > 0 ? rng.randint(0, span) : 0;
  const out: number[] = [];
  for (let i = 0; i < numFrames; i++) {
    out.push(offset);
    if (offset + rate < count) offset += rate;
  }
  return out;
}

/** torchvision `RandomResizedCrop.get_params`: `[top, left, h, w]` in pixels of an H×W frame. */
export function randomResizedCropBox(height: number, width: number, scale: readonly [number, number], ratio: readonly [number, number], rng: Rng): [number, number, number, number] {
  const area = height * width;
  const logR = [Math.log(ratio[0]), Math.log(ratio[1])];
  for (let k = 0; k < 10; k++) {
    const target = area * rng.uniform(scale[0], scale[1]);
    const aspect = Math.exp(rng.uniform(logR[0]!, logR[1]!));
    const w = Math.round(Math.sqrt(target * aspect));
    const h = Math.round(Math.sqrt(target / aspect));
    if (w > 0 && w <= width && h > 0 && h <= height) {
      const top = rng.randint(0, height - h + 1);
      const left = rng.randint(0, width - w + 1);
      return [top, left, h, w];
    }
  }
  // fallback: centre crop at the nearest allowed ratio
  const r = width / height;
  let w = width;
  let h = height;
  if (r < ratio[0]) h = Math.round(w / ratio[0]);
  else if (r > ratio[1]) w = Math.round(h * ratio[1]);
  return [Math.floor((height - h) / 2), Math.floor((width - w) / 2), h, w];
}

/** Throws one clear error for the first thing wrong with the sampling settings. */
export function validateSampling(s: ClipSampling): void {
  if (!Number.isInteger(s.numFrames) || s.numFrames < 1) throw new Error(`data: num_frames must be a positive integer, got ${s.numFrames}`);
  if (!Number.isInteger(s.samplingRate) || s.samplingRate < 1) throw new Error(`data.sampling_rate must be a positive integer, got ${s.samplingRate}`);
  const [lo, hi] = s.cropScale;
  if (!(lo > 0 && lo <= hi && hi <= 1)) throw new Error(`data.crop_scale must be [lo, hi] with 0 < lo ≤ hi ≤ 1, got [${s.cropScale.join(', ')}]`);
  const ratio = s.cropRatio ?? [3 / 4, 4 / 3];
  if (!(ratio[0] > 0 && ratio[0] <= ratio[1])) throw new Error(`data.crop_ratio must be [lo, hi] with 0 < lo ≤ hi, got [${ratio.join(', ')}]`);
}

/** What one sample is cut from: frame indices, crop box `[top, left, h, w]` and flip. */
export interface SampleView {
  indices: number[];
  box: [number, number, number, number];
  flip: boolean;
}

/** The random view of one clip (frames, crop, flip) drawn from `rng`. */
export function drawView(clip: RawClip, s: ClipSampling, rng: Rng): SampleView {
  const indices = sampleFrameIndices(clip.count, s.numFrames, s.samplingRate, rng);
  const box = randomResizedCropBox(clip.height, clip.width, s.cropScale, s.cropRatio ?? [3 / 4, 4 / 3], rng);
  const flip = s.flip ? rng.uniform() < 0.5 : false;
  return { indices, box, flip };
}

/** The deterministic view used for pictures and evaluation: frames from the start, the whole frame, no flip. */
export function centreView(clip: RawClip, s: ClipSampling): SampleView {
  const indices: number[] = [];
  let offset = 0;
  for (let i = 0; i < s.numFrames; i++) {
    indices.push(offset);
    if (offset + s.samplingRate < clip.count) offset += s.samplingRate;
  }
  if (clip.count < s.numFrames) throw new Error(`clip has ${clip.count} frames, fewer than num_frames ${s.numFrames}`);
  return { indices, box: [0, 0, clip.height, clip.width], flip: false };
}

/**
 * One sample `[numFrames, H, W, 3]`, ImageNet-normalised, cut from `clip` by `view`: the crop box, resized
 * bilinearly with half-pixel centres (torchvision's resized crop on tensors: PyTorch `align_corners=false`).
 */
export function cutSample(clip: RawClip, view: SampleView, size: readonly [number, number]): tf.Tensor4D {
  const { height: H, width: W } = clip;
  const fb = H * W * 3;
  const picked = new Uint8Array(view.indices.length * fb);
  view.indices.forEach((f, k) => picked.set(clip.frames.subarray(f * fb, (f + 1) * fb), k * fb));
  const [top, left, h, w] = view.box;
  return tf.tidy(() => {
    const frames = tf.tensor4d(picked, [view.indices.length, H, W, 3], 'int32').toFloat();
    // crop, then bilinear with half-pixel centres (PyTorch align_corners=false: edges clamp to the crop)
    const crop = tf.slice(frames, [0, top, left, 0], [-1, h, w, 3]);
    let x: tf.Tensor4D = h === size[0] && w === size[1] ? crop : tf.image.resizeBilinear(crop, [size[0], size[1]], false, true);
    if (view.flip) x = tf.reverse(x, 2);
    return tf.div(tf.sub(tf.div(x, 255), tf.tensor1d([...IMAGENET_MEAN])), tf.tensor1d([...IMAGENET_STD])) as tf.Tensor4D;
  });
}

/** The per-step generator: every random choice of training step `step` (sample `j`) is drawn from it. */
export function stepRng(seed: number, step: number, stream: number): Rng {
  return Rng.fromSeed(BigInt(seed) * 0x100000000n + BigInt(step), stream);
}

/** Which clip is the `k`-th sample of the run: a seeded permutation per epoch (epoch = ⌊k / size⌋). */
export function sampleOrder(size: number, seed: number): (k: number) => number {
  let epoch = -1;
  let perm: Int32Array = new Int32Array(0);
  return (k) => {
    const e = Math.floor(k / size);
    if (e !== epoch) {
      perm = Rng.fromSeed(seed, 1_000_000 + e).permutation(size);
      epoch = e;
    }
    return perm[k - e * size]!;
  };
}

/**
 * The training batch of `step` `[batch, numFrames, H, W, 3]` (ImageNet-normalised), a pure function of
 * (source, sampling, seed, step, batch).
 */
export function pretrainBatch(source: ClipSource, s: ClipSampling, seed: number, step: number, batch: number, order = sampleOrder(source.size, seed)): tf.Tensor5D {
  if (source.size === 0) throw new Error('pre-training data: the clip source has no clips');
  const samples: tf.Tensor4D[] = [];
  try {
    for (let j = 0; j < batch; j++) {
      const i = order(step * batch + j);
      const clip = source.clip(i);
      let view: SampleView;
      try {
        view = drawView(clip, s, stepRng(seed, step, 10 + j));
      } catch (e) {
        throw new Error(`pre-training data: ${source.name(i)}: ${(e as Error).message}`);
      }
      samples.push(cutSample(clip, view, s.size));
    }
    return tf.stack(samples) as tf.Tensor5D;
  } finally {
    tf.dispose(samples);
  }
}

/** A clip source over clips already in memory (tests, generated scenes). Clips shorter than `minFrames` are skipped and counted. */
export function memoryClipSource(clips: ReadonlyArray<{ name: string; clip: RawClip }>, minFrames = 1): ClipSource {
  const kept = clips.filter((c) => c.clip.count >= minFrames);
  const skipped = clips.filter((c) => c.clip.count < minFrames).map((c) => ({ item: c.name, reason: `${c.clip.count} frames, fewer than num_frames ${minFrames}` }));
  return { size: kept.length, name: (i) => kept[i]!.name, clip: (i) => kept[i]!.clip, skipped };
}

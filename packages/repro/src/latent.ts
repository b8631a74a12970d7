/**
 * The student's latent space: a fixed, invertible space-to-depth map with CogVideoX's VAE geometry
 * (time ÷4 with the first frame alone, space ÷s) instead of a trained VAE. Why: a VAE trained here would
 * cost minutes of the budget, add its own reconstruction error to every generated clip (and to every
 * physics metric measured on them), and be one more seed-dependent moving part; the map is exact, free, and
 * keeps the official latent layout — latent frame 0 holds pixel frame 0, each later latent frame 4 pixel
 * frames — so the official grid matching (drop latent frame 0, ×2 in time) applies unchanged.
 *
 * encode: `[B, 1+4k, H, W, 3]` in [-1, 1] → `[B, 1+k, H/s, W/s, 4·s·s·3]`, frame 0 repeated 4× (CogVideoX's
 * causal padding), then `(x − shift)·scale`; decode inverts it (frame 0 = the mean of its 4 copies).
 */
import * as tf from '@tensorflow/tfjs';

export interface LatentSpace {
  /** spatial factor s */
  spatial: number;
  /** temporal factor (4, as the CogVideoX VAE) */
  temporal: number;
  /** latent = (space-to-depth(x) − shift) · scale */
  shift: number;
  scale: number;
}

export function latentChannels(l: Pick<LatentSpace, 'spatial' | 'temporal'>): number {
  return l.temporal * l.spatial * l.spatial * 3;
}

/** Latent frames of a clip of `frames` pixel frames (must be 1 + temporal·k). */
export function latentFrames(frames: number, temporal: number): number {
  if (!Number.isInteger(frames) || frames < 1 || (frames - 1) % temporal !== 0) throw new Error(`latent space: clips need 1 + ${temporal}·k frames, got ${frames}`);
  return 1 + (frames - 1) / temporal;
}

/** `[B, F, H, W, 3]` pixels in [-1, 1] → latents `[B, 1+(F−1)/t, H/s, W/s, t·s·s·3]`. */
export function encodeLatents(video: tf.Tensor, l: LatentSpace): tf.Tensor5D {
  if (video.rank !== 5 || video.shape[4] !== 3) throw new Error(`encodeLatents: video must be [B, F, H, W, 3], got [${video.shape}]`);
  const [B, F, H, W] = video.shape as number[];
  const { spatial: s, temporal: t } = l;
  if (H! % s || W! % s) throw new Error(`encodeLatents: ${H}×${W} frames are not divisible by the spatial factor ${s}`);
  const G = latentFrames(F!, t);
  return tf.tidy(() => {
    const first = tf.slice(video, [0, 0, 0, 0, 0], [B!, 1, H!, W!, 3]);
    const rest = tf.slice(video, [0, 1, 0, 0, 0], [B!, F! - 1, H!, W!, 3]);
    const padded = tf.concat([tf.tile(first, [1, t, 1, 1, 1]), rest], 1); // [B, G·t, H, W, 3]
    const x = tf.reshape(padded, [B!, G, t, H! / s, s, W! / s, s, 3]);
    const d = tf.reshape(tf.transpose(x, [0, 1, 3, 5, 2, 4, 6, 7]), [B!, G, H! / s, W! / s, t * s * s * 3]);
    return tf.mul(tf.sub(d, l.shift), l.scale) as tf.Tensor5D;
  });
}

/** Inverse of encodeLatents: `[B, G, h, w, t·s·s·3]` → `[B, 1+t·(G−1), h·s, w·s, 3]` (not clipped). */
export function decodeLatents(latents: tf.Tensor, l: LatentSpace): tf.Tensor5D {
  const { spatial: s, temporal: t } = l;
  const C = latentChannels(l);
  if (latents.rank !== 5 || latents.shape[4] !== C) throw new Error(`decodeLatents: latents must be [B, G, h, w, ${C}], got [${latents.shape}]`);
  const [B, G, h, w] = latents.shape as number[];
  return tf.tidy(() => {
    const d = tf.add(tf.div(latents, l.scale), l.shift);
    const x = tf.transpose(tf.reshape(d, [B!, G!, h!, w!, t, s, s, 3]), [0, 1, 4, 2, 5, 3, 6, 7]); // [B, G, t, h, s, w, s, 3]
    const frames = tf.reshape(x, [B!, G! * t, h! * s, w! * s, 3]);
    const first = tf.mean(tf.slice(frames, [0, 0, 0, 0, 0], [B!, t, h! * s, w! * s, 3]), 1, true);
    const rest = tf.slice(frames, [0, t, 0, 0, 0], [B!, (G! - 1) * t, h! * s, w! * s, 3]);
    return tf.concat([first, rest], 1) as tf.Tensor5D;
  });
}

/** uint8 frames `[n·F·H·W·3]` → float pixels in [-1, 1] `[n, F, H, W, 3]`. */
export function pixelsToTensor(u8: Uint8Array, n: number, F: number, H: number, W: number): tf.Tensor5D {
  const f = new Float32Array(u8.length);
  for (let i = 0; i < u8.length; i++) f[i] = u8[i]! / 127.5 - 1;
  return tf.tensor5d(f, [n, F, H, W, 3]);
}

/** float pixels `[F, H, W, 3]` (any range) → uint8 (clipped to [-1, 1], rounded). */
export function tensorToPixels(x: tf.Tensor): Uint8Array {
  const d = x.dataSync();
  const out = new Uint8Array(d.length);
  for (let i = 0; i < d.length; i++) out[i] = Math.max(0, Math.min(255, Math.round((d[i]! + 1) * 127.5)));
  return out;
}

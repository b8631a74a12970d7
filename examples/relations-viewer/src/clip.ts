/**
 * Where a clip comes from: a generated physics scene (@vrepa/eval's simulator and renderer), a video file
 * decoded by the browser's own <video> element, or a safetensors clip (`video` `[F, H, W, 3]` uint8, or
 * float in [−1, 1]). Every clip ends as `[F, H, W, 3]` RGB bytes for display and `[1, F, H, W, 3]` in [−1, 1].
 */
import * as tf from '@tensorflow/tfjs';
import { SafetensorsBytes } from '@vrepa/core';
import { renderClip, sampleScene, simulateScene, type Subset } from '@vrepa/eval';
import { videoFromBytes } from './model.js';

export interface Clip {
  label: string;
  frames: number;
  height: number;
  width: number;
  /** `[F, H, W, 3]` for display */
  rgb: Uint8Array;
  /** `[1, F, H, W, 3]` in [−1, 1] for the models (the caller disposes it) */
  video: tf.Tensor5D;
}

/** The viewer's clip size: 49 frames (the first is dropped for the teacher) of 160×240, as the scenes render. */
export const CLIP = { frames: 49, height: 160, width: 240 } as const;

export async function sceneClip(subset: Subset, seed: number): Promise<Clip> {
  const spec = sampleScene(subset, seed);
  const video = { width: CLIP.width, height: CLIP.height, frames: CLIP.frames, fps: 16 };
  const sim = await simulateScene(spec, video);
  const rgb = renderClip(spec, sim, video);
  return { label: `${subset} scene, seed ${seed}${sim.contact ? `, contact at frame ${sim.firstContactFrame}` : ', no contact'}`, ...CLIP, rgb, video: videoFromBytes(rgb, CLIP.frames, CLIP.height, CLIP.width) };
}

/** Decode `frames` evenly spaced frames of a video file with the browser's <video> element, resized to 240×160. */
export async function videoFileClip(file: File, frames: number = CLIP.frames): Promise<Clip> {
  const url = URL.createObjectURL(file);
  const el = document.createElement('video');
  el.muted = true;
  el.preload = 'auto';
  el.src = url;
  try {
    await new Promise<void>((resolve, reject) => {
      el.onloadeddata = () => resolve();
      el.onerror = () => reject(new Error(`${file.name}: this browser cannot decode it (${el.error?.message ?? 'unsupported format'}); try an mp4 (H.264) or webm (VP8/VP9)`));
    });
    const { width, height } = CLIP;
    const canvas = document.createElement('canvas');
    canvas.width = width;
    canvas.height = height;
    const ctx = canvas.getContext('2d', { willReadFrequently: true })!;
    const rgb = new Uint8Array(frames * height * width * 3);
    const duration = Number.isFinite(el.duration) && el.duration > 0 ? el.duration : 1;
    for (let f = 0; f < frames; f++) {
      el.currentTime = Math.min(duration - 1e-3, (f * duration) / frames);
      await new Promise<void>((resolve) => (el.onseeked = () => resolve()));
      ctx.drawImage(el, 0, 0, width, height);
      const px = ctx.getImageData(0, 0, width, height).data;
      const base = f * height * width * 3;
      for (let i = 0, n = width * height; i < n; i++) {
        rgb[base + 3 * i] = px[4 * i]!;
        rgb[base + 3 * i + 1] = px[4 * i + 1]!;
        rgb[base + 3 * i + 2] = px[4 * i + 2]!;
      }
    }
    return { label: `${file.name} (${frames} frames over ${duration.toFixed(1)} s)`, frames, height, width, rgb, video: videoFromBytes(rgb, frames, height, width) };
  } finally {
    URL.revokeObjectURL(url);
  }
}

/** A clip saved as safetensors: tensor `video` (or the only tensor), `[F, H, W, 3]` or `[1, F, H, W, 3]`. */
export function safetensorsClip(bytes: Uint8Array, name: string): Clip {
  const f = SafetensorsBytes.from(bytes, name);
  const key = f.has('video') ? 'video' : f.keys().length === 1 ? f.keys()[0]! : undefined;
  if (key === undefined) throw new Error(`${name}: no tensor 'video' (has ${f.keys().join(', ')})`);
  const info = f.info(key);
  const shape = info.shape.length === 5 && info.shape[0] === 1 ? info.shape.slice(1) : info.shape;
  if (shape.length !== 4 || shape[3] !== 3) throw new Error(`${name}: '${key}' has shape [${info.shape.join(', ')}], expected [F, H, W, 3]`);
  const [frames, height, width] = shape as [number, number, number, number];
  const h = f.read(key);
  if (info.dtype === 'U8') {
    const rgb = h.data as Uint8Array;
    return { label: name, frames, height, width, rgb, video: videoFromBytes(rgb, frames, height, width) };
  }
  const x = h.data instanceof Float32Array ? h.data : Float32Array.from(h.data as ArrayLike<number>);
  const rgb = Uint8Array.from(x, (v) => Math.round(Math.min(1, Math.max(-1, v)) * 127.5 + 127.5));
  return { label: name, frames, height, width, rgb, video: tf.tensor(x, [1, frames, height, width, 3], 'float32') as tf.Tensor5D };
}

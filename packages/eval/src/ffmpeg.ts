/** Driving ffmpeg (mp4 encode, decode); finding it (FFMPEG, PATH, @ffmpeg-installer/ffmpeg) is @vrepa/core's `findFfmpeg`. */
import { spawn, spawnSync } from 'node:child_process';
import { FfmpegMissingError, decodeVideo, findFfmpeg } from '@vrepa/core';

export { FfmpegMissingError, findFfmpeg, hasFfmpeg, decodeVideo, type DecodedVideo } from '@vrepa/core';

/**
 * Encode RGB frames `[frames, H, W, 3]` as H.264 mp4 (yuv420p, crf 18) by piping raw frames to ffmpeg's stdin.
 * Width and height must be even (yuv420p).
 */
export async function encodeMp4(file: string, frames: Uint8Array, width: number, height: number, fps: number, opts: { ffmpeg?: string; crf?: number } = {}): Promise<void> {
  const frameBytes = width * height * 3;
  if (frames.length % frameBytes !== 0 || frames.length === 0)
    throw new RangeError(`encodeMp4: ${frames.length} bytes is not a whole number of ${width}×${height} RGB frames.`);
  if (width % 2 || height % 2) throw new RangeError(`encodeMp4: width and height must be even for yuv420p, got ${width}×${height}.`);
  const bin = opts.ffmpeg ?? findFfmpeg().path;
  const args = ['-v', 'error', '-y', '-f', 'rawvideo', '-pix_fmt', 'rgb24', '-s', `${width}x${height}`, '-r', String(fps), '-i', 'pipe:0',
    '-c:v', 'libx264', '-pix_fmt', 'yuv420p', '-crf', String(opts.crf ?? 18), '-preset', 'veryfast', '-movflags', '+faststart', file];
  await new Promise<void>((resolve, reject) => {
    const p = spawn(bin, args, { stdio: ['pipe', 'ignore', 'pipe'] });
    let err = '';
    p.stderr.on('data', (d) => (err += String(d)));
    p.on('error', (e) => reject(new FfmpegMissingError(`ffmpeg: cannot run '${bin}' (${e.message}).`)));
    p.on('close', (code) => (code === 0 ? resolve() : reject(new Error(`ffmpeg exited with code ${code} writing '${file}': ${err.trim().split('\n').slice(-3).join(' ')}`))));
    p.stdin.on('error', () => {
      /* reported through 'close' */
    });
    p.stdin.end(Buffer.from(frames.buffer, frames.byteOffset, frames.byteLength));
  });
}

/**
 * Decode a video into the public video layout: `[1, frames, H, W, 3]` float32 in [−1, 1] (optionally only the
 * first `maxFrames` frames).
 */
export async function loadVideoTensor(file: string, opts: { ffmpeg?: string; maxFrames?: number } = {}): Promise<import('@tensorflow/tfjs').Tensor5D> {
  const tf = await import('@tensorflow/tfjs');
  const v = decodeVideo(file, opts);
  const count = Math.min(v.count, opts.maxFrames ?? v.count);
  const n = count * v.height * v.width * 3;
  const data = new Float32Array(n);
  for (let i = 0; i < n; i++) data[i] = v.frames[i]! / 127.5 - 1;
  return tf.tensor5d(data, [1, count, v.height, v.width, 3]);
}

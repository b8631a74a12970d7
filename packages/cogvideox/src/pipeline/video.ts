/**
 * Writing generated clips: mp4 (H.264, yuv420p) or gif through ffmpeg, and a contact-sheet PNG.
 * ffmpeg is found from the FFMPEG environment variable, then PATH, then the optional npm package
 * `@ffmpeg-installer/ffmpeg`; without any, a clear error says how to get one. A failing ffmpeg run
 * reports the tail of its stderr.
 */
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { encodePng, FfmpegMissingError, findFfmpeg as findFfmpegBinary } from '@vrepa/core';

export class FfmpegError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'FfmpegError';
  }
}

/** The ffmpeg binary: FFMPEG env, PATH, then @ffmpeg-installer/ffmpeg (core's lookup). Throws FfmpegError when none exists. */
export function findFfmpeg(env: NodeJS.ProcessEnv = process.env): string {
  try {
    return findFfmpegBinary(env).path;
  } catch (e) {
    if (e instanceof FfmpegMissingError) throw new FfmpegError(e.message);
    throw e;
  }
}

/**
 * Encode RGB frames (`frames` × height × width × 3 bytes, frame-major) to `file`: `.mp4` (libx264,
 * yuv420p; odd sizes padded to even) or `.gif` (palette per clip). Resolves when ffmpeg exits 0.
 */
export async function writeVideo(
  file: string,
  rgb: Uint8Array,
  dims: { frames: number; height: number; width: number },
  opts: { fps?: number; ffmpeg?: string; overwrite?: boolean } = {},
): Promise<void> {
  const { frames, height, width } = dims;
  if (rgb.length !== frames * height * width * 3)
    throw new Error(`writeVideo: got ${rgb.length} bytes, expected frames·height·width·3 = ${frames * height * width * 3}`);
  const ext = path.extname(file).toLowerCase();
  if (ext !== '.mp4' && ext !== '.gif') throw new Error(`writeVideo: output must end in .mp4 or .gif, got '${file}'`);
  if (!opts.overwrite && fs.existsSync(file)) throw new Error(`writeVideo: ${file} exists (pass --overwrite to replace it)`);
  const bin = opts.ffmpeg ?? findFfmpeg();
  const fps = opts.fps ?? 8;
  const input = ['-f', 'rawvideo', '-pix_fmt', 'rgb24', '-s', `${width}x${height}`, '-r', String(fps), '-i', 'pipe:0'];
  const output =
    ext === '.mp4'
      ? ['-vf', 'pad=ceil(iw/2)*2:ceil(ih/2)*2', '-c:v', 'libx264', '-pix_fmt', 'yuv420p', '-crf', '18', '-movflags', '+faststart']
      : ['-vf', 'split[a][b];[a]palettegen=reserve_transparent=0[p];[b][p]paletteuse', '-loop', '0'];
  const args = ['-hide_banner', '-loglevel', 'error', '-y', ...input, ...output, file];
  await new Promise<void>((resolve, reject) => {
    const p = spawn(bin, args, { stdio: ['pipe', 'ignore', 'pipe'] });
    let err = '';
    p.stderr.on('data', (d: Buffer) => {
      err = (err + d.toString()).slice(-4000);
    });
    p.on('error', (e) => reject(new FfmpegError(`ffmpeg (${bin}) could not start: ${e.message}`)));
    p.on('close', (code) => {
      if (code === 0) resolve();
      else reject(new FfmpegError(`ffmpeg exited with code ${code} writing ${file}: ${err.trim().split('\n').slice(-8).join('\n') || '(no stderr)'}`));
    });
    p.stdin.on('error', () => {
      /* reported through close */
    });
    p.stdin.end(Buffer.from(rgb.buffer, rgb.byteOffset, rgb.byteLength));
  });
}

/** Decode a video file back to RGB frames with ffmpeg (for checks): frame count and size from the byte count and ffmpeg's stream line. */
export function readVideo(file: string, opts: { ffmpeg?: string } = {}): { frames: number; width: number; height: number; rgb: Uint8Array } {
  const bin = opts.ffmpeg ?? findFfmpeg();
  const probe = spawnSync(bin, ['-hide_banner', '-i', file], { encoding: 'utf8' });
  const m = /Stream .*Video: .*?, (\d{2,5})x(\d{2,5})/.exec(probe.stderr ?? '') ?? /Video: .* (\d+)x(\d+)/.exec(probe.stderr ?? '');
  if (!m) throw new FfmpegError(`readVideo: cannot find a video stream in ${file}: ${(probe.stderr ?? '').trim().split('\n').slice(-4).join('\n')}`);
  const width = Number(m[1]);
  const height = Number(m[2]);
  const r = spawnSync(bin, ['-v', 'error', '-i', file, '-f', 'rawvideo', '-pix_fmt', 'rgb24', 'pipe:1'], { maxBuffer: 1 << 30 });
  if (r.status !== 0) throw new FfmpegError(`readVideo: ffmpeg failed on ${file}: ${r.stderr.toString().trim().slice(-1000)}`);
  const rgb = new Uint8Array(r.stdout.buffer, r.stdout.byteOffset, r.stdout.byteLength);
  return { frames: rgb.length / (width * height * 3), width, height, rgb };
}

// PNG encoding lives in @vrepa/core; re-exported here for the pipeline's users.
export { encodePng };

/** A grid of up to `maxFrames` evenly spaced frames (row-major, `cols` per row, 2-px black gaps). */
export function contactSheet(rgb: Uint8Array, dims: { frames: number; height: number; width: number }, opts: { maxFrames?: number; cols?: number } = {}): { rgb: Uint8Array; width: number; height: number } {
  const { frames, height: h, width: w } = dims;
  const n = Math.min(frames, opts.maxFrames ?? 9);
  const idx = Array.from({ length: n }, (_, i) => (n === 1 ? 0 : Math.round((i * (frames - 1)) / (n - 1))));
  const cols = Math.min(n, opts.cols ?? Math.ceil(Math.sqrt(n)));
  const rows = Math.ceil(n / cols);
  const gap = 2;
  const W = cols * w + (cols - 1) * gap;
  const H = rows * h + (rows - 1) * gap;
  const out = new Uint8Array(W * H * 3);
  idx.forEach((f, k) => {
    const ox = (k % cols) * (w + gap);
    const oy = Math.floor(k / cols) * (h + gap);
    for (let y = 0; y < h; y++) out.set(rgb.subarray((f * h + y) * w * 3, (f * h + y + 1) * w * 3), ((oy + y) * W + ox) * 3);
  });
  return { rgb: out, width: W, height: H };
}

/**
 * Finding ffmpeg: the `FFMPEG` environment variable, else `ffmpeg` on PATH, else the npm package
 * `@ffmpeg-installer/ffmpeg` if it is installed (optional; a static build inside the registry tarball). With none
 * of them, a clear error says how to get one.
 */
import fs from 'node:fs';
import { spawnSync } from 'node:child_process';
import { createRequire } from 'node:module';
import path from 'node:path';

export class FfmpegMissingError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'FfmpegMissingError';
  }
}

/** Where ffmpeg comes from, in order: FFMPEG env, PATH, @ffmpeg-installer/ffmpeg. Throws FfmpegMissingError. */
export function findFfmpeg(env: NodeJS.ProcessEnv = process.env): { path: string; source: 'FFMPEG' | 'PATH' | '@ffmpeg-installer/ffmpeg' } {
  if (env.FFMPEG !== undefined && env.FFMPEG !== '') {
    if (!isExecutable(env.FFMPEG)) throw new FfmpegMissingError(`ffmpeg: FFMPEG is set to '${env.FFMPEG}', which is not an executable file.`);
    return { path: env.FFMPEG, source: 'FFMPEG' };
  }
  for (const dir of (env.PATH ?? '').split(path.delimiter).filter(Boolean)) {
    const p = path.join(dir, 'ffmpeg');
    if (isExecutable(p)) return { path: p, source: 'PATH' };
  }
  try {
    const req = createRequire(import.meta.url);
    const spec = '@ffmpeg-installer/ffmpeg';
    const p = (req(spec) as { path: string }).path;
    if (isExecutable(p)) return { path: p, source: '@ffmpeg-installer/ffmpeg' };
  } catch {
    /* not installed */
  }
  throw new FfmpegMissingError(
    'ffmpeg not found: set FFMPEG=/path/to/ffmpeg, put ffmpeg on PATH (apt-get install ffmpeg), or add the npm package @ffmpeg-installer/ffmpeg.',
  );
}

function isExecutable(p: string): boolean {
  try {
    fs.accessSync(p, fs.constants.X_OK);
    return fs.statSync(p).isFile();
  } catch {
    return false;
  }
}

/** A decoded video: RGB frames `[count, height, width, 3]`, row-major, uint8. */
export interface DecodedVideo {
  frames: Uint8Array;
  count: number;
  width: number;
  height: number;
}

/**
 * Decode a video to RGB frames (Node only; one decoder for every package). `cover` scales the frames to
 * cover width×height (bicubic) and centre-crops them; `maxFrames` keeps only the first frames. Throws one
 * clear error naming the file for a missing or undecodable video.
 */
export function decodeVideo(file: string, opts: { ffmpeg?: string; maxFrames?: number; cover?: { width: number; height: number } } = {}): DecodedVideo {
  const bin = opts.ffmpeg ?? findFfmpeg().path;
  let width: number;
  let height: number;
  const vf: string[] = [];
  if (opts.cover) {
    ({ width, height } = opts.cover);
    vf.push('-vf', `scale=${width}:${height}:force_original_aspect_ratio=increase:flags=bicubic,crop=${width}:${height}`);
  } else {
    const info = spawnSync(bin, ['-hide_banner', '-i', file], { encoding: 'utf8' });
    const m = /Video:.*?,\s*(\d+)x(\d+)[\s,[]/.exec(info.stderr ?? '');
    if (!m && !fs.existsSync(file)) throw new Error(`decodeVideo: video '${file}' does not exist.`);
    if (!m) throw new Error(`decodeVideo: cannot read the frame size of '${file}' (${(info.stderr ?? '').trim().split('\n').at(-1)}).`);
    width = Number(m[1]);
    height = Number(m[2]);
  }
  const limit = opts.maxFrames !== undefined ? ['-frames:v', String(opts.maxFrames)] : [];
  const r = spawnSync(bin, ['-v', 'error', '-i', file, ...vf, ...limit, '-f', 'rawvideo', '-pix_fmt', 'rgb24', 'pipe:1'], { maxBuffer: 1 << 30 });
  if ((r.status !== 0 || r.error) && !fs.existsSync(file)) throw new Error(`decodeVideo: video '${file}' does not exist.`);
  if (r.status !== 0 || r.error) throw new Error(`decodeVideo: '${file}' cannot be decoded: ${String(r.stderr ?? r.error?.message ?? '').trim().split('\n').slice(-2).join(' ') || `ffmpeg exited ${r.status}`}`);
  const frameBytes = width * height * 3;
  const count = Math.floor(r.stdout.length / frameBytes);
  if (count === 0) throw new Error(`decodeVideo: '${file}' has no decodable frames.`);
  const frames = new Uint8Array(r.stdout.buffer, r.stdout.byteOffset, count * frameBytes);
  return { frames, count, width, height };
}

/** Whether some ffmpeg can be found. */
export function hasFfmpeg(env: NodeJS.ProcessEnv = process.env): boolean {
  try {
    findFfmpeg(env);
    return true;
  } catch {
    return false;
  }
}

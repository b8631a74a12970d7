/**
 * Writing generated clips: mp4 (H.264, yuv420p) or gif through ffmpeg, and a contact-sheet PNG.
 * ffmpeg is found from the FFMPEG environment variable, then PATH, then the optional npm package
 * `@ffmpeg-installer/ffmpeg`; without any, a clear error says how to get one. A failing ffmpeg run
 * reports the tail of its stderr.
 */
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import zlib from 'node:zlib';

export class FfmpegError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'FfmpegError';
  }
}

function executable(p: string): boolean {
  try {
    fs.accessSync(p, fs.constants.X_OK);
    return fs.statSync(p).isFile();
  } catch {
    return false;
  }
}

/** The ffmpeg binary: FFMPEG env, PATH, then @ffmpeg-installer/ffmpeg. Throws FfmpegError when none exists. */
export function findFfmpeg(env: NodeJS.ProcessEnv = process.env): string {
  if (env.FFMPEG) {
    if (!executable(env.FFMPEG)) throw new FfmpegError(`ffmpeg: FFMPEG is set to '${env.FFMPEG}', which is not an executable file`);
    return env.FFMPEG;
  }
  for (const dir of (env.PATH ?? '').split(path.delimiter)) {
    if (!dir) continue;
    const p = path.join(dir, 'ffmpeg');
    if (executable(p)) return p;
  }
  try {
    const req = createRequire(import.meta.url);
    const p = (req('@ffmpeg-installer/ffmpeg') as { path: string }).path;
    if (executable(p)) return p;
  } catch {
    /* optional */
  }
  throw new FfmpegError('ffmpeg not found: set FFMPEG=/path/to/ffmpeg, install it (apt-get install ffmpeg), or add the npm package @ffmpeg-installer/ffmpeg');
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

const CRC_TABLE = (() => {
  const t = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    t[n] = c >>> 0;
  }
  return t;
})();
function crc32(buf: Uint8Array): number {
  let c = 0xffffffff;
  for (let i = 0; i < buf.length; i++) c = CRC_TABLE[(c ^ buf[i]!) & 0xff]! ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}
function chunk(type: string, data: Uint8Array): Buffer {
  const out = Buffer.alloc(12 + data.length);
  out.writeUInt32BE(data.length, 0);
  out.write(type, 4, 'ascii');
  Buffer.from(data.buffer, data.byteOffset, data.byteLength).copy(out, 8);
  out.writeUInt32BE(crc32(out.subarray(4, 8 + data.length)), 8 + data.length);
  return out;
}

/** An 8-bit RGB PNG of `rgb` (height × width × 3 bytes). */
export function encodePng(rgb: Uint8Array, width: number, height: number): Buffer {
  if (rgb.length !== width * height * 3) throw new Error(`encodePng: got ${rgb.length} bytes for ${width}×${height} RGB (expected ${width * height * 3})`);
  const raw = Buffer.alloc((width * 3 + 1) * height);
  for (let y = 0; y < height; y++) {
    raw[y * (width * 3 + 1)] = 0;
    Buffer.from(rgb.buffer, rgb.byteOffset + y * width * 3, width * 3).copy(raw, y * (width * 3 + 1) + 1);
  }
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(width, 0);
  ihdr.writeUInt32BE(height, 4);
  ihdr[8] = 8;
  ihdr[9] = 2;
  return Buffer.concat([Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]), chunk('IHDR', ihdr), chunk('IDAT', zlib.deflateSync(raw)), chunk('IEND', new Uint8Array(0))]);
}

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

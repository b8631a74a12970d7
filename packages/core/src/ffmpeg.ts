/**
 * Finding ffmpeg: the `FFMPEG` environment variable, else `ffmpeg` on PATH, else the npm package
 * `@ffmpeg-installer/ffmpeg` if it is installed (optional; a static build inside the registry tarball). With none
 * of them, a clear error says how to get one.
 */
import fs from 'node:fs';
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

/** Whether some ffmpeg can be found. */
export function hasFfmpeg(env: NodeJS.ProcessEnv = process.env): boolean {
  try {
    findFfmpeg(env);
    return true;
  } catch {
    return false;
  }
}

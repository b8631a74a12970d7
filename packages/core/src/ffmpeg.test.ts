import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { FfmpegMissingError, findFfmpeg, hasFfmpeg } from './ffmpeg.js';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'vrepa-ffmpeg-'));
const bin = path.join(dir, 'ffmpeg');
fs.writeFileSync(bin, '#!/bin/sh\nexit 0\n', { mode: 0o755 });
const notExec = path.join(dir, 'plain');
fs.writeFileSync(notExec, '', { mode: 0o644 });
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

describe('findFfmpeg', () => {
  it('takes FFMPEG first, then the first ffmpeg on PATH', () => {
    expect(findFfmpeg({ FFMPEG: bin, PATH: '' })).toEqual({ path: bin, source: 'FFMPEG' });
    expect(findFfmpeg({ PATH: ['/nonexistent-dir', dir].join(path.delimiter) })).toEqual({ path: bin, source: 'PATH' });
    expect(hasFfmpeg({ FFMPEG: bin })).toBe(true);
  });

  it('names a non-executable FFMPEG; says how to get one when there is none', () => {
    expect(() => findFfmpeg({ FFMPEG: notExec, PATH: dir })).toThrow(FfmpegMissingError);
    expect(() => findFfmpeg({ FFMPEG: notExec })).toThrow(`FFMPEG is set to '${notExec}', which is not an executable file`);
    // With PATH empty only the optional npm package could answer; it is not a dependency of this workspace.
    let found: string | undefined;
    try {
      found = findFfmpeg({ PATH: '' }).source;
    } catch (e) {
      expect((e as Error).message).toMatch(/ffmpeg not found: set FFMPEG=.*PATH.*@ffmpeg-installer\/ffmpeg/);
    }
    expect(found === undefined || found === '@ffmpeg-installer/ffmpeg').toBe(true);
  });
});

/**
 * (Node only.) Pre-training clips from a folder of videos — any folder of mp4/webm/mkv/avi/mov files,
 * e.g. the output of `vrepa physics generate` (its labels.csv, when present, gives the clip order). Every
 * video is decoded once (core's `decodeVideo`, scaled to cover the decode size and centre-cropped) and
 * kept in memory as uint8 frames. Unreadable videos and videos shorter than num_frames are skipped and
 * counted (`on_bad_video: 'skip'`) or stop the run with one error naming the file (`'error'`).
 */
import fs from 'node:fs';
import path from 'node:path';
import { decodeVideo } from '@vrepa/core';
import type { ClipSource, RawClip } from './pretrain-data.js';

export const VIDEO_EXTENSIONS = ['.mp4', '.webm', '.mkv', '.avi', '.mov', '.m4v'] as const;

export interface VideoFolderOptions {
  /** clips with fewer frames are bad input */
  numFrames: number;
  /** decode every video scaled to cover [height, width] and centre-cropped (keeps memory small) */
  decodeSize: readonly [number, number];
  /** 'skip' (default): leave bad videos out and count them; 'error': stop at the first one */
  onBadVideo?: 'skip' | 'error';
  /** at most this many clips (the first in order) */
  maxClips?: number;
  /** only these clip names (file names without extension; e.g. a split), in this order */
  only?: readonly string[];
  ffmpeg?: string;
  /** called after each decoded video */
  onDecode?: (done: number, total: number) => void;
}

/** The video files of a folder (recursively), in labels.csv order when the folder has one, else sorted by path. */
export function listVideos(dir: string): string[] {
  if (!fs.existsSync(dir) || !fs.statSync(dir).isDirectory()) throw new Error(`pre-training data: '${dir}' is not a folder`);
  const found: string[] = [];
  const walk = (d: string) => {
    for (const e of fs.readdirSync(d, { withFileTypes: true }).sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0))) {
      const full = path.join(d, e.name);
      if (e.isDirectory()) walk(full);
      else if ((VIDEO_EXTENSIONS as readonly string[]).includes(path.extname(e.name).toLowerCase())) found.push(full);
    }
  };
  walk(dir);
  const labels = path.join(dir, 'labels.csv');
  if (fs.existsSync(labels)) {
    const lines = fs.readFileSync(labels, 'utf8').split('\n').filter((l) => l.trim());
    const col = lines[0]?.split(',').indexOf('clip') ?? -1;
    if (col >= 0) {
      const rank = new Map(lines.slice(1).map((l, i) => [l.split(',')[col]!, i]));
      const key = (f: string) => rank.get(path.basename(f, path.extname(f))) ?? Number.MAX_SAFE_INTEGER;
      found.sort((a, b) => key(a) - key(b));
    }
  }
  return found;
}

/** Decode a folder of videos into an in-memory clip source (see the file comment for bad input). */
export function videoFolderSource(dir: string, opts: VideoFolderOptions): ClipSource {
  let files = listVideos(dir);
  if (opts.only) {
    const byName = new Map(files.map((f) => [path.basename(f, path.extname(f)), f]));
    const missing = opts.only.filter((n) => !byName.has(n));
    if (missing.length) throw new Error(`pre-training data: ${dir} has no video for clip(s) ${missing.slice(0, 5).join(', ')}${missing.length > 5 ? ` (+${missing.length - 5} more)` : ''}`);
    files = opts.only.map((n) => byName.get(n)!);
  }
  if (opts.maxClips !== undefined) files = files.slice(0, opts.maxClips);
  if (files.length === 0) throw new Error(`pre-training data: ${dir} holds no video files (${VIDEO_EXTENSIONS.join(', ')})`);
  const [height, width] = opts.decodeSize;
  const clips: { name: string; clip: RawClip }[] = [];
  const skipped: { item: string; reason: string }[] = [];
  files.forEach((f, k) => {
    let reason: string | null = null;
    try {
      const v = decodeVideo(f, { ffmpeg: opts.ffmpeg, cover: { width, height } });
      if (v.count < opts.numFrames) reason = `${v.count} frames, fewer than num_frames ${opts.numFrames}`;
      else clips.push({ name: f, clip: { frames: new Uint8Array(v.frames), count: v.count, height, width } });
    } catch (e) {
      reason = (e as Error).message;
    }
    if (reason !== null) {
      if ((opts.onBadVideo ?? 'skip') === 'error') throw new Error(`pre-training data: video ${f} is not usable: ${reason} (data.on_bad_video is 'error')`);
      skipped.push({ item: f, reason });
    }
    opts.onDecode?.(k + 1, files.length);
  });
  if (clips.length === 0) throw new Error(`pre-training data: none of the ${files.length} videos in ${dir} is usable (first problem: ${skipped[0]?.item}: ${skipped[0]?.reason})`);
  return { size: clips.length, name: (i) => clips[i]!.name, clip: (i) => clips[i]!.clip, skipped };
}

/**
 * `vrepa teacher probe`: what a (pre-trained) teacher knows about physics, in one command — its features on
 * labelled scenes (`vrepa physics generate`) under the Physion OCP protocol (the first `context` frames, three
 * temporal slices of the token grid, every spatial token), then @vrepa/eval's linear probe (stratified k-fold,
 * inner CV for the L2 strength), next to baselines on the SAME clips:
 * - pixels: the clip's pixels averaged over each token's tubelet (the same grid and slices as the teacher),
 * - random (optional): the same architecture at its initialisation (what pre-training added).
 * It lives in @vrepa/trainer because it joins @vrepa/teachers (the model) and @vrepa/eval (scenes, probes),
 * which are siblings that do not import each other.
 */
import fs from 'node:fs';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { decodeVideo, listCheckpoints } from '@vrepa/core';
import { IMAGENET_MEAN, IMAGENET_STD, VideoMAEPretrain, loadPretrainCheckpoint, pretrainImageSize, type VideoMAEPretrainConfig } from '@vrepa/teachers';
import { physionFeatures, readSceneLabels, trainProbe, type FeatureMatrix, type ProbeCvResult } from '@vrepa/eval';

export interface TeacherProbeOptions {
  /** a pre-training checkpoint (.pth / .safetensors), a checkpoint folder, or a `vrepa teacher pretrain` output folder */
  checkpoint: string;
  /** a scene folder of `vrepa physics generate` (labels.csv + mp4s) */
  scenes: string;
  folds?: number;
  seed?: number;
  /** temporal slices of the token grid (default 3) */
  slices?: number;
  /** also probe the same architecture at initialisation (seed of the init) */
  randomInit?: number | null;
  /** clips encoded per forward pass */
  batch?: number;
  onProgress?: (stage: string, done: number, total: number) => void;
}

export interface ProbeArm {
  accuracy: number;
  std: number;
  fold_accuracies: number[];
  /** features per clip */
  d: number;
}

export interface TeacherProbeReport {
  checkpoint: string;
  scenes: string;
  n: number;
  positives: number;
  folds: number;
  context_frames: number;
  model: string;
  teacher: ProbeArm;
  pixels: ProbeArm;
  random?: ProbeArm;
}

/** The checkpoint file of `--checkpoint`: a file as is; a folder's teacher.pth, checkpoint.pth, or newest checkpoints/step-N/checkpoint.pth. */
export function resolveTeacherCheckpoint(p: string): string {
  if (!fs.existsSync(p)) throw new Error(`teacher probe: checkpoint ${p} does not exist`);
  if (fs.statSync(p).isFile()) return p;
  for (const f of ['teacher.pth', 'checkpoint.pth']) if (fs.existsSync(path.join(p, f))) return path.join(p, f);
  const newest = listCheckpoints(p)[0];
  if (newest && fs.existsSync(path.join(newest.dir, 'checkpoint.pth'))) return path.join(newest.dir, 'checkpoint.pth');
  throw new Error(`teacher probe: ${p} holds no teacher.pth, checkpoint.pth or checkpoints/step-N/checkpoint.pth`);
}

/** The frames of the OCP context given to a model of `numFrames` frames: all of them, or evenly spaced ones. */
export function contextFrameIndices(context: number, numFrames: number): number[] {
  if (context < numFrames) throw new Error(`teacher probe: the scenes have ${context} context frames, fewer than the teacher's ${numFrames} input frames`);
  return Array.from({ length: numFrames }, (_, i) => (numFrames === 1 ? 0 : Math.round((i * (context - 1)) / (numFrames - 1))));
}

/** Clip `[1, F, H, W, 3]` (ImageNet-normalised) of the OCP context of one scene video, at the model's frame size. */
export function sceneClip(file: string, m: VideoMAEPretrainConfig, context: number): tf.Tensor5D {
  const [h, w] = pretrainImageSize(m);
  const v = decodeVideo(file, { maxFrames: context, cover: { width: w, height: h } });
  if (v.count < context) throw new Error(`teacher probe: ${file} has ${v.count} frames, fewer than the ${context} context frames`);
  const idx = contextFrameIndices(context, m.numFrames);
  const fb = h * w * 3;
  const picked = new Uint8Array(idx.length * fb);
  idx.forEach((f, k) => picked.set(v.frames.subarray(f * fb, (f + 1) * fb), k * fb));
  return tf.tidy(() => {
    const x = tf.div(tf.tensor(picked, [1, idx.length, h, w, 3], 'int32').toFloat(), 255);
    return tf.div(tf.sub(x, tf.tensor1d([...IMAGENET_MEAN])), tf.tensor1d([...IMAGENET_STD])) as tf.Tensor5D;
  });
}

/** Pixel tokens `[B, N, 3]`: the mean colour of every tubelet·patch² token (same grid as the teacher's tokens). */
export function pixelTokens(clip: tf.Tensor5D, tubelet: number, patch: number): tf.Tensor3D {
  return tf.tidy(() => {
    const [b, f, h, w, c] = clip.shape;
    const x = tf.reshape(clip, [b, f / tubelet, tubelet, h / patch, patch, w / patch, patch, c]);
    return tf.reshape(tf.mean(x, [2, 4, 6]), [b, (f / tubelet) * (h / patch) * (w / patch), c]) as tf.Tensor3D;
  });
}

function stack(rows: Float32Array[]): FeatureMatrix {
  const d = rows[0]!.length;
  const data = new Float32Array(rows.length * d);
  rows.forEach((r, i) => data.set(r, i * d));
  return { data, n: rows.length, d };
}

const arm = (cv: ProbeCvResult): ProbeArm => ({ accuracy: cv.accuracy, std: cv.std, fold_accuracies: cv.foldAccuracies, d: cv.d });

/** Probe a teacher (and the baselines) on labelled scenes; see the file comment. */
export async function probeTeacher(opts: TeacherProbeOptions): Promise<TeacherProbeReport> {
  const file = resolveTeacherCheckpoint(opts.checkpoint);
  const lab = readSceneLabels(opts.scenes);
  const meta = path.join(opts.scenes, 'dataset.json');
  const context = fs.existsSync(meta) ? Number((JSON.parse(fs.readFileSync(meta, 'utf8')) as { context?: number }).context ?? 16) : 16;
  const folds = opts.folds ?? 5;
  const slices = opts.slices ?? 3;
  const model = loadPretrainCheckpoint(file);
  const m = model.config;
  const random = opts.randomInit !== undefined && opts.randomInit !== null ? new VideoMAEPretrain(m, { seed: opts.randomInit }) : null;
  const grid = model.grid;
  const batch = opts.batch ?? 8;
  const rows: Record<'teacher' | 'pixels' | 'random', Float32Array[]> = { teacher: [], pixels: [], random: [] };
  try {
    for (let s = 0; s < lab.clips.length; s += batch) {
      const names = lab.clips.slice(s, s + batch);
      const clips = names.map((c) => sceneClip(path.join(opts.scenes, `${c}.mp4`), m, context));
      try {
        const x = tf.concat(clips) as tf.Tensor5D;
        const take = (key: 'teacher' | 'pixels' | 'random', tokens: tf.Tensor3D) => {
          const f = physionFeatures({ tokens, grid }, { slices, pool: 'none' });
          const [b, d] = f.shape;
          const data = f.dataSync() as Float32Array;
          for (let i = 0; i < b; i++) rows[key].push(data.slice(i * d, (i + 1) * d));
          tf.dispose([f, tokens]);
        };
        take('teacher', model.encode(x, null, { norm: false }));
        take('pixels', pixelTokens(x, m.tubeletSize, m.patchSize));
        if (random) take('random', random.encode(x, null, { norm: false }));
        x.dispose();
      } finally {
        tf.dispose(clips);
      }
      opts.onProgress?.('features', Math.min(s + batch, lab.clips.length), lab.clips.length);
    }
  } finally {
    model.dispose();
    random?.dispose();
  }
  const probe = async (key: 'teacher' | 'pixels' | 'random') =>
    arm((await trainProbe({ features: stack(rows[key]), labels: lab.labels, groups: lab.groups, groupNames: lab.groupNames }, { folds, seed: opts.seed ?? 0, onProgress: (st, d, t) => opts.onProgress?.(`${key} ${st}`, d, t) })).cv);
  const report: TeacherProbeReport = {
    checkpoint: file,
    scenes: opts.scenes,
    n: lab.clips.length,
    positives: lab.labels.reduce((a, v) => a + v, 0),
    folds,
    context_frames: context,
    model: m.name,
    teacher: await probe('teacher'),
    pixels: await probe('pixels'),
  };
  if (random) report.random = await probe('random');
  return report;
}

/** One line per arm: `teacher  63.3% ± 8.1 (5 folds, 36864 features)`. */
export function formatProbeReport(r: TeacherProbeReport): string {
  const line = (name: string, a: ProbeArm) => `${name.padEnd(8)} ${(100 * a.accuracy).toFixed(1)}% ± ${(100 * a.std).toFixed(1)}  (${r.folds}-fold, ${a.d} features)`;
  return [
    `OCP probe on ${r.n} scenes (${r.positives} contact) of ${r.scenes}, first ${r.context_frames} frames; teacher ${r.model} from ${r.checkpoint}`,
    line('teacher', r.teacher),
    line('pixels', r.pixels),
    ...(r.random ? [line('random', r.random)] : []),
  ].join('\n');
}

/**
 * (Node only.) The masked video pre-training loop — `vrepa teacher pretrain` and `pretrainTeacher()`:
 * VideoMAE / VideoMAEv2 pre-training with the official recipe (AdamW β = (0.9, 0.95), weight decay 0.05
 * except biases / norms / tokens, lr = base_lr · batch / 256 with a linear warm-up from warmup_lr and a
 * cosine decay to min_lr per iteration — `run_mae_pretraining.py` + `utils.cosine_scheduler`), tube masking
 * (optionally VideoMAEv2 running-cell decoder masking), per-patch normalised pixel targets.
 *
 * OUT/ gets: config.resolved.json, log.jsonl (one row per step), tensorboard/, loss.png,
 * reconstruction.png (original / masked / reconstructed frames of a fixed clip and mask; a copy per
 * picture step in reconstructions/), checkpoints/step-<n>/ (atomic, hashed: the official pre-training
 * layout `checkpoint.pth` — state dict under `model` — plus the optimizer moments and the loop state for
 * exact resume) and, at the end, teacher.pth (the last official checkpoint; `VideoMAEv2.fromCheckpoint`
 * reads its encoder as a teacher).
 *
 * The machinery (AdamW, schedules, clipping, checkpoints, logs, TensorBoard, progress) is @vrepa/core's
 * `train/`, shared with the finetuning trainer. Every random choice of step s depends only on (seed, s), so
 * a run resumed from any checkpoint continues exactly as the uninterrupted run.
 */
import fs from 'node:fs';
import path from 'node:path';
import { createHash } from 'node:crypto';
import * as tf from '@tensorflow/tfjs';
import {
  AdamW,
  ProgressBar,
  TensorBoardWriter,
  clipGradients,
  cosineWarmupValue,
  decodeVideo,
  disposeLoaded,
  encodePng,
  graphFunctionsAvailable,
  listCheckpoints,
  loadLatestCheckpoint,
  paramsSignature,
  saveCheckpoint,
  writeLossPlot,
} from '@vrepa/core';
import { makePretrainMasks, type PretrainMasks } from './masking.js';
import { pretrainLoss, pretrainLossAndGrads, reconstructionFrames } from './pretrain-loss.js';
import { compilePretrainStep, type PretrainStep } from './pretrain-step.node.js';
import { savePretrainCheckpoint } from './pretrain-checkpoint.js';
import { VideoMAEPretrain, pretrainConfig, pretrainImageSize, pretrainNoWeightDecay, type VideoMAEPretrainConfig } from './videomae-pretrain.js';
import { centreView, cutSample, pretrainBatch, sampleOrder, stepRng, validateSampling, type ClipSampling, type ClipSource, type RawClip } from './pretrain-data.js';
import { videoFolderSource } from './pretrain-sources.node.js';

/** A pre-training run's settings (the JSON of `--config FILE`; snake_case keys as the official arguments). */
export interface TeacherPretrainConfig {
  /** a registered pre-training config name (e.g. 'videomae-pretrain-tiny') or a full config, plus `overrides` */
  model: string | VideoMAEPretrainConfig;
  /** fields changed on the model config (e.g. `{ "imgSize": [64, 96], "patchSize": 8 }`) */
  model_overrides?: Partial<VideoMAEPretrainConfig>;
  /** model init seed (official init from it) */
  init_seed: number;
  mask: {
    /** encoder tube-mask ratio in (0, 1), official 0.9 */
    ratio: number;
    /** VideoMAEv2 dual masking ('run_cell') or null */
    decoder_mask_type: 'run_cell' | null;
    decoder_mask_ratio: number;
    /** future masking (not in the official code; 0 = official): the last N temporal token slots hidden from the encoder */
    future_slots?: number;
  };
  /** official `normlize_target` */
  normalize_target: boolean;
  data: {
    /** a folder of videos (e.g. `vrepa physics generate --out DIR`); relative paths resolve against the config file */
    dir: string;
    /** official `sampling_rate` */
    sampling_rate: number;
    /** frames are decoded once at this [height, width] (scaled to cover, centre-cropped); default 1.25 × the model size */
    decode_size?: [number, number];
    crop_scale: [number, number];
    crop_ratio: [number, number];
    flip: boolean;
    on_bad_video: 'skip' | 'error';
    max_clips?: number;
    /** only these clip names (file names without extension), e.g. a train split */
    clips?: string[];
    /** the video of the reconstruction pictures (e.g. a held-out clip); default the first training clip */
    picture_video?: string;
  };
  optim: {
    /** official `--lr` (the base lr: the lr used is base_lr · batch_size / 256) */
    base_lr: number;
    /** official `--min_lr` */
    min_lr: number;
    /** official `--warmup_lr` */
    warmup_lr: number;
    warmup_steps: number;
    weight_decay: number;
    betas: [number, number];
    eps: number;
    /** official `--clip_grad` (null = none) */
    clip_grad: number | null;
  };
  train: {
    batch_size: number;
    /** total optimizer steps of the schedule */
    steps: number;
    /** data order, augmentation and mask seed */
    seed: number;
    checkpoint_every: number;
    /** keep the newest N checkpoints (0 = all) */
    keep_last: number;
    /** reconstruction picture every N steps (0 = only at the start and the end) */
    picture_every: number;
    /** loss PNG every N steps (0 = only at the end) */
    plot_every: number;
    tensorboard: boolean;
  };
}

/**
 * Presets. `toy` is the small CPU teacher the project's toy reproduction uses: 16 frames of 64×96 (the 3:2
 * physics scenes, whole frame), patch 8, tubelet 2 → 8×8×12 = 768 tokens, ViT width 192, depth 4; decoder
 * 96 wide, 2 blocks.
 */
export const PRETRAIN_PRESETS: Readonly<Record<string, TeacherPretrainConfig>> = Object.freeze({
  toy: {
    model: 'videomae-pretrain-tiny',
    model_overrides: { name: 'videomae-pretrain-toy', imgSize: [64, 96], patchSize: 8, numFrames: 16, tubeletSize: 2, encoderEmbedDim: 192, encoderDepth: 4, encoderNumHeads: 3, decoderEmbedDim: 96, decoderDepth: 2, decoderNumHeads: 3 },
    init_seed: 0,
    mask: { ratio: 0.9, decoder_mask_type: null, decoder_mask_ratio: 0.5 },
    normalize_target: true,
    data: { dir: 'scenes', sampling_rate: 2, crop_scale: [0.6, 1], crop_ratio: [1.2, 1.8], flip: true, on_bad_video: 'skip' },
    optim: { base_lr: 0.05, min_lr: 1e-5, warmup_lr: 1e-6, warmup_steps: 20, weight_decay: 0.05, betas: [0.9, 0.95], eps: 1e-8, clip_grad: null },
    train: { batch_size: 8, steps: 300, seed: 0, checkpoint_every: 50, keep_last: 2, picture_every: 50, plot_every: 25, tensorboard: true },
  },
});

const isObj = (x: unknown): x is Record<string, unknown> => typeof x === 'object' && x !== null && !Array.isArray(x);

function merge<T>(base: T, over: unknown): T {
  if (!isObj(over) || !isObj(base)) return (over === undefined ? base : over) as T;
  const out: Record<string, unknown> = { ...base };
  for (const [k, v] of Object.entries(over)) out[k] = isObj(v) && isObj(out[k]) ? merge(out[k], v) : v;
  return out as T;
}

/** A preset with overrides (deep-merged; a `model` other than the preset's drops the preset's `model_overrides`). */
export function pretrainPreset(name: string, overrides: unknown = {}): TeacherPretrainConfig {
  const p = PRETRAIN_PRESETS[name];
  if (!p) throw new Error(`teacher pretrain: preset '${name}' is not known (known: ${Object.keys(PRETRAIN_PRESETS).join(', ')})`);
  return resolvePretrainConfig({ preset: name, ...(isObj(overrides) ? overrides : {}) });
}

/** Validate a config (one clear error for the first problem) and fill defaults from the `toy` preset. */
export function resolvePretrainConfig(raw: unknown): TeacherPretrainConfig {
  if (!isObj(raw)) throw new Error('teacher pretrain config: expected a JSON object');
  const unknown = Object.keys(raw).filter((k) => !['preset', 'model', 'model_overrides', 'init_seed', 'mask', 'normalize_target', 'data', 'optim', 'train'].includes(k));
  if (unknown.length) throw new Error(`teacher pretrain config: unknown key(s) ${unknown.join(', ')}`);
  const presetName = typeof raw.preset === 'string' ? raw.preset : 'toy';
  const base = PRETRAIN_PRESETS[presetName];
  if (!base) throw new Error(`teacher pretrain config: preset '${presetName}' is not known (known: ${Object.keys(PRETRAIN_PRESETS).join(', ')})`);
  const { preset: _p, ...rest } = raw;
  const start = structuredClone(base);
  if (rest.model !== undefined && JSON.stringify(rest.model) !== JSON.stringify(base.model)) delete start.model_overrides;
  const c = merge(start, rest) as TeacherPretrainConfig;
  for (const [sec, keys] of Object.entries({ mask: [...Object.keys(base.mask), 'future_slots'], data: [...Object.keys(base.data), 'decode_size', 'max_clips', 'clips', 'picture_video'], optim: Object.keys(base.optim), train: Object.keys(base.train) })) {
    const v = (c as unknown as Record<string, unknown>)[sec];
    if (!isObj(v)) throw new Error(`teacher pretrain config: '${sec}' must be an object`);
    const bad = Object.keys(v).filter((k) => !keys.includes(k));
    if (bad.length) throw new Error(`teacher pretrain config: unknown key(s) ${bad.map((k) => `${sec}.${k}`).join(', ')}`);
  }
  const num = (what: string, v: unknown, ok: (x: number) => boolean, rule: string) => {
    if (typeof v !== 'number' || !ok(v)) throw new Error(`teacher pretrain config: ${what} must be ${rule}, got ${JSON.stringify(v)}`);
  };
  const posInt = (x: number) => Number.isInteger(x) && x >= 1;
  const nonNegInt = (x: number) => Number.isInteger(x) && x >= 0;
  num('mask.ratio', c.mask.ratio, (x) => x > 0 && x < 1, 'in (0, 1)');
  if (c.mask.decoder_mask_type !== null && c.mask.decoder_mask_type !== 'run_cell') throw new Error(`teacher pretrain config: mask.decoder_mask_type must be 'run_cell' or null, got ${JSON.stringify(c.mask.decoder_mask_type)}`);
  num('mask.decoder_mask_ratio', c.mask.decoder_mask_ratio, (x) => x > 0 && x < 1, 'in (0, 1)');
  if (c.mask.future_slots !== undefined) num('mask.future_slots', c.mask.future_slots, nonNegInt, 'a non-negative integer');
  num('optim.base_lr', c.optim.base_lr, (x) => x > 0, '> 0');
  num('optim.min_lr', c.optim.min_lr, (x) => x >= 0, '≥ 0');
  num('optim.warmup_lr', c.optim.warmup_lr, (x) => x >= 0, '≥ 0');
  num('optim.warmup_steps', c.optim.warmup_steps, nonNegInt, 'an integer ≥ 0');
  num('optim.weight_decay', c.optim.weight_decay, (x) => x >= 0, '≥ 0');
  num('optim.eps', c.optim.eps, (x) => x > 0, '> 0');
  if (!Array.isArray(c.optim.betas) || c.optim.betas.length !== 2 || !c.optim.betas.every((b) => typeof b === 'number' && b >= 0 && b < 1)) throw new Error(`teacher pretrain config: optim.betas must be [b1, b2] in [0, 1), got ${JSON.stringify(c.optim.betas)}`);
  if (c.optim.clip_grad !== null) num('optim.clip_grad', c.optim.clip_grad, (x) => x > 0, '> 0 or null');
  num('train.batch_size', c.train.batch_size, posInt, 'a positive integer');
  num('train.steps', c.train.steps, posInt, 'a positive integer');
  num('train.seed', c.train.seed, nonNegInt, 'an integer ≥ 0');
  num('init_seed', c.init_seed, nonNegInt, 'an integer ≥ 0');
  num('train.checkpoint_every', c.train.checkpoint_every, posInt, 'a positive integer');
  num('train.keep_last', c.train.keep_last, nonNegInt, 'an integer ≥ 0');
  num('train.picture_every', c.train.picture_every, nonNegInt, 'an integer ≥ 0');
  num('train.plot_every', c.train.plot_every, nonNegInt, 'an integer ≥ 0');
  if (typeof c.data.dir !== 'string' || !c.data.dir) throw new Error('teacher pretrain config: data.dir must be a folder of videos');
  if (c.data.on_bad_video !== 'skip' && c.data.on_bad_video !== 'error') throw new Error(`teacher pretrain config: data.on_bad_video must be 'skip' or 'error', got ${JSON.stringify(c.data.on_bad_video)}`);
  const model = modelConfigOf(c);
  validateSampling(samplingOf(c, model));
  if (c.data.decode_size !== undefined && !(Array.isArray(c.data.decode_size) && c.data.decode_size.length === 2 && c.data.decode_size.every(posInt)))
    throw new Error(`teacher pretrain config: data.decode_size must be [height, width] (positive integers), got ${JSON.stringify(c.data.decode_size)}`);
  return c;
}

/** The model config of a run (validated: patch / tubelet sizes must divide the clip). */
export function modelConfigOf(c: TeacherPretrainConfig): VideoMAEPretrainConfig {
  try {
    return pretrainConfig(c.model, c.model_overrides ?? {});
  } catch (e) {
    throw new Error(`teacher pretrain config: model: ${(e as Error).message}`);
  }
}

/** The sampling / augmentation of a run. */
export function samplingOf(c: TeacherPretrainConfig, m: VideoMAEPretrainConfig = modelConfigOf(c)): ClipSampling {
  return { numFrames: m.numFrames, samplingRate: c.data.sampling_rate, size: pretrainImageSize(m), cropScale: c.data.crop_scale, cropRatio: c.data.crop_ratio, flip: c.data.flip };
}

/** Frames are decoded at this size: `data.decode_size`, else 1.25 × the model's frame size. */
export function decodeSizeOf(c: TeacherPretrainConfig, m: VideoMAEPretrainConfig = modelConfigOf(c)): [number, number] {
  if (c.data.decode_size) return [c.data.decode_size[0], c.data.decode_size[1]];
  const [h, w] = pretrainImageSize(m);
  const even = (x: number) => 2 * Math.round(x / 2);
  return [even(h * 1.25), even(w * 1.25)];
}

/** What the weights depend on: everything but logging / checkpoint bookkeeping and the picture clip (a resume with another hash is refused). */
export function pretrainConfigHash(c: TeacherPretrainConfig): string {
  const { train, data, ...rest } = c;
  const { checkpoint_every: _a, keep_last: _b, picture_every: _c, plot_every: _d, tensorboard: _e, ...t } = train;
  const { picture_video: _f, ...d } = data;
  return createHash('sha256').update(JSON.stringify({ ...rest, data: d, train: t })).digest('hex');
}

/** The learning rate of optimizer step `k` (0-based): official per-iteration cosine schedule with warm-up, lr scaled by batch/256. */
export function pretrainLr(c: TeacherPretrainConfig, k: number): number {
  const base = (c.optim.base_lr * c.train.batch_size) / 256;
  return cosineWarmupValue(k, { base, final: c.optim.min_lr, total: c.train.steps, warmup: Math.min(c.optim.warmup_steps, c.train.steps), warmupStart: c.optim.warmup_lr });
}

/** One row of log.jsonl. */
export interface PretrainStepLog {
  step: number;
  loss: number | null;
  lr: number;
  grad_norm: number | null;
  seconds: number;
  /** loss of the fixed picture clip and mask (at picture steps) */
  loss_picture?: number;
  /**
   * how the step's loss and gradients ran: 'trace' (eagerly while recorded: the first two steps of a run or
   * a resumed run), 'graph' (one TensorFlow graph run), 'eager' (graph functions off: VREPA_TF_GRAPH=0, another
   * backend, an unpatched binding — or the traces differed, reason logged once)
   */
  step_mode: 'trace' | 'graph' | 'eager';
}

export interface PretrainOptions {
  /** output folder (created) */
  out: string;
  /** continue from the newest valid checkpoint in OUT (otherwise OUT must hold no checkpoints) */
  resume?: boolean;
  /** stop after this step (the schedule still spans train.steps); a checkpoint is written there */
  maxSteps?: number;
  /** called after every step */
  onProgress?: (e: PretrainStepLog) => void;
  /** the clips (default: the videos of data.dir) */
  source?: ClipSource;
  /** folder that a relative data.dir resolves against (default: the working directory) */
  baseDir?: string;
  /** progress line on stderr (default true) */
  progress?: boolean;
  log?: (line: string) => void;
}

export interface PretrainResult {
  /** completed steps (the run's position) */
  steps: number;
  /** steps run by this call */
  stepsRun: number;
  seconds: number;
  resumedFrom: number | null;
  /** the last checkpoint folder */
  checkpoint: string;
  /** OUT/teacher.pth: the last official pre-training checkpoint (model + config) */
  teacher: string;
  logFile: string;
  lossPlot: string | null;
  reconstruction: string;
  /** clips used / left out (with reasons) */
  clips: number;
  skipped: ReadonlyArray<{ item: string; reason: string }>;
  /** mean loss of the first and last 10% of the steps run by this call */
  lossStart: number | null;
  lossEnd: number | null;
  /** how the last step ran (see PretrainStepLog.step_mode) */
  stepMode: 'trace' | 'graph' | 'eager' | null;
}

interface PretrainState {
  step: number;
  optimizerStep: number;
  nanStreak: number;
  skippedSteps: number;
  lr: number;
}

/** `[F, H, W, 3]` in [0, 1] rows (original / masked / reconstructed) → one RGB image: rows of `cols` frames, 2 px gaps, ×zoom. */
export function pictureGrid(rows: Float32Array[], frames: number, h: number, w: number, cols: number[], zoom = 2): { rgb: Uint8Array; width: number; height: number } {
  const gap = 2;
  const W = cols.length * (w * zoom + gap) - gap;
  const H = rows.length * (h * zoom + gap) - gap;
  const rgb = new Uint8Array(W * H * 3).fill(255);
  rows.forEach((data, r) => {
    cols.forEach((f, c) => {
      if (f >= frames) throw new Error(`pictureGrid: frame ${f} of ${frames}`);
      for (let y = 0; y < h * zoom; y++)
        for (let x = 0; x < w * zoom; x++) {
          const src = ((f * h + Math.floor(y / zoom)) * w + Math.floor(x / zoom)) * 3;
          const dst = ((r * (h * zoom + gap) + y) * W + c * (w * zoom + gap) + x) * 3;
          for (let k = 0; k < 3; k++) rgb[dst + k] = Math.round(Math.min(1, Math.max(0, data[src + k]!)) * 255);
        }
    });
  });
  return { rgb, width: W, height: H };
}

function writeAtomic(file: string, data: Uint8Array | string): void {
  const tmp = `${file}.tmp-${process.pid}`;
  fs.writeFileSync(tmp, data);
  fs.renameSync(tmp, file);
}

/**
 * Pre-train a VideoMAE-style teacher (see the file comment). `config` is a config object (validated and
 * completed from the `toy` preset) or the path of a JSON config file. Resolves when the run reaches
 * `maxSteps` (default train.steps); throws one clear error for bad config or data.
 */
export async function pretrainTeacher(config: TeacherPretrainConfig | string, opts: PretrainOptions): Promise<PretrainResult> {
  let baseDir = opts.baseDir ?? process.cwd();
  let raw: unknown = config;
  if (typeof config === 'string') {
    if (!fs.existsSync(config)) throw new Error(`teacher pretrain: config file ${config} does not exist`);
    try {
      raw = JSON.parse(fs.readFileSync(config, 'utf8'));
    } catch (e) {
      throw new Error(`teacher pretrain: config file ${config} is not valid JSON (${(e as Error).message})`);
    }
    baseDir = opts.baseDir ?? path.dirname(path.resolve(config));
  }
  const c = resolvePretrainConfig(raw);
  const log = opts.log ?? ((s: string) => console.error(s));
  const m = modelConfigOf(c);
  const sampling = samplingOf(c, m);
  const maxSteps = Math.min(opts.maxSteps ?? c.train.steps, c.train.steps);
  if (!Number.isInteger(maxSteps) || maxSteps < 1) throw new Error(`teacher pretrain: --max-steps must be a positive integer, got ${opts.maxSteps}`);
  const out = opts.out;
  fs.mkdirSync(out, { recursive: true });
  const existing = listCheckpoints(out);
  if (existing.length && !opts.resume) throw new Error(`teacher pretrain: ${out} already holds checkpoints (newest step ${existing[0]!.step}); pass --resume to continue, or use a new --out folder`);

  const dataDir = path.resolve(baseDir, c.data.dir);
  const source =
    opts.source ??
    videoFolderSource(dataDir, {
      numFrames: m.numFrames,
      decodeSize: decodeSizeOf(c, m),
      onBadVideo: c.data.on_bad_video,
      maxClips: c.data.max_clips,
      only: c.data.clips,
    });
  if (source.size === 0) throw new Error(`pre-training data: the clip source has no clips${source.skipped.length ? ` (${source.skipped.length} skipped; first: ${source.skipped[0]!.item}: ${source.skipped[0]!.reason})` : ''}`);
  if (source.skipped.length) log(`teacher pretrain: ${source.skipped.length} video(s) skipped (first: ${source.skipped[0]!.item}: ${source.skipped[0]!.reason})`);
  log(`teacher pretrain: ${source.size} clips, model ${m.name} (${m.numFrames}×${pretrainImageSize(m).join('×')}, patch ${m.patchSize}, tubelet ${m.tubeletSize}), batch ${c.train.batch_size}, ${c.train.steps} steps`);

  const model = new VideoMAEPretrain(m, { seed: c.init_seed });
  const params = model.params;
  const opt = new AdamW(params, {
    lr: pretrainLr(c, 0),
    beta1: c.optim.betas[0],
    beta2: c.optim.betas[1],
    eps: c.optim.eps,
    weightDecay: c.optim.weight_decay,
    noDecay: (n) => pretrainNoWeightDecay(n, params.get(n)!.shape),
  });
  const configHash = pretrainConfigHash(c);
  const signature = paramsSignature(params);
  let state: PretrainState = { step: 0, optimizerStep: 0, nanStreak: 0, skippedSteps: 0, lr: pretrainLr(c, 0) };
  let resumedFrom: number | null = null;
  let resumedDir = '';
  const logFile = path.join(out, 'log.jsonl');
  let tb: TensorBoardWriter | null = null;
  const pictureFile = path.join(out, 'reconstruction.png');
  let pictureClip: tf.Tensor5D | null = null;
  // the step's loss and gradients as one TensorFlow graph where graph functions run (VREPA_TF_GRAPH=0: eager)
  let graphStep: PretrainStep | null = null;
  let lastMode: PretrainStepLog['step_mode'] | null = null;
  try {
    if (opts.resume) {
      const ck = loadLatestCheckpoint<PretrainState>(out, { configHash, paramsSignature: signature }, (w) => log(`teacher pretrain: ${w}`));
      if (ck) {
        for (const [n, p] of params) {
          const t = ck.params.get(n);
          if (!t) throw new Error(`teacher pretrain: checkpoint ${ck.dir} lacks parameter ${n}`);
          p.assign(t);
        }
        opt.load(ck.exp_avg, ck.exp_avg_sq, ck.state.optimizerStep);
        state = { ...ck.state };
        resumedFrom = ck.state.step;
        resumedDir = ck.dir;
        disposeLoaded(ck);
        log(`teacher pretrain: resumed from step ${resumedFrom}`);
      }
    }
    // log.jsonl keeps only the rows of steps that the restored state has done
    const kept = fs.existsSync(logFile) ? fs.readFileSync(logFile, 'utf8').split('\n').filter((l) => {
      try {
        return l.trim() && (JSON.parse(l) as { step: number }).step <= state.step;
      } catch {
        return false;
      }
    }) : [];
    writeAtomic(logFile, kept.map((l) => l + '\n').join(''));
    writeAtomic(path.join(out, 'config.resolved.json'), JSON.stringify({ ...c, data: { ...c.data, dir: dataDir } }, null, 2) + '\n');
    if (c.train.tensorboard) tb = new TensorBoardWriter(path.join(out, 'tensorboard'));

    // the fixed picture: data.picture_video (or training clip 0), its deterministic view, a fixed mask
    let shown: RawClip = source.clip(0);
    if (c.data.picture_video) {
      const file = path.resolve(baseDir, c.data.picture_video);
      const [h, w] = decodeSizeOf(c, m);
      const v = decodeVideo(file, { cover: { width: w, height: h } });
      shown = { frames: new Uint8Array(v.frames), count: v.count, height: h, width: w };
    }
    const view = centreView(shown, sampling);
    pictureClip = tf.tidy(() => tf.expandDims(cutSample(shown, view, sampling.size), 0) as tf.Tensor5D);
    const pictureMasks = makePretrainMasks(1, model.grid, maskOptions(c), stepRng(c.train.seed, 0, 999));
    const picture = (step: number): number => {
      const r = tf.tidy(() => {
        const l = pretrainLoss(model, pictureClip!, pictureMasks, { normalizeTarget: c.normalize_target });
        const fr = reconstructionFrames(model, pictureClip!, l.outputs, pictureMasks, { normalizeTarget: c.normalize_target });
        return { loss: l.loss.dataSync()[0]!, rows: [fr.original, fr.masked, fr.reconstructed].map((t) => t.dataSync() as Float32Array) };
      });
      const [h, w] = sampling.size;
      const f = sampling.numFrames;
      const cols = Array.from({ length: Math.min(8, f / 2) }, (_, i) => Math.round((i * (f - 1)) / Math.max(1, Math.min(8, f / 2) - 1)));
      const g = pictureGrid(r.rows, f, h, w, cols, h < 96 ? 2 : 1);
      const png = encodePng(g.rgb, g.width, g.height);
      fs.mkdirSync(path.join(out, 'reconstructions'), { recursive: true });
      writeAtomic(path.join(out, 'reconstructions', `step-${String(step).padStart(6, '0')}.png`), png);
      writeAtomic(pictureFile, png);
      return r.loss;
    };
    if (resumedFrom === null) picture(0);

    const save = () =>
      saveCheckpoint<PretrainState>(
        out,
        {
          step: state.step,
          configHash,
          params,
          exp_avg: opt.m,
          exp_avg_sq: opt.v,
          state,
          extra: (dir) => savePretrainCheckpoint(model, path.join(dir, 'checkpoint.pth'), { extra: { step: state.step } }),
        },
        c.train.keep_last,
      );

    const order = sampleOrder(source.size, c.train.seed);
    const bar = new ProgressBar(maxSteps, state.step, opts.progress ?? true);
    const t0 = performance.now();
    const startStep = state.step;
    const losses: number[] = [];
    let lastCheckpoint = resumedDir;
    try {
      while (state.step < maxSteps) {
        const ts = performance.now();
        const k = state.step;
        const lr = pretrainLr(c, k);
        const clip = pretrainBatch(source, sampling, c.train.seed, k, c.train.batch_size, order);
        const masks = makePretrainMasks(c.train.batch_size, model.grid, maskOptions(c), stepRng(c.train.seed, k, 0));
        let lossValue: number | null = null;
        let gradNorm: number | null = null;
        if (!graphStep && graphFunctionsAvailable())
          graphStep = compilePretrainStep(model, { normalizeTarget: c.normalize_target, onFallback: (why) => log(`teacher pretrain: note: steps run eagerly (not as one graph): ${why}`) });
        const mode: PretrainStepLog['step_mode'] = graphStep && graphFunctionsAvailable() ? graphStep.mode() : 'eager';
        try {
          const r = graphStep && mode !== 'eager' ? graphStep(clip, masks) : pretrainLossAndGrads(model, clip, masks, { normalizeTarget: c.normalize_target });
          lossValue = r.loss.dataSync()[0]!;
          r.loss.dispose();
          let grads = r.grads;
          if (!Number.isFinite(lossValue)) {
            tf.dispose([...grads.values()]);
            state.nanStreak += 1;
            state.skippedSteps += 1;
            log(`teacher pretrain: step ${k + 1}: loss is ${lossValue}; step skipped (${state.nanStreak} in a row)`);
            if (state.nanStreak >= 5) throw new Error(`teacher pretrain: ${state.nanStreak} non-finite losses in a row at step ${k + 1}; lower optim.base_lr`);
            lossValue = null;
          } else {
            const clipped = clipGradients(grads, c.optim.clip_grad ?? 0);
            grads = clipped.grads;
            gradNorm = clipped.norm;
            opt.apply(grads, lr);
            tf.dispose([...grads.values()]);
            state.nanStreak = 0;
            state.optimizerStep = opt.step;
          }
        } finally {
          clip.dispose();
        }
        state.step = k + 1;
        state.lr = lr;
        lastMode = mode;
        const entry: PretrainStepLog = { step: state.step, loss: lossValue, lr, grad_norm: gradNorm, seconds: (performance.now() - ts) / 1000, step_mode: mode };
        if (lossValue !== null) losses.push(lossValue);
        const pictureNow = state.step === maxSteps || (c.train.picture_every > 0 && state.step % c.train.picture_every === 0);
        if (pictureNow) entry.loss_picture = picture(state.step);
        fs.appendFileSync(logFile, JSON.stringify(entry) + '\n');
        if (tb) {
          if (lossValue !== null) tb.scalar('loss/train', lossValue, state.step);
          if (entry.loss_picture !== undefined) tb.scalar('loss/picture', entry.loss_picture, state.step);
          tb.scalar('lr', lr, state.step);
          if (gradNorm !== null) tb.scalar('grad_norm', gradNorm, state.step);
        }
        bar.update({ step: state.step, loss: lossValue, lr });
        opts.onProgress?.(entry);
        if (state.step % c.train.checkpoint_every === 0 || state.step === maxSteps) lastCheckpoint = save();
        if (c.train.plot_every > 0 && state.step % c.train.plot_every === 0) await writeLossPlot(logFile, path.join(out, 'loss.png'), LOSS_SERIES, 'teacher pre-training loss');
      }
    } finally {
      bar.done();
    }
    const seconds = (performance.now() - t0) / 1000;
    const lossPlot = await writeLossPlot(logFile, path.join(out, 'loss.png'), LOSS_SERIES, 'teacher pre-training loss').catch((e) => {
      log(`teacher pretrain: warning: loss plot not written (${(e as Error).message})`);
      return null;
    });
    if (!lastCheckpoint) lastCheckpoint = save();
    const teacher = path.join(out, 'teacher.pth');
    fs.copyFileSync(path.join(lastCheckpoint, 'checkpoint.pth'), `${teacher}.tmp-${process.pid}`);
    fs.renameSync(`${teacher}.tmp-${process.pid}`, teacher);
    const tenth = Math.max(1, Math.round(losses.length / 10));
    const mean = (xs: number[]) => (xs.length ? xs.reduce((a, b) => a + b, 0) / xs.length : null);
    return {
      steps: state.step,
      stepsRun: state.step - startStep,
      seconds,
      resumedFrom,
      checkpoint: lastCheckpoint,
      teacher,
      logFile,
      lossPlot,
      reconstruction: pictureFile,
      clips: source.size,
      skipped: source.skipped,
      lossStart: mean(losses.slice(0, tenth)),
      lossEnd: mean(losses.slice(-tenth)),
      stepMode: lastMode,
    };
  } finally {
    graphStep?.dispose();
    tb?.close();
    pictureClip?.dispose();
    opt.dispose();
    model.dispose();
  }
}

const LOSS_SERIES = [
  ['loss', 'train (masked MSE)'],
  ['loss_picture', 'fixed picture clip'],
] as const;

function maskOptions(c: TeacherPretrainConfig) {
  return { maskRatio: c.mask.ratio, decoderMaskType: c.mask.decoder_mask_type, decoderMaskRatio: c.mask.decoder_mask_ratio, futureSlots: c.mask.future_slots ?? 0 };
}

export type { PretrainMasks };

/**
 * The study's models: the teacher (a small VideoMAEv2-style ViT from @vrepa/teachers) and the student (the
 * project's CogVideoX transformer at a small config, trained with @vrepa/trainer's Trainer on an in-memory
 * dataset of space-to-depth latents, caption embeddings and teacher tokens).
 */
import fs from 'node:fs';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import type { TokenGrid } from '@vrepa/align-dims';
import type { VideoMAEv2 } from '@vrepa/teachers';
import { Trainer, parseConfig, type Sample, type TrainConfig, type TrainDataset, type TrainResult } from '@vrepa/trainer';

// ───────────────────────────── teacher ─────────────────────────────

export interface TeacherSpec {
  embedDim: number;
  depth: number;
  numHeads: number;
  patchSize: number;
  tubeletSize: number;
  initSeed: number;
}

/**
 * Teacher tokens of clips `[B, F, H, W, 3]` in [-1, 1]: the official pre-processing (drop frame 0,
 * ImageNet normalisation) at full resolution (factor 1: at this toy size a ÷3 reduction would leave a few
 * pixels per object), then the encoder. `[B, N, D]` on the returned grid.
 */
export function teacherTokens(teacher: VideoMAEv2, clips: tf.Tensor): { tokens: tf.Tensor3D; grid: TokenGrid } {
  const r = teacher.encodeVideo(clips, { factor: 1 });
  return { tokens: r.tokens, grid: r.grid };
}

// ───────────────────────────── student ─────────────────────────────

export interface StudentSpec {
  heads: number;
  headDim: number;
  layers: number;
  /** 1-based align layer (the middle of the stack) */
  alignLayer: number;
  projectorDim: number;
  timeEmbedDim: number;
  textLength: number;
  textDim: number;
  initSeed: number;
}

export function transformerConfig(s: StudentSpec, latentShape: number[]): Record<string, unknown> {
  const [F, h, w, C] = latentShape as [number, number, number, number];
  return {
    num_attention_heads: s.heads,
    attention_head_dim: s.headDim,
    num_layers: s.layers,
    in_channels: C,
    out_channels: C,
    text_embed_dim: s.textDim,
    time_embed_dim: s.timeEmbedDim,
    sample_height: h,
    sample_width: w,
    sample_frames: (F - 1) * 4 + 1,
    max_text_seq_length: s.textLength,
  };
}

/** In-memory training data: latents `[n, F, h, w, C]`, text `[n, L, D]`, optional teacher tokens `[n, N, D]`. */
export class MemoryDataset implements TrainDataset {
  readonly length: number;
  constructor(
    private readonly latents: tf.Tensor,
    private readonly text: tf.Tensor,
    private readonly teacher?: tf.Tensor,
    readonly teacherGrid?: TokenGrid,
  ) {
    this.length = latents.shape[0]!;
  }
  get(i: number): Sample {
    if (!Number.isInteger(i) || i < 0 || i >= this.length) throw new Error(`MemoryDataset: index ${i} is outside [0, ${this.length})`);
    return tf.tidy(() => ({
      latents: tf.squeeze(tf.slice(this.latents, [i], [1]), [0]),
      text: tf.squeeze(tf.slice(this.text, [i], [1]), [0]),
      teacher: this.teacher ? tf.squeeze(tf.slice(this.teacher, [i], [1]), [0]) : undefined,
    })) as Sample;
  }
  describe(): string {
    return `in-memory data: ${this.length} clips, latents [${this.latents.shape.slice(1)}]${this.teacher ? `, teacher tokens [${this.teacher.shape.slice(1)}]` : ''}`;
  }
}

export interface TrainSpec {
  steps: number;
  lr: number;
  batch: number;
  warmup: number;
  seed: number;
  /** 0 = diffusion only */
  lambda: number;
  loss: 'trd' | 'trd-spatial' | 'trd-temporal' | 'repa';
  margin: number;
  gridMatch: 'teacher-space-teacher-time' | 'teacher-interpolated';
}

export interface StudentTrainOptions {
  out: string;
  from: string | Record<string, unknown>;
  student: StudentSpec;
  teacherDim: number;
  train: TrainSpec;
  data: MemoryDataset;
  log?: (m: string) => void;
  progress?: boolean;
}

/** The Trainer config trainStudent runs (also bench/toy-step.ts's, so the bench times exactly this step). */
export function studentTrainConfig(opts: Omit<StudentTrainOptions, 'out' | 'log' | 'progress'>): TrainConfig {
  const { train: t, student: s } = opts;
  return parseConfig({
    model: { transformer: opts.from, training_type: 'full', init_seed: s.initSeed },
    align: { align_layer: s.alignLayer, align_dims: [opts.teacherDim], projector_dim: s.projectorDim, proj_coeff: t.lambda, loss: t.loss, margin: t.margin, grid_match: t.gridMatch },
    teacher: { source: 'synthetic', dim: opts.teacherDim, grid: opts.data.teacherGrid ?? { frames: 1, height: 1, width: 1 } },
    data: { source: 'memory', num_samples: opts.data.length, text_seq_length: s.textLength },
    optim: { learning_rate: t.lr, batch_size: t.batch, lr_scheduler: 'constant_with_warmup', lr_warmup_steps: t.warmup, weight_decay: 1e-4, max_grad_norm: 1.0 },
    train: { seed: t.seed, max_steps: t.steps, checkpointing_steps: t.steps, keep_last: 1, tensorboard: false },
  });
}

/**
 * Train with @vrepa/trainer's Trainer (its step, AdamW, clipping, checkpoints, log.jsonl, loss plot): from a
 * transformer folder (`from`) or a fresh seeded model (`config`). Writes `<out>/final/transformer`.
 */
export async function trainStudent(opts: StudentTrainOptions): Promise<TrainResult> {
  const config = studentTrainConfig(opts);
  const trainer = new Trainer(config, { out: opts.out, dataset: opts.data, progress: opts.progress ?? false, log: opts.log });
  try {
    return await trainer.run();
  } finally {
    trainer.dispose();
    // the trainer's checkpoint duplicates final/ (kept out of the stage to save disk)
    fs.rmSync(path.join(opts.out, 'checkpoints'), { recursive: true, force: true });
  }
}

/** Read a trainer's log.jsonl (step, loss, loss_diff, loss_align). */
export function readTrainLog(file: string): { step: number; loss: number | null; loss_diff: number | null; loss_align: number | null }[] {
  return fs
    .readFileSync(file, 'utf8')
    .split('\n')
    .filter((l) => l.trim())
    .map((l) => JSON.parse(l));
}

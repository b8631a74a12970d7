/**
 * The VideoREPA training losses, as the official trainer computes them
 * (finetune/models/cogvideox_t2v_align/lora_trainer.py `compute_loss` and trainer.py):
 *
 *   t ~ U{0, …, T−1} per sample;  ε ~ N(0, I);  x_t = add_noise(x₀, ε, t)
 *   v̂ = transformer(x_t, text, t)                       (CogVideoX predicts v)
 *   x̂₀ = get_velocity(v̂, x_t, t) = √ᾱ_t·x_t − √(1−ᾱ_t)·v̂
 *   L_diff = mean_b [ mean( w_t · (x̂₀ − x₀)² ) ],  w_t = 1 / (1 − ᾱ_t)
 *   L = L_diff + λ · L_align                         (λ = proj_coeff, 0.5 in the official scripts)
 *
 * ᾱ comes from the scheduler (`alphasCumprod` in ./schedulers — the single source), and the
 * alignment term from @vrepa/align-dims (projector → grid matching → TRD / REPA).
 */
import * as tf from '@tensorflow/tfjs';
import type { Rng } from '@vrepa/core';
import { alignmentLoss, type AlignmentLossOptions, type TokenGrid } from '@vrepa/align-dims';
import type { CogVideoXTransformer3DModel, RotaryMode } from './transformer/model.js';

/** What the losses need from a CogVideoX scheduler (CogVideoXDDIMScheduler / DPM both fit). */
export interface NoiseSchedule {
  readonly alphasCumprod: Float64Array;
  addNoise(original: tf.Tensor, noise: tf.Tensor, timesteps: number[]): tf.Tensor;
  getVelocity(sample: tf.Tensor, noise: tf.Tensor, timesteps: number[]): tf.Tensor;
}

/** `batch` timesteps uniform in [0, T) (torch.randint(0, T, (B,))), from `rng`. */
export function sampleTimesteps(batch: number, numTrainTimesteps: number, rng: Rng): number[] {
  if (!Number.isInteger(batch) || batch < 1) throw new Error(`sampleTimesteps: batch must be a positive integer, got ${batch}`);
  if (!Number.isInteger(numTrainTimesteps) || numTrainTimesteps < 1) throw new Error(`sampleTimesteps: numTrainTimesteps must be a positive integer, got ${numTrainTimesteps}`);
  return Array.from({ length: batch }, () => rng.randint(0, numTrainTimesteps));
}

/** The per-sample loss weights 1/(1 − ᾱ_t) (float64 from the scheduler, then float32). */
export function diffusionWeights(schedule: Pick<NoiseSchedule, 'alphasCumprod'>, timesteps: number[]): Float32Array {
  const T = schedule.alphasCumprod.length;
  return Float32Array.from(timesteps, (t) => {
    if (!Number.isInteger(t) || t < 0 || t >= T) throw new Error(`diffusionLoss: timestep ${t} is outside [0, ${T})`);
    return 1 / (1 - schedule.alphasCumprod[t]!);
  });
}

/**
 * The official diffusion loss from the model output (v): x̂₀ = get_velocity(v, x_t, t); per-sample
 * mean of 1/(1−ᾱ_t)·(x̂₀ − x₀)², then the batch mean. All tensors `[B, …]` of one shape.
 */
export function diffusionLoss(modelOutput: tf.Tensor, noisyLatents: tf.Tensor, latents: tf.Tensor, timesteps: number[], schedule: NoiseSchedule): tf.Scalar {
  for (const [t, n] of [
    [noisyLatents, 'noisyLatents'],
    [latents, 'latents'],
  ] as const) {
    if (t.shape.join() !== modelOutput.shape.join()) throw new Error(`diffusionLoss: ${n} shape [${t.shape}] does not match the model output [${modelOutput.shape}]`);
  }
  const B = modelOutput.shape[0]!;
  if (timesteps.length !== B) throw new Error(`diffusionLoss: ${timesteps.length} timesteps for a batch of ${B}`);
  const w = diffusionWeights(schedule, timesteps);
  return tf.tidy(() => {
    const x0 = schedule.getVelocity(modelOutput, noisyLatents, timesteps);
    const err = tf.reshape(tf.square(tf.sub(x0, latents)), [B, -1]);
    const perSample = tf.mean(tf.mul(err, tf.tensor2d(w, [B, 1])), 1);
    return tf.mean(perSample) as tf.Scalar;
  });
}

export interface TrainingLossOptions {
  /** clean latents `[B, F, h, w, C]` (channels-last) */
  latents: tf.Tensor;
  /** prompt embeddings `[B, L, text_embed_dim]` */
  textEmbeddings: tf.Tensor;
  /** draws timesteps and noise when they are not given */
  rng?: Rng;
  timesteps?: number[];
  noise?: tf.Tensor;
  /**
   * Teacher tokens `[B, N_t, D]` on `teacherGrid` (or already on the loss grid with
   * `align.teacherPrepared`). Without them the alignment term is skipped (plain finetune).
   */
  teacher?: tf.Tensor;
  teacherGrid?: TokenGrid;
  /** λ (the official proj_coeff), default 0.5 */
  lambda?: number;
  /** alignment settings (loss kind, margin, strategy, …); official defaults: TRD, margin 0.1, time ×2 */
  align?: Partial<Omit<AlignmentLossOptions, 'projector' | 'studentGrid' | 'teacherGrid' | 'downsampler'>>;
  /** rotary tables (5B style): default the official trainer's ('trainer') */
  rotary?: RotaryMode;
  /** training-mode dropout stream for the transformer (used only when its config.dropout > 0) */
  dropoutRng?: Rng;
}

export interface TrainingLoss {
  /** L_diff + λ·L_align (or L_diff without a teacher) */
  total: tf.Scalar;
  diffusion: tf.Scalar;
  alignment: tf.Scalar | null;
  timesteps: number[];
}

/**
 * One training objective evaluation (differentiable in every trainable variable of the model): noise
 * the latents at random timesteps, run the align forward, and combine the diffusion and alignment
 * losses. Use inside `tf.variableGrads(() => trainingLoss(…).total)` or an optimizer's minimize.
 */
export function trainingLoss(model: CogVideoXTransformer3DModel, schedule: NoiseSchedule, opts: TrainingLossOptions): TrainingLoss {
  const { latents, textEmbeddings } = opts;
  const B = latents.shape[0]!;
  const T = schedule.alphasCumprod.length;
  if (!opts.timesteps && !opts.rng) throw new Error('trainingLoss: pass rng (or explicit timesteps and noise)');
  if (!opts.noise && !opts.rng) throw new Error('trainingLoss: pass rng (or explicit noise)');
  const timesteps = opts.timesteps ?? sampleTimesteps(B, T, opts.rng!);
  if (timesteps.length !== B) throw new Error(`trainingLoss: ${timesteps.length} timesteps for a batch of ${B}`);
  const lambda = opts.lambda ?? 0.5;
  if (!Number.isFinite(lambda) || lambda < 0) throw new Error(`trainingLoss: lambda must be ≥ 0, got ${lambda}`);
  const withAlign = !!opts.teacher && lambda > 0;
  if (withAlign) {
    if (!model.projector || !model.alignConfig) throw new Error('trainingLoss: a teacher was given but the model has no projector (createAlignParts / a VideoREPA checkpoint)');
    if (!opts.teacherGrid) throw new Error('trainingLoss: teacherGrid is required with teacher tokens');
  }
  let alignment: tf.Scalar | null = null;
  let diffusion: tf.Scalar | null = null;
  const total = tf.tidy(() => {
    const noise = opts.noise ?? opts.rng!.randomTensor(latents.shape, 'normal');
    if (noise.shape.join() !== latents.shape.join()) throw new Error(`trainingLoss: noise shape [${noise.shape}] does not match latents [${latents.shape}]`);
    const noisy = schedule.addNoise(latents, noise, timesteps);
    const out = model.forward(noisy, textEmbeddings, timesteps, {
      alignLayer: withAlign ? model.alignConfig!.align_layer : 0,
      projectAligned: false,
      rotary: opts.rotary ?? 'trainer',
      dropoutRng: opts.dropoutRng,
    });
    const d = diffusionLoss(out.sample, noisy, latents, timesteps, schedule);
    diffusion = tf.keep(d);
    if (!withAlign) return d;
    const studentGrid = model.latentGrid(latents.shape);
    const a = alignmentLoss(out.alignHidden!, opts.teacher!, {
      timeScaleFactor: 2,
      ...opts.align,
      projector: model.projector!,
      downsampler: model.downsampler ?? undefined,
      studentGrid,
      teacherGrid: opts.teacherGrid!,
    });
    alignment = tf.keep(a);
    return tf.add(d, tf.mul(a, lambda)) as tf.Scalar;
  });
  return { total, diffusion: diffusion!, alignment, timesteps };
}

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
 *
 * Every tensor made from the timesteps (the noise coefficients, the loss weights, the model's time
 * projection) is made by `timestepTensors`, before the compute; `trainingLoss` takes them ready-made
 * (`opts.timestepTensors`) or makes them itself, so a step given them creates no tensor from per-step JS
 * values (what tracing a step into one graph needs). Dropout (config.dropout > 0 with a dropoutRng) still
 * draws its masks from JS values inside the forward: such a step is not traceable.
 */
import * as tf from '@tensorflow/tfjs';
import type { Rng } from '@vrepa/core';
import { alignmentLoss, type AlignmentLossOptions, type TokenGrid } from '@vrepa/align-dims';
import type { CogVideoXTransformer3DModel, RotaryMode } from './transformer/model.js';
import type { NoiseCoefficients } from './schedulers/schedulers.js';

/** What the losses need from a CogVideoX scheduler (CogVideoXDDIMScheduler / DPM both fit). */
export interface NoiseSchedule {
  readonly alphasCumprod: Float64Array;
  addNoise(original: tf.Tensor, noise: tf.Tensor, timesteps: number[]): tf.Tensor;
  getVelocity(sample: tf.Tensor, noise: tf.Tensor, timesteps: number[]): tf.Tensor;
  /**
   * Optional, all three or none (both CogVideoX schedulers have them): the coefficients of addNoise /
   * getVelocity made from the timesteps beforehand, and the two operations from them. A schedule without
   * them still works everywhere, but its timestepTensors have no `noiseCoefficients` and the losses
   * call addNoise / getVelocity with the timesteps (so its steps are not traceable).
   */
  noiseCoefficients?(timesteps: number[], rank: number, what?: string, batch?: number): NoiseCoefficients;
  addNoiseWith?(original: tf.Tensor, noise: tf.Tensor, coefficients: NoiseCoefficients): tf.Tensor;
  getVelocityWith?(sample: tf.Tensor, noise: tf.Tensor, coefficients: NoiseCoefficients): tf.Tensor;
}

type CoefficientSchedule = NoiseSchedule & Required<Pick<NoiseSchedule, 'noiseCoefficients' | 'addNoiseWith' | 'getVelocityWith'>>;

function hasCoefficients(s: NoiseSchedule): s is CoefficientSchedule {
  return typeof s.noiseCoefficients === 'function' && typeof s.addNoiseWith === 'function' && typeof s.getVelocityWith === 'function';
}

/**
 * Every tensor a training step makes from its timesteps, made beforehand (see `timestepTensors`).
 * Dispose with `tf.dispose(steps)` (or make them inside a tidy).
 */
export type TimestepTensors = {
  /** the timesteps as numbers (for checks and the returned value; no tensor is made from them) */
  readonly timesteps: number[];
  /**
   * `[√ᾱ_t, √(1−ᾱ_t)]` float32 `[B, 1, …, 1]` at the latents' rank: addNoise's and getVelocity's (the
   * same values). undefined when the schedule has no `noiseCoefficients` (then addNoise / getVelocity
   * get the timesteps).
   */
  readonly noiseCoefficients: NoiseCoefficients | undefined;
  /** the loss weights 1/(1 − ᾱ_t), float32 `[B, 1]` */
  readonly lossWeights: tf.Tensor2D;
  /** the model's time projection time_proj(t) `[B, inner_dim]` (`model.timeProjection`) */
  readonly timeProjection: tf.Tensor2D;
};

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
 * All the tensors a training step makes from its timesteps, made now, exactly as the step would make
 * them (same float64 → float32 arithmetic, same shapes): the addNoise / getVelocity coefficients at the
 * latents' rank, the loss weights `[B, 1]` and the model's time projection `[B, inner_dim]`. Pass them as
 * `trainingLoss({ timestepTensors })`. Timesteps are validated as trainingLoss does (same errors).
 */
export function timestepTensors(
  model: Pick<CogVideoXTransformer3DModel, 'timeProjection'>,
  schedule: NoiseSchedule,
  timesteps: readonly number[],
  latentsShape: readonly number[],
): TimestepTensors {
  const B = latentsShape[0]!;
  const ts = Array.from(timesteps);
  if (ts.length !== B) throw new Error(`timestepTensors: ${ts.length} timesteps for a batch of ${B}`);
  const made: tf.Tensor[] = [];
  try {
    // addNoise's validation first: the error trainingLoss gave for a bad timestep
    const noiseCoefficients = hasCoefficients(schedule) ? schedule.noiseCoefficients(ts, latentsShape.length, 'addNoise', B) : undefined;
    if (noiseCoefficients) made.push(...noiseCoefficients);
    const lossWeights = tf.tensor2d(diffusionWeights(schedule, ts), [B, 1]);
    made.push(lossWeights);
    const timeProjection = model.timeProjection(ts);
    return { timesteps: ts, noiseCoefficients, lossWeights, timeProjection };
  } catch (e) {
    tf.dispose(made);
    throw e;
  }
}

function checkLossShapes(modelOutput: tf.Tensor, noisyLatents: tf.Tensor, latents: tf.Tensor, timesteps: readonly number[]): number {
  for (const [t, n] of [
    [noisyLatents, 'noisyLatents'],
    [latents, 'latents'],
  ] as const) {
    if (t.shape.join() !== modelOutput.shape.join()) throw new Error(`diffusionLoss: ${n} shape [${t.shape}] does not match the model output [${modelOutput.shape}]`);
  }
  const B = modelOutput.shape[0]!;
  if (timesteps.length !== B) throw new Error(`diffusionLoss: ${timesteps.length} timesteps for a batch of ${B}`);
  return B;
}

/**
 * The official diffusion loss from the model output (v): x̂₀ = get_velocity(v, x_t, t); per-sample
 * mean of 1/(1−ᾱ_t)·(x̂₀ − x₀)², then the batch mean. All tensors `[B, …]` of one shape.
 */
export function diffusionLoss(modelOutput: tf.Tensor, noisyLatents: tf.Tensor, latents: tf.Tensor, timesteps: number[], schedule: NoiseSchedule): tf.Scalar {
  const B = checkLossShapes(modelOutput, noisyLatents, latents, timesteps);
  const w = diffusionWeights(schedule, timesteps);
  return tf.tidy(() => {
    const noiseCoefficients = hasCoefficients(schedule) ? schedule.noiseCoefficients(timesteps, modelOutput.rank, 'getVelocity', B) : undefined;
    return diffusionLossFrom(modelOutput, noisyLatents, latents, { timesteps, noiseCoefficients, lossWeights: tf.tensor2d(w, [B, 1]) }, schedule);
  });
}

/**
 * diffusionLoss from tensors made beforehand (`timestepTensors`): the getVelocity coefficients and the
 * loss weights. Makes no tensor from the timesteps (unless the schedule has no coefficients).
 */
export function diffusionLossFrom(
  modelOutput: tf.Tensor,
  noisyLatents: tf.Tensor,
  latents: tf.Tensor,
  steps: Pick<TimestepTensors, 'timesteps' | 'noiseCoefficients' | 'lossWeights'>,
  schedule: NoiseSchedule,
): tf.Scalar {
  const B = checkLossShapes(modelOutput, noisyLatents, latents, steps.timesteps);
  if (steps.lossWeights.shape.join() !== `${B},1`) throw new Error(`diffusionLoss: lossWeights must be [${B}, 1], got [${steps.lossWeights.shape}]`);
  return tf.tidy(() => {
    const x0 = velocity(schedule, modelOutput, noisyLatents, steps);
    const err = tf.reshape(tf.square(tf.sub(x0, latents)), [B, -1]);
    const perSample = tf.mean(tf.mul(err, steps.lossWeights), 1);
    return tf.mean(perSample) as tf.Scalar;
  });
}

function coefficientSchedule(schedule: NoiseSchedule, what: string): CoefficientSchedule {
  if (!hasCoefficients(schedule)) throw new Error(`${what}: noise coefficients were given, but the schedule has no noiseCoefficients / addNoiseWith / getVelocityWith`);
  return schedule;
}

function velocity(schedule: NoiseSchedule, sample: tf.Tensor, noise: tf.Tensor, steps: Pick<TimestepTensors, 'timesteps' | 'noiseCoefficients'>): tf.Tensor {
  const c = steps.noiseCoefficients;
  return c ? coefficientSchedule(schedule, 'diffusionLoss').getVelocityWith(sample, noise, c) : schedule.getVelocity(sample, noise, Array.from(steps.timesteps));
}

function noised(schedule: NoiseSchedule, original: tf.Tensor, noise: tf.Tensor, steps: Pick<TimestepTensors, 'timesteps' | 'noiseCoefficients'>): tf.Tensor {
  const c = steps.noiseCoefficients;
  return c ? coefficientSchedule(schedule, 'trainingLoss').addNoiseWith(original, noise, c) : schedule.addNoise(original, noise, Array.from(steps.timesteps));
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
   * The tensors made from the timesteps, made beforehand by `timestepTensors(model, schedule, timesteps,
   * latents.shape)`: then the loss makes no tensor from per-step JS values (with `noise` given too, and
   * no dropout), as tracing a step needs. Their timesteps are the step's (`timesteps`, if also given,
   * must equal them). The caller owns and disposes them.
   */
  timestepTensors?: TimestepTensors;
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
  const given = opts.timestepTensors;
  if (!opts.timesteps && !given && !opts.rng) throw new Error('trainingLoss: pass rng (or explicit timesteps and noise)');
  if (!opts.noise && !opts.rng) throw new Error('trainingLoss: pass rng (or explicit noise)');
  if (given && opts.timesteps && given.timesteps.join() !== opts.timesteps.join()) {
    throw new Error(`trainingLoss: timesteps [${opts.timesteps}] differ from those of timestepTensors [${given.timesteps}]`);
  }
  const timesteps = given ? Array.from(given.timesteps) : (opts.timesteps ?? sampleTimesteps(B, T, opts.rng!));
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
    // made here (and freed by this tidy) unless given: the one code path
    const steps = given ?? timestepTensors(model, schedule, timesteps, latents.shape);
    const noisy = noised(schedule, latents, noise, steps);
    const out = model.forward(noisy, textEmbeddings, { timeProjection: steps.timeProjection }, {
      alignLayer: withAlign ? model.alignConfig!.align_layer : 0,
      projectAligned: false,
      rotary: opts.rotary ?? 'trainer',
      dropoutRng: opts.dropoutRng,
    });
    const d = diffusionLossFrom(out.sample, noisy, latents, steps, schedule);
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

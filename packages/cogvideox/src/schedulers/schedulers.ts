/**
 * CogVideoX DDIM and DPM schedulers with the exact semantics of the official (bundled diffusers) classes.
 * Tensors are float32 with the batch first (any layout after it: [B, F, h, w, C] here, [B, F, C, H, W] in
 * PyTorch — every op is elementwise with a per-sample scalar). Scalars are computed in float64 and rounded
 * to float32 once, as torch does for a float64 0-d tensor times a float32 tensor.
 */
import fs from 'node:fs';
import * as tf from '@tensorflow/tfjs';
import {
  type CogVideoXSchedulerConfig,
  computeAlphasCumprod,
  inferenceTimesteps,
  resolveSchedulerConfig,
} from './alphas.js';

/** Supplies standard-normal noise of a shape; the DPM step draws through it (injectable for reproducibility). */
export type NoiseSource = (shape: number[]) => tf.Tensor;

export interface StepOutput {
  prevSample: tf.Tensor;
  predOriginalSample: tf.Tensor;
}

function timestepList(t: number[] | tf.Tensor, what: string): number[] {
  const list = t instanceof tf.Tensor ? Array.from(t.dataSync()) : t;
  return list;
}

/**
 * `[√ᾱ_t, √(1−ᾱ_t)]` per batch item, float32 `[B, 1, …, 1]` at the sample's rank: what addNoise and
 * getVelocity multiply by (see `noiseCoefficients`).
 */
export type NoiseCoefficients = [sqrtAlpha: tf.Tensor, sqrtOneMinusAlpha: tf.Tensor];

function checkPair(sample: tf.Tensor, noise: tf.Tensor, what: string): void {
  if (sample.shape.join() !== noise.shape.join()) {
    throw new Error(`${what}: noise shape [${noise.shape}] does not match sample shape [${sample.shape}]`);
  }
}

function checkCoefficients(c: NoiseCoefficients, sample: tf.Tensor, what: string): NoiseCoefficients {
  const want = [sample.shape[0]!, ...Array(sample.rank - 1).fill(1)].join();
  for (const [t, n] of [
    [c[0], 'sqrtAlpha'],
    [c[1], 'sqrtOneMinusAlpha'],
  ] as const) {
    if (!(t instanceof tf.Tensor) || t.shape.join() !== want) {
      throw new Error(`${what}: coefficient ${n} must be [${want}] (batch, then ones to the sample's rank), got ${t instanceof tf.Tensor ? `[${t.shape}]` : typeof t}`);
    }
  }
  return c;
}

abstract class CogVideoXSchedulerBase {
  readonly config: CogVideoXSchedulerConfig;
  /** ᾱ_t in float64, t = 0..T−1. */
  readonly alphasCumprod: Float64Array;
  /** ᾱ used after the last step. */
  readonly finalAlphaCumprod: number;
  readonly initNoiseSigma = 1.0;
  numInferenceSteps: number | undefined;
  timesteps: number[];

  constructor(config: Partial<CogVideoXSchedulerConfig> | Record<string, unknown> = {}) {
    this.config = resolveSchedulerConfig(config as Record<string, unknown>, `${this.constructor.name} config`);
    this.alphasCumprod = computeAlphasCumprod(this.config);
    this.finalAlphaCumprod = this.config.set_alpha_to_one ? 1.0 : this.alphasCumprod[0]!;
    this.timesteps = Array.from({ length: this.config.num_train_timesteps }, (_, i) => this.config.num_train_timesteps - 1 - i);
  }

  /** Read a diffusers `scheduler_config.json`. */
  static readConfig(path: string): Record<string, unknown> {
    try {
      return JSON.parse(fs.readFileSync(path, 'utf8'));
    } catch (e) {
      throw new Error(`${path}: cannot read scheduler config (${(e as Error).message})`);
    }
  }

  setTimesteps(numInferenceSteps: number): number[] {
    this.timesteps = inferenceTimesteps(this.config, numInferenceSteps);
    this.numInferenceSteps = numInferenceSteps;
    return this.timesteps;
  }

  /**
   * The per-sample coefficients of addNoise / getVelocity, `[√ᾱ_t, √(1−ᾱ_t)]`, each float32 `[B, 1, …, 1]`
   * at `rank` (ᾱ is cast to float32 first, as the official add_noise/get_velocity cast ᾱ to the sample's
   * dtype). Made once from the timesteps, they can be passed to addNoiseWith / getVelocityWith, so the
   * step itself makes no tensor from the timesteps. `what` names the caller in errors; `batch`, when
   * given, is checked against the number of timesteps.
   */
  noiseCoefficients(timesteps: number[] | tf.Tensor, rank: number, what = 'noiseCoefficients', batch?: number): NoiseCoefficients {
    const ts = timestepList(timesteps, what);
    if (batch !== undefined && ts.length !== batch) throw new Error(`${what}: ${ts.length} timesteps for a batch of ${batch}`);
    const T = this.config.num_train_timesteps;
    const a = new Float32Array(ts.length);
    const b = new Float32Array(ts.length);
    ts.forEach((t, i) => {
      if (!Number.isInteger(t) || t < 0 || t >= T) throw new Error(`${what}: timestep ${t} is outside [0, ${T})`);
      const a32 = Math.fround(this.alphasCumprod[t]!);
      a[i] = Math.fround(Math.sqrt(a32));
      b[i] = Math.fround(Math.sqrt(Math.fround(1 - a32)));
    });
    const shape = [ts.length, ...Array(rank - 1).fill(1)];
    return [tf.tensor(a, shape), tf.tensor(b, shape)];
  }

  /** x_t = √ᾱ_t·x0 + √(1−ᾱ_t)·ε, one timestep per batch item. */
  addNoise(original: tf.Tensor, noise: tf.Tensor, timesteps: number[] | tf.Tensor): tf.Tensor {
    checkPair(original, noise, 'addNoise');
    return tf.tidy(() => this.addNoiseWith(original, noise, this.noiseCoefficients(timesteps, original.rank, 'addNoise', original.shape[0]!)));
  }

  /** addNoise from precomputed coefficients (see noiseCoefficients): creates no tensor from JS values. */
  addNoiseWith(original: tf.Tensor, noise: tf.Tensor, coefficients: NoiseCoefficients): tf.Tensor {
    checkPair(original, noise, 'addNoise');
    const [a, b] = checkCoefficients(coefficients, original, 'addNoise');
    return tf.tidy(() => tf.add(tf.mul(a, original), tf.mul(b, noise)));
  }

  /** v = √ᾱ_t·ε − √(1−ᾱ_t)·x (the trainer calls getVelocity(modelOutput, noisyLatents, t) to get x0 from v). */
  getVelocity(sample: tf.Tensor, noise: tf.Tensor, timesteps: number[] | tf.Tensor): tf.Tensor {
    checkPair(sample, noise, 'getVelocity');
    return tf.tidy(() => this.getVelocityWith(sample, noise, this.noiseCoefficients(timesteps, sample.rank, 'getVelocity', sample.shape[0]!)));
  }

  /** getVelocity from precomputed coefficients (the same values as addNoise's): creates no tensor from JS values. */
  getVelocityWith(sample: tf.Tensor, noise: tf.Tensor, coefficients: NoiseCoefficients): tf.Tensor {
    checkPair(sample, noise, 'getVelocity');
    const [a, b] = checkCoefficients(coefficients, sample, 'getVelocity');
    return tf.tidy(() => tf.sub(tf.mul(a, noise), tf.mul(b, sample)));
  }

  protected alphaAt(t: number, what: string): number {
    const T = this.config.num_train_timesteps;
    if (!Number.isInteger(t) || t >= T) throw new Error(`${what}: timestep ${t} is outside [0, ${T})`);
    return t >= 0 ? this.alphasCumprod[t]! : this.finalAlphaCumprod;
  }

  protected prevTimestep(timestep: number): number {
    if (this.numInferenceSteps === undefined) {
      throw new Error('step: number of inference steps is not set; call setTimesteps(n) first');
    }
    return timestep - Math.floor(this.config.num_train_timesteps / this.numInferenceSteps);
  }

  /** x0 from the model output, per prediction type (scalars float64 → float32). */
  protected predOriginal(modelOutput: tf.Tensor, sample: tf.Tensor, alphaProdT: number): tf.Tensor {
    const betaProdT = 1 - alphaProdT;
    const s = (x: number) => tf.scalar(Math.fround(x));
    switch (this.config.prediction_type) {
      case 'epsilon':
        return tf.div(tf.sub(sample, tf.mul(s(betaProdT ** 0.5), modelOutput)), s(alphaProdT ** 0.5));
      case 'sample':
        return modelOutput.clone();
      case 'v_prediction':
        return tf.sub(tf.mul(s(alphaProdT ** 0.5), sample), tf.mul(s(betaProdT ** 0.5), modelOutput));
    }
  }

  protected clip(x0: tf.Tensor): tf.Tensor {
    if (!this.config.clip_sample) return x0;
    const r = this.config.clip_sample_range;
    return tf.clipByValue(x0, -r, r);
  }
}

/** The CogVideoX DDIM scheduler (deterministic, η = 0 as the official class implements it). */
export class CogVideoXDDIMScheduler extends CogVideoXSchedulerBase {
  static fromConfigFile(path: string): CogVideoXDDIMScheduler {
    return new CogVideoXDDIMScheduler(CogVideoXSchedulerBase.readConfig(path));
  }

  step(modelOutput: tf.Tensor, timestep: number, sample: tf.Tensor): StepOutput {
    const prev = this.prevTimestep(timestep);
    return tf.tidy(() => {
      const alphaProdT = this.alphaAt(timestep, 'step');
      const alphaProdTPrev = this.alphaAt(prev, 'step');
      const predOriginalSample = this.clip(this.predOriginal(modelOutput, sample, alphaProdT));
      const at = ((1 - alphaProdTPrev) / (1 - alphaProdT)) ** 0.5;
      const bt = alphaProdTPrev ** 0.5 - alphaProdT ** 0.5 * at;
      const prevSample = tf.add(tf.mul(tf.scalar(Math.fround(at)), sample), tf.mul(tf.scalar(Math.fround(bt)), predOriginalSample));
      return { prevSample, predOriginalSample };
    });
  }
}

/** The per-step coefficients of the DPM solver (exposed for tests and diagnostics). */
export interface DpmCoefficients {
  alphaProdT: number;
  alphaProdTPrev: number;
  alphaProdTBack: number | null;
  h: number;
  r: number | null;
  lamb: number;
  lambNext: number;
  mult: number[];
  multNoise: number;
}

/** The CogVideoX DPM-Solver++(2M)-style stochastic scheduler. */
export class CogVideoXDPMScheduler extends CogVideoXSchedulerBase {
  static fromConfigFile(path: string): CogVideoXDPMScheduler {
    return new CogVideoXDPMScheduler(CogVideoXSchedulerBase.readConfig(path));
  }

  /** float64 coefficients of one step, with the official inf/−inf behaviour at zero terminal SNR. */
  coefficients(timestep: number, timestepBack: number | null): DpmCoefficients {
    const prev = this.prevTimestep(timestep);
    const alphaProdT = this.alphaAt(timestep, 'step');
    const alphaProdTPrev = this.alphaAt(prev, 'step');
    const alphaProdTBack = timestepBack === null ? null : this.alphaAt(timestepBack, 'step');
    const lambda = (a: number) => Math.log((a / (1 - a)) ** 0.5);
    const lamb = lambda(alphaProdT);
    const lambNext = lambda(alphaProdTPrev);
    const h = lambNext - lamb;
    const r = alphaProdTBack === null ? null : (lamb - lambda(alphaProdTBack)) / h;
    const mult = [((1 - alphaProdTPrev) / (1 - alphaProdT)) ** 0.5 * Math.exp(-h), Math.expm1(-2 * h) * alphaProdTPrev ** 0.5];
    if (r !== null) mult.push(1 + 1 / (2 * r), 1 / (2 * r));
    const multNoise = (1 - alphaProdTPrev) ** 0.5 * (1 - Math.exp(-2 * h)) ** 0.5;
    return { alphaProdT, alphaProdTPrev, alphaProdTBack, h, r, lamb, lambNext, mult, multNoise };
  }

  /**
   * One step. `oldPredOriginalSample` is the previous step's x0 prediction (null on the first step),
   * `timestepBack` the previous timestep (null on the first). Draws noise once (first or last step) or
   * twice (the first draw is discarded, as the official code does) from `noise`.
   */
  step(
    modelOutput: tf.Tensor,
    oldPredOriginalSample: tf.Tensor | null,
    timestep: number,
    timestepBack: number | null,
    sample: tf.Tensor,
    opts: { noise: NoiseSource },
  ): StepOutput {
    const prev = this.prevTimestep(timestep);
    const c = this.coefficients(timestep, timestepBack);
    return tf.tidy(() => {
      const s = (x: number) => tf.scalar(Math.fround(x));
      const predOriginalSample = this.clip(this.predOriginal(modelOutput, sample, c.alphaProdT));
      const combine = (x0: tf.Tensor, noise: tf.Tensor) =>
        tf.add(tf.sub(tf.mul(s(c.mult[0]!), sample), tf.mul(s(c.mult[1]!), x0)), tf.mul(s(c.multNoise), noise));
      const first = opts.noise(sample.shape);
      if (oldPredOriginalSample === null || prev < 0) {
        return { prevSample: combine(predOriginalSample, first), predOriginalSample };
      }
      if (c.mult.length < 4) throw new Error('step: timestepBack is required when oldPredOriginalSample is given');
      const denoisedD = tf.sub(tf.mul(s(c.mult[2]!), predOriginalSample), tf.mul(s(c.mult[3]!), oldPredOriginalSample));
      const second = opts.noise(sample.shape);
      return { prevSample: combine(denoisedD, second), predOriginalSample };
    });
  }
}

export type CogVideoXScheduler = CogVideoXDDIMScheduler | CogVideoXDPMScheduler;

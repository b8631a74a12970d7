/**
 * CogVideoXPipeline (text → video), following the official (bundled diffusers) pipeline:
 * prompt and negative prompt (default '') → T5 at max_sequence_length 226 without attention mask →
 * cat([negative, positive]) when guidance_scale > 1 → initial latents N(0, 1)·init_noise_sigma (seeded
 * Rng; not torch's generator) → for each timestep: the transformer on the doubled batch, classifier-free
 * guidance (optionally the official dynamic CFG, which uses the timestep value t), the DDIM or DPM step
 * (DPM with the previous x0 prediction and the previous timestep) → latents / scaling_factor → VAE decode
 * → frames in [0, 1]. Channels-last throughout: latents `[B, f, h, w, C]`, video `[B, F, H, W, 3]`.
 */
import fs from 'node:fs';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { Rng } from '@vrepa/core';
import { CogVideoXDDIMScheduler, CogVideoXDPMScheduler, type CogVideoXScheduler } from '../schedulers/schedulers.js';
import { CogVideoXTransformer3DModel } from '../transformer/model.js';
import { fromPretrained as transformerFromPretrained } from '../transformer/load.js';
import { loadLora } from '../lora/lora.js';
import { T5EncoderModel } from '../t5/model.js';
import { T5Tokenizer } from '../t5/tokenizer.js';
import { loadT5EncoderFromDir } from '../t5/load.js';
import { encodePrompts } from '../t5/encode.js';
import { AutoencoderKLCogVideoX } from '../vae/model.js';
import { loadVaeFromDir } from '../vae/load.js';

export interface PipelineComponents {
  tokenizer: T5Tokenizer;
  textEncoder: T5EncoderModel;
  transformer: CogVideoXTransformer3DModel;
  vae: AutoencoderKLCogVideoX;
  scheduler: CogVideoXScheduler;
}

export interface StepInfo {
  /** 0-based step index */
  step: number;
  total: number;
  timestep: number;
  /** milliseconds since the loop started (after this step) */
  elapsedMs: number;
}

export interface GenerateOptions {
  prompt: string | string[];
  /** default '' (the official default) */
  negativePrompt?: string | string[];
  /** pixels; default transformer sample_height × VAE factor */
  height?: number;
  width?: number;
  /** default transformer sample_frames; must be 1 + temporal_compression_ratio·k */
  numFrames?: number;
  /** default 50 */
  numInferenceSteps?: number;
  /** default 6; > 1 turns classifier-free guidance on */
  guidanceScale?: number;
  /** the official dynamic CFG schedule */
  useDynamicCfg?: boolean;
  /** seed of the initial noise and of the DPM noise (default 42) */
  seed?: number;
  rng?: Rng;
  /** initial latents `[B, f, h, w, C]` instead of drawing them */
  latents?: tf.Tensor;
  /** default 226 */
  maxSequenceLength?: number;
  /** 'video' (default) or 'latent' (skip the VAE) */
  outputType?: 'video' | 'latent';
  /** VAE spatial tiling for decode (default: the VAE's setting) */
  tiling?: boolean;
  onStep?: (info: StepInfo) => void;
  /** called with a warning text (e.g. a prompt truncated to max_sequence_length) */
  onWarning?: (text: string) => void;
}

export interface GenerateOutput {
  /** `[B, F, H, W, 3]` in [0, 1] (absent for outputType 'latent') */
  video?: tf.Tensor;
  /** final latents `[B, f, h, w, C]` (scaled, as the transformer sees them) */
  latents: tf.Tensor;
}

/** The folders a diffusers CogVideoX pipeline folder has. */
export const PIPELINE_SUBFOLDERS = ['transformer', 'vae', 'text_encoder', 'tokenizer', 'scheduler'] as const;

/** The official dynamic CFG: 1 + g·(1 − cos(π·((n − t)/n)^5))/2 with the timestep value t. */
export function dynamicGuidance(guidanceScale: number, numInferenceSteps: number, t: number): number {
  return 1 + (guidanceScale * (1 - Math.cos(Math.PI * ((numInferenceSteps - t) / numInferenceSteps) ** 5))) / 2;
}

export class CogVideoXPipeline {
  constructor(readonly components: PipelineComponents) {}

  get transformer(): CogVideoXTransformer3DModel {
    return this.components.transformer;
  }
  get vae(): AutoencoderKLCogVideoX {
    return this.components.vae;
  }
  get scheduler(): CogVideoXScheduler {
    return this.components.scheduler;
  }

  /**
   * Load a diffusers pipeline folder (`model_index.json`, transformer/, vae/, text_encoder/,
   * tokenizer/ with tokenizer.json, scheduler/). Missing sub-folders are listed in one error.
   */
  static fromPretrained(dir: string, opts: { lora?: string; loraAlpha?: number; variant?: string } = {}): CogVideoXPipeline {
    if (!fs.existsSync(dir) || !fs.statSync(dir).isDirectory()) throw new Error(`CogVideoXPipeline: model folder ${dir} does not exist`);
    const missing = PIPELINE_SUBFOLDERS.filter((s) => !fs.existsSync(path.join(dir, s)));
    if (missing.length)
      throw new Error(`CogVideoXPipeline: ${dir} is missing the sub-folder(s) ${missing.join(', ')} (a diffusers CogVideoX folder has ${PIPELINE_SUBFOLDERS.join(', ')}; vrepa init-model writes one)`);
    const scheduler = loadScheduler(path.join(dir, 'scheduler'));
    const tokenizer = T5Tokenizer.fromFile(path.join(dir, 'tokenizer'));
    const made: Array<{ dispose(): void }> = [];
    try {
      const textEncoder = loadT5EncoderFromDir(path.join(dir, 'text_encoder'), { variant: opts.variant });
      made.push(textEncoder);
      const vae = loadVaeFromDir(path.join(dir, 'vae'), { variant: opts.variant });
      made.push(vae);
      const { model: transformer } = transformerFromPretrained(path.join(dir, 'transformer'), { variant: opts.variant });
      made.push(transformer);
      if (opts.lora) loadLora(transformer, opts.lora, { alpha: opts.loraAlpha });
      return new CogVideoXPipeline({ tokenizer, textEncoder, transformer, vae, scheduler });
    } catch (e) {
      made.forEach((m) => m.dispose());
      throw e;
    }
  }

  dispose(): void {
    this.components.textEncoder.dispose();
    this.components.transformer.dispose();
    this.components.vae.dispose();
  }

  /** T5 embeddings `[B, L, d]` of prompts, as `_get_t5_prompt_embeds` (padding to L, no attention mask). */
  encodePrompt(prompts: string[], maxSequenceLength = 226, onWarning?: (t: string) => void): tf.Tensor {
    const d = this.components.textEncoder.config.d_model;
    if (d !== this.transformer.config.text_embed_dim)
      throw new Error(`CogVideoXPipeline: text encoder d_model ${d} does not match the transformer's text_embed_dim ${this.transformer.config.text_embed_dim}`);
    return encodePrompts(this.components.tokenizer, this.components.textEncoder, prompts, { maxLength: maxSequenceLength, onWarning });
  }

  /** Check sizes against the models; returns the resolved sizes. */
  resolveSizes(opts: Pick<GenerateOptions, 'height' | 'width' | 'numFrames' | 'numInferenceSteps'>): { height: number; width: number; numFrames: number; steps: number } {
    const tc = this.transformer.config;
    const s = this.vae.spatialFactor;
    const height = opts.height ?? tc.sample_height * s;
    const width = opts.width ?? tc.sample_width * s;
    const numFrames = opts.numFrames ?? tc.sample_frames;
    const steps = opts.numInferenceSteps ?? 50;
    const unit = s * tc.patch_size;
    if (!Number.isInteger(steps) || steps < 1) throw new Error(`CogVideoXPipeline: numInferenceSteps must be an integer ≥ 1, got ${steps}`);
    if (!Number.isInteger(height) || !Number.isInteger(width) || height % unit !== 0 || width % unit !== 0 || height <= 0 || width <= 0)
      throw new Error(`CogVideoXPipeline: height and width must be positive multiples of ${unit} (VAE factor ${s} × patch size ${tc.patch_size}), got ${height}×${width}`);
    const t = this.vae.config.temporal_compression_ratio;
    if (!Number.isInteger(numFrames) || numFrames < 1 || (numFrames - 1) % t !== 0)
      throw new Error(`CogVideoXPipeline: numFrames must be ${t}k+1 (1, ${t + 1}, ${2 * t + 1}, …, 49), got ${numFrames}`);
    return { height, width, numFrames, steps };
  }

  /** Generate video(s) from text. Deterministic for a fixed seed on one backend. */
  async generate(opts: GenerateOptions): Promise<GenerateOutput> {
    const prompts = typeof opts.prompt === 'string' ? [opts.prompt] : opts.prompt;
    if (!Array.isArray(prompts) || prompts.length === 0 || prompts.some((p) => typeof p !== 'string'))
      throw new Error('CogVideoXPipeline: prompt must be a string or a non-empty list of strings');
    const B = prompts.length;
    const negRaw = opts.negativePrompt ?? '';
    const negatives = typeof negRaw === 'string' ? new Array<string>(B).fill(negRaw) : negRaw;
    if (negatives.length !== B) throw new Error(`CogVideoXPipeline: ${negatives.length} negative prompts for ${B} prompts`);
    const guidance = opts.guidanceScale ?? 6;
    if (!Number.isFinite(guidance)) throw new Error(`CogVideoXPipeline: guidanceScale must be a finite number, got ${guidance}`);
    const { height, width, numFrames, steps } = this.resolveSizes(opts);
    const tc = this.transformer.config;
    const doCfg = guidance > 1;
    const maxLen = opts.maxSequenceLength ?? 226;
    const rng = opts.rng ?? Rng.fromSeed(opts.seed ?? 42);

    const embeds = tf.tidy(() => {
      const pos = this.encodePrompt(prompts, maxLen, opts.onWarning);
      return doCfg ? tf.concat([this.encodePrompt(negatives, maxLen, opts.onWarning), pos], 0) : pos;
    });
    const timesteps = this.scheduler.setTimesteps(steps);
    const tComp = this.vae.config.temporal_compression_ratio;
    let latentFrames = Math.floor((numFrames - 1) / tComp) + 1;
    let additional = 0;
    if (tc.patch_size_t && latentFrames % tc.patch_size_t !== 0) {
      additional = tc.patch_size_t - (latentFrames % tc.patch_size_t);
      latentFrames += additional;
    }
    const shape = [B, latentFrames, height / this.vae.spatialFactor, width / this.vae.spatialFactor, tc.in_channels];
    let latents: tf.Tensor;
    if (opts.latents) {
      if (opts.latents.shape.join() !== shape.join())
        throw new Error(`CogVideoXPipeline: latents must be [${shape.join(', ')}] for these sizes, got [${opts.latents.shape.join(', ')}]`);
      latents = tf.mul(opts.latents, this.scheduler.initNoiseSigma);
    } else {
      latents = tf.tidy(() => tf.mul(rng.randomTensor(shape, 'normal'), this.scheduler.initNoiseSigma));
    }
    let oldPred: tf.Tensor | null = null;
    const t0 = performance.now();
    try {
      for (let i = 0; i < timesteps.length; i++) {
        const t = timesteps[i]!;
        const { next, pred } = tf.tidy((): tf.TensorContainer => {
          const input = doCfg ? tf.concat([latents, latents], 0) : latents;
          const out = this.transformer.forward(input, embeds, new Array<number>(input.shape[0]!).fill(t), { alignLayer: 0, projectAligned: false });
          let noisePred = out.sample;
          const g = opts.useDynamicCfg ? dynamicGuidance(guidance, steps, t) : guidance;
          if (doCfg) {
            const [uncond, text] = tf.split(noisePred, 2, 0);
            noisePred = tf.add(uncond!, tf.mul(tf.sub(text!, uncond!), g));
          }
          const sch = this.scheduler;
          if (sch instanceof CogVideoXDPMScheduler) {
            const r = sch.step(noisePred, oldPred, t, i > 0 ? timesteps[i - 1]! : null, latents, { noise: (s) => rng.randomTensor(s, 'normal') });
            return { next: r.prevSample, pred: r.predOriginalSample };
          }
          return { next: sch.step(noisePred, t, latents).prevSample, pred: [] };
        }) as unknown as { next: tf.Tensor; pred: tf.Tensor | [] };
        latents.dispose();
        latents = next;
        oldPred?.dispose();
        oldPred = pred instanceof tf.Tensor ? pred : null;
        // yield to the event loop so progress output appears
        await new Promise((r) => setImmediate(r));
        opts.onStep?.({ step: i, total: timesteps.length, timestep: t, elapsedMs: performance.now() - t0 });
      }
    } catch (e) {
      latents.dispose();
      throw e;
    } finally {
      embeds.dispose();
      oldPred?.dispose();
    }
    if (additional) {
      const trimmed = tf.slice(latents, [0, additional, 0, 0, 0], [-1, -1, -1, -1, -1]);
      latents.dispose();
      latents = trimmed;
    }
    if (opts.outputType === 'latent') return { latents };
    const video = tf.tidy(() => tf.clipByValue(tf.add(tf.mul(this.vae.decodeLatents(latents, { tiling: opts.tiling }), 0.5), 0.5), 0, 1));
    return { video, latents };
  }
}

/** A scheduler from a diffusers `scheduler/` folder (`scheduler_config.json`, `_class_name` picks DDIM or DPM). */
export function loadScheduler(dir: string): CogVideoXScheduler {
  const file = path.join(dir, 'scheduler_config.json');
  if (!fs.existsSync(file)) throw new Error(`CogVideoXPipeline: ${file} does not exist`);
  const cfg = CogVideoXDDIMScheduler.readConfig(file);
  const cls = cfg._class_name ?? 'CogVideoXDDIMScheduler';
  if (cls === 'CogVideoXDDIMScheduler') return new CogVideoXDDIMScheduler(cfg);
  if (cls === 'CogVideoXDPMScheduler') return new CogVideoXDPMScheduler(cfg);
  throw new Error(`CogVideoXPipeline: ${file} names scheduler class '${String(cls)}'; supported: CogVideoXDDIMScheduler, CogVideoXDPMScheduler`);
}

/** Frames `[F, H, W, 3]` of batch item `b` of a video in [0, 1] as RGB bytes (round to nearest). */
export function videoToRgbBytes(video: tf.Tensor, b = 0): { rgb: Uint8Array; frames: number; height: number; width: number } {
  const [, F, H, W, C] = video.shape as number[];
  if (video.rank !== 5 || C !== 3) throw new Error(`videoToRgbBytes: video must be [B, F, H, W, 3], got [${video.shape.join(', ')}]`);
  const data = tf.tidy(() => tf.cast(tf.round(tf.mul(tf.clipByValue(tf.slice(video, [b, 0, 0, 0, 0], [1, -1, -1, -1, -1]), 0, 1), 255)), 'int32')).dataSync();
  return { rgb: Uint8Array.from(data), frames: F!, height: H!, width: W! };
}

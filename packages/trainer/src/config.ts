/**
 * Training configuration: a zod schema (unknown keys are errors, every error names its key path),
 * presets (the official VideoREPA recipes as data, and tiny ones that run on 2 CPU cores), and the
 * merge of preset ← config file ← CLI flags.
 *
 * Option names follow the official finetune arguments (CogVideoX `finetune/schemas/args.py` as used by
 * VideoREPA) where they exist: learning_rate, beta1/beta2, epsilon, weight_decay, max_grad_norm,
 * lr_scheduler, lr_warmup_steps, gradient_accumulation_steps, checkpointing_steps, proj_coeff, align_layer.
 */
import fs from 'node:fs';
import path from 'node:path';
import { createHash } from 'node:crypto';
import { z } from 'zod';
import { preferOneDnn } from '@vrepa/core';

const posInt = z.number().int().positive();
const nonNegInt = z.number().int().nonnegative();
const grid = z.object({ frames: posInt, height: posInt, width: posInt }).strict();

export const modelSchema = z
  .object({
    /** a diffusers transformer folder (real weights) or a diffusers config object (random init, seeded) */
    transformer: z.union([z.string().min(1), z.record(z.string(), z.unknown())]),
    /** seed of the random init (when `transformer` is a config) and of the align parts' init */
    init_seed: nonNegInt.default(0),
    /** 'lora' trains adapters + align parts (official 5B recipe); 'full' trains everything (official 2B SFT) */
    training_type: z.enum(['lora', 'full']).default('full'),
    lora_rank: posInt.default(128),
    lora_alpha: z.number().positive().default(64),
    gradient_checkpointing: z.boolean().default(false),
    /** a diffusers pipeline folder (vae/, text_encoder/, tokenizer/) that encodes a dataset folder's clips and captions */
    pipeline: z.string().min(1).optional(),
    /** 'cogvideox-2b' (DDIM scheduler, snr shift 3) or 'cogvideox-5b' scheduler constants */
    scheduler: z.enum(['cogvideox-2b', 'cogvideox-5b']).default('cogvideox-2b'),
  })
  .strict();

export const alignSchema = z
  .object({
    /** 1-based block whose vision tokens are aligned (18 in the official 2B recipe) */
    align_layer: posInt.default(18),
    align_dims: z.array(posInt).min(1).default([768]),
    projector_dim: posInt.default(2048),
    /** λ: weight of the alignment loss (official proj_coeff 0.5) */
    proj_coeff: z.number().nonnegative().default(0.5),
    loss: z.enum(['trd', 'repa']).default('trd'),
    /** TRD margin (0.1 for VideoMAEv2) */
    margin: z.number().nonnegative().default(0.1),
  })
  .strict();

export const teacherSchema = z
  .object({
    /**
     * 'synthetic': teacher tokens drawn from a seeded generator (tiny presets, no teacher model);
     * 'model': a @vrepa/teachers model (name + checkpoint) run on the decoded clips (or its cache).
     */
    source: z.enum(['synthetic', 'model']).default('synthetic'),
    name: z.string().min(1).default('videomaev2-b'),
    /** a full teacher config object (@vrepa/teachers TeacherConfig) instead of a registered name */
    config: z.record(z.string(), z.unknown()).optional(),
    checkpoint: z.string().min(1).optional(),
    /** @vrepa/teachers FeatureCache folder: teacher features keyed by weights + clip content, shared across runs */
    cache_dir: z.string().min(1).optional(),
    /** token grid of the teacher features (e.g. 24×10×15 for VideoMAEv2-B at 48×160×240) */
    grid: grid.optional(),
    dim: posInt.optional(),
  })
  .strict();

export const dataSchema = z
  .object({
    /**
     * 'synthetic': latents / text embeddings / teacher tokens from a seeded generator (no VAE, T5 or
     * video decode — the tiny presets' data source); 'folder': a dataset folder of videos + captions.
     */
    source: z.enum(['synthetic', 'folder']).default('synthetic'),
    dataset_dir: z.string().min(1).optional(),
    /** CSV or JSON-lines file inside dataset_dir (OpenVid-style columns) */
    annotations: z.string().min(1).default('captions.csv'),
    video_column: z.string().min(1).default('video'),
    caption_column: z.string().min(1).default('caption'),
    /** frames × height × width of the clips fed to the VAE (official 49x480x720) */
    train_resolution: z
      .string()
      .regex(/^\d+x\d+x\d+$/, 'expected FRAMESxHEIGHTxWIDTH, e.g. 49x480x720')
      .default('49x480x720'),
    /** what to do with a missing / unreadable / too short video: skip it (reported) or stop */
    on_bad_video: z.enum(['skip', 'error']).default('skip'),
    cache_dir: z.string().min(1).optional(),
    /** synthetic source: number of samples, latent shape [F, h, w, C], text tokens */
    num_samples: posInt.default(4),
    latent_shape: z.array(posInt).length(4).optional(),
    text_seq_length: posInt.default(226),
    data_seed: nonNegInt.default(1234),
  })
  .strict();

export const optimSchema = z
  .object({
    learning_rate: z.number().positive().default(2e-6),
    beta1: z.number().min(0).lt(1).default(0.9),
    beta2: z.number().min(0).lt(1).default(0.95),
    epsilon: z.number().positive().default(1e-8),
    weight_decay: z.number().nonnegative().default(1e-4),
    /** global gradient-norm clipping (torch clip_grad_norm_), 0 disables */
    max_grad_norm: z.number().nonnegative().default(1.0),
    lr_scheduler: z.enum(['constant', 'constant_with_warmup', 'linear', 'cosine']).default('constant_with_warmup'),
    lr_warmup_steps: nonNegInt.default(100),
    batch_size: posInt.default(4),
    gradient_accumulation_steps: posInt.default(1),
  })
  .strict();

export const trainSchema = z
  .object({
    seed: nonNegInt.default(42),
    num_epochs: posInt.default(4),
    /** stop after this many optimizer steps (defaults to num_epochs over the data) */
    max_steps: posInt.optional(),
    checkpointing_steps: posInt.default(800),
    /** keep the newest N checkpoints (checkpoints_total_limit); 0 keeps all */
    keep_last: nonNegInt.default(3),
    /** stop after this many non-finite steps in a row (each one is skipped and logged) */
    nan_max_consecutive: posInt.default(5),
    /** write a loss-curve PNG every N steps (and at the end); 0: only at the end */
    plot_every: nonNegInt.default(0),
    tensorboard: z.boolean().default(true),
    /** generate validation videos every N steps (and at the end) with model.pipeline's VAE/T5; 0: never */
    validation_every: nonNegInt.default(0),
    validation_prompts: z.array(z.string().min(1)).default([]),
    validation_inference_steps: posInt.default(50),
    validation_guidance: z.number().nonnegative().default(6),
    validation_seed: nonNegInt.default(42),
    /**
     * also write the final weights for inference-only loaders: full finetune → final/transformer-inference/
     * (no align parts: stock diffusers loads it without warnings); LoRA → the file with α/r baked into
     * lora_B (for loaders that ignore lora_adapter_metadata). The full export is written either way.
     */
    export_for_inference: z.boolean().default(false),
  })
  .strict();

export const trainConfigSchema = z
  .object({
    /** a preset this config starts from (its values are overridden by the ones given here) */
    preset: z.string().optional(),
    model: modelSchema,
    align: alignSchema.default({}),
    teacher: teacherSchema.default({}),
    data: dataSchema.default({}),
    optim: optimSchema.default({}),
    train: trainSchema.default({}),
  })
  .strict();

export type TrainConfig = z.output<typeof trainConfigSchema>;
export type TrainConfigInput = z.input<typeof trainConfigSchema>;

/** Thrown for an invalid config: one line per problem, each naming the key path. */
export class ConfigError extends Error {
  constructor(
    message: string,
    readonly issues: { path: string; message: string }[] = [],
  ) {
    super(message);
    this.name = 'ConfigError';
  }
}

type Json = Record<string, unknown>;

/** A tiny CogVideoX (2B style) that trains in well under a second per step on 2 CPU cores. */
export const TINY_TRANSFORMER = {
  num_attention_heads: 2,
  attention_head_dim: 16,
  num_layers: 2,
  in_channels: 4,
  out_channels: 4,
  text_embed_dim: 12,
  time_embed_dim: 16,
  sample_height: 12,
  sample_width: 12,
  sample_frames: 9,
  max_text_seq_length: 5,
};

/** A VideoMAEv2-style teacher small enough for the tiny presets (random weights). */
export const TINY_TEACHER = {
  family: 'videomaev2',
  name: 'tiny-videomaev2',
  official: 'none (a 1-block ViT shaped like VideoMAEv2)',
  imgSize: 16,
  numFrames: 8,
  embedDim: 8,
  depth: 1,
  numHeads: 2,
  mlpRatio: 2,
  patchSize: 8,
  tubeletSize: 2,
  inChans: 3,
  qkvBias: 'qv',
  layerNormEps: 1e-6,
};

/** Presets as plain data (the input form; validated on use). */
export const PRESETS: Record<string, TrainConfigInput> = {
  /** the official 2B recipe: full finetune (bf16 weights widened to float32 on load) */
  'videorepa-2b-sft': {
    model: { transformer: 'CogVideoX-2b/transformer', pipeline: 'CogVideoX-2b', training_type: 'full', scheduler: 'cogvideox-2b', gradient_checkpointing: true },
    align: { align_layer: 18, align_dims: [768], projector_dim: 2048, proj_coeff: 0.5, loss: 'trd', margin: 0.1 },
    teacher: { source: 'model', name: 'videomaev2-b', grid: { frames: 24, height: 10, width: 15 }, dim: 768 },
    data: { source: 'folder', dataset_dir: 'openvid', annotations: 'openvid_3w2.csv', cache_dir: 'cache', train_resolution: '49x480x720', text_seq_length: 226 },
    optim: { learning_rate: 2e-6, batch_size: 4, lr_scheduler: 'constant_with_warmup', lr_warmup_steps: 100 },
    train: { num_epochs: 4, checkpointing_steps: 800 },
  },
  /** the official 5B recipe: LoRA r 128 α 64 on the attention projections, lr 1e-4 */
  'videorepa-5b-lora': {
    model: { transformer: 'CogVideoX-5b/transformer', pipeline: 'CogVideoX-5b', training_type: 'lora', lora_rank: 128, lora_alpha: 64, scheduler: 'cogvideox-5b', gradient_checkpointing: true },
    align: { align_layer: 18, align_dims: [768], projector_dim: 2048, proj_coeff: 0.5, loss: 'trd', margin: 0.1 },
    teacher: { source: 'model', name: 'videomaev2-b', grid: { frames: 24, height: 10, width: 15 }, dim: 768 },
    data: { source: 'folder', dataset_dir: 'openvid', annotations: 'openvid_3w2.csv', cache_dir: 'cache', train_resolution: '49x480x720', text_seq_length: 226 },
    optim: { learning_rate: 1e-4, batch_size: 4, lr_scheduler: 'constant_with_warmup', lr_warmup_steps: 100 },
    train: { num_epochs: 4, checkpointing_steps: 800 },
  },
  /** tiny full finetune on synthetic latents / embeddings / teacher tokens (seeded; no VAE, T5 or teacher model) */
  tiny: {
    model: { transformer: TINY_TRANSFORMER, training_type: 'full', init_seed: 0 },
    align: { align_layer: 1, align_dims: [8], projector_dim: 16, proj_coeff: 0.5, margin: 0.1 },
    teacher: { source: 'synthetic', grid: { frames: 4, height: 2, width: 2 }, dim: 8 },
    data: { source: 'synthetic', num_samples: 4, latent_shape: [3, 12, 12, 4], text_seq_length: 5 },
    optim: { learning_rate: 1e-3, batch_size: 2, lr_scheduler: 'constant_with_warmup', lr_warmup_steps: 2, weight_decay: 1e-4, max_grad_norm: 1.0 },
    train: { num_epochs: 10, checkpointing_steps: 5, keep_last: 2 },
  },
  /**
   * tiny, on a dataset folder (videos + captions.csv): clips 9×48×48 → the tiny pipeline's VAE (latents
   * 3×12×12×4) and T5 (16-dim), teacher = a 1-block VideoMAEv2-style ViT with random weights (patch 8,
   * 48/3 = 16 px frames → 4×2×2 tokens of 8). Set model.pipeline (vrepa init-model --preset tiny),
   * data.dataset_dir and data.cache_dir.
   */
  'tiny-folder': {
    model: { transformer: { ...TINY_TRANSFORMER, text_embed_dim: 16, max_text_seq_length: 226 }, training_type: 'full', init_seed: 0 },
    align: { align_layer: 1, align_dims: [8], projector_dim: 16, proj_coeff: 0.5, margin: 0.1 },
    teacher: { source: 'model', name: 'tiny-videomaev2', config: TINY_TEACHER, dim: 8 },
    data: { source: 'folder', train_resolution: '9x48x48', text_seq_length: 226, annotations: 'captions.csv' },
    optim: { learning_rate: 1e-3, batch_size: 2, lr_scheduler: 'constant_with_warmup', lr_warmup_steps: 2, weight_decay: 1e-4, max_grad_norm: 1.0 },
    train: { num_epochs: 10, checkpointing_steps: 5, keep_last: 2 },
  },
  /** the tiny model with LoRA adapters (rank 4, α 2) */
  'tiny-lora': {
    preset: 'tiny',
    model: { transformer: TINY_TRANSFORMER, training_type: 'lora', lora_rank: 4, lora_alpha: 2 },
    optim: { learning_rate: 3e-3 },
  } as TrainConfigInput,
};

function isPlainObject(v: unknown): v is Json {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** Deep merge for config objects: objects merge key by key, everything else (arrays included) replaces. */
export function mergeConfig(base: Json, over: Json): Json {
  const out: Json = { ...base };
  for (const [k, v] of Object.entries(over)) {
    if (v === undefined) continue;
    // the transformer config is one value (a path or a whole diffusers config), never merged
    out[k] = isPlainObject(v) && isPlainObject(out[k]) && k !== 'transformer' ? mergeConfig(out[k] as Json, v) : v;
  }
  return out;
}

function resolvePreset(name: string, seen: string[] = []): Json {
  const p = PRESETS[name];
  if (!p) throw new ConfigError(`config: preset ${JSON.stringify(name)} is not known (presets: ${Object.keys(PRESETS).join(', ')})`, [{ path: 'preset', message: 'unknown preset' }]);
  if (seen.includes(name)) throw new ConfigError(`config: preset ${JSON.stringify(name)} refers to itself (${[...seen, name].join(' → ')})`);
  const raw = p as Json;
  const base = typeof raw.preset === 'string' ? resolvePreset(raw.preset, [...seen, name]) : {};
  const { preset: _drop, ...rest } = raw;
  return mergeConfig(base, rest);
}

function formatPath(p: (string | number)[]): string {
  return p.length === 0 ? '(root)' : p.map((x, i) => (typeof x === 'number' ? `[${x}]` : i === 0 ? x : `.${x}`)).join('');
}

/**
 * Validate a raw config (after applying its `preset`): unknown keys, wrong types and out-of-range values
 * are errors naming the key path (`optim.learning_rate: expected a number, got string`).
 */
export function parseConfig(raw: unknown, what = 'config'): TrainConfig {
  if (!isPlainObject(raw)) throw new ConfigError(`${what}: expected a JSON object, got ${Array.isArray(raw) ? 'an array' : typeof raw}`);
  const merged = typeof raw.preset === 'string' ? mergeConfig(resolvePreset(raw.preset), raw) : raw;
  const r = trainConfigSchema.safeParse(merged);
  if (!r.success) {
    const issues = r.error.issues.map((i) => {
      const p = formatPath(i.path as (string | number)[]);
      if (i.code === 'unrecognized_keys') {
        const keys = (i as { keys: string[] }).keys;
        return { path: keys.map((k) => (p === '(root)' ? k : `${p}.${k}`)).join(', '), message: `unknown key${keys.length > 1 ? 's' : ''}` };
      }
      return { path: p, message: i.message };
    });
    throw new ConfigError(`${what}: ${issues.map((i) => `${i.path}: ${i.message}`).join('; ')}`, issues);
  }
  const c = r.data;
  // cross-field checks
  const problems: { path: string; message: string }[] = [];
  if (c.data.source === 'folder' && !c.data.dataset_dir) problems.push({ path: 'data.dataset_dir', message: "required when data.source is 'folder'" });
  if (c.data.source === 'folder' && !c.data.cache_dir) problems.push({ path: 'data.cache_dir', message: "required when data.source is 'folder' (the prepared latents / embeddings / teacher features)" });
  if (c.data.source === 'folder' && !c.model.pipeline) problems.push({ path: 'model.pipeline', message: "required when data.source is 'folder' (the VAE and T5 that encode the clips)" });
  if (c.data.source === 'folder' && c.align.proj_coeff > 0 && c.teacher.source !== 'model') problems.push({ path: 'teacher.source', message: "must be 'model' when data.source is 'folder' (teacher features are computed from the clips)" });
  if (c.data.source === 'synthetic' && !c.data.latent_shape) problems.push({ path: 'data.latent_shape', message: "required when data.source is 'synthetic' ([frames, height, width, channels] of the latents)" });
  if (c.teacher.source === 'synthetic' && (!c.teacher.grid || !c.teacher.dim)) problems.push({ path: 'teacher.grid', message: "teacher.grid and teacher.dim are required when teacher.source is 'synthetic'" });
  if (c.teacher.dim !== undefined && c.teacher.dim !== c.align.align_dims[0]) problems.push({ path: 'teacher.dim', message: `${c.teacher.dim} does not match align.align_dims[0] = ${c.align.align_dims[0]}` });
  if (c.train.validation_every > 0 && !c.model.pipeline) problems.push({ path: 'model.pipeline', message: 'required when train.validation_every > 0 (its VAE and T5 render the validation videos)' });
  if (c.train.validation_every > 0 && c.train.validation_prompts.length === 0) problems.push({ path: 'train.validation_prompts', message: 'give at least one prompt when train.validation_every > 0' });
  if (problems.length) throw new ConfigError(`${what}: ${problems.map((i) => `${i.path}: ${i.message}`).join('; ')}`, problems);
  return c;
}

/** Read a JSON config file (relative paths inside it are resolved against the file's folder). */
export function loadConfigFile(file: string): TrainConfig {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (e) {
    throw new ConfigError(`config: cannot read ${file} (${(e as Error).message})`);
  }
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (e) {
    throw new ConfigError(`config: ${file} is not valid JSON (${(e as Error).message})`);
  }
  const c = parseConfig(raw, `config ${file}`);
  const dir = path.dirname(path.resolve(file));
  const abs = (p: string | undefined) => (p === undefined || path.isAbsolute(p) ? p : path.resolve(dir, p));
  if (typeof c.model.transformer === 'string') c.model.transformer = abs(c.model.transformer)!;
  c.model.pipeline = abs(c.model.pipeline);
  c.data.dataset_dir = abs(c.data.dataset_dir);
  c.data.cache_dir = abs(c.data.cache_dir);
  c.teacher.checkpoint = abs(c.teacher.checkpoint);
  c.teacher.cache_dir = abs(c.teacher.cache_dir);
  return c;
}

/** The config of a preset, validated. */
export function presetConfig(name: string, overrides: Json = {}): TrainConfig {
  return parseConfig(mergeConfig({ preset: name }, overrides), `preset ${name}`);
}

/** Stable JSON (sorted keys). */
export function canonicalJson(v: unknown): string {
  if (Array.isArray(v)) return `[${v.map(canonicalJson).join(',')}]`;
  if (isPlainObject(v)) return `{${Object.keys(v).sort().filter((k) => v[k] !== undefined).map((k) => `${JSON.stringify(k)}:${canonicalJson(v[k])}`).join(',')}}`;
  return JSON.stringify(v);
}

/**
 * Hash of everything that determines the trajectory of a run — the whole config except the keys a user
 * may change when resuming (max_steps, checkpointing_steps, keep_last, plot_every, tensorboard, validation,
 * export_for_inference).
 */
export function configHash(c: TrainConfig): string {
  const { max_steps: _a, checkpointing_steps: _b, keep_last: _c, plot_every: _d, tensorboard: _e, validation_every: _f, validation_prompts: _g, validation_inference_steps: _h, validation_guidance: _i, validation_seed: _j, export_for_inference: _k, ...train } = c.train;
  const { preset: _p, ...rest } = c;
  return createHash('sha256').update(canonicalJson({ ...rest, train })).digest('hex');
}

/**
 * The native backend's oneDNN setting for training `c` (pass to initBackend's `oneDnn`): off for a
 * transformer given as a config narrower than core's ONEDNN_MIN_WIDTH (small models: oneDNN's per-call set-up
 * dominates their matmuls), on for wider ones; undefined (TensorFlow's default, on) for a transformer folder.
 */
export function oneDnnFor(c: TrainConfig): boolean | undefined {
  const t = c.model.transformer;
  if (typeof t === 'string') return undefined;
  const heads = Number((t as Record<string, unknown>).num_attention_heads ?? 30);
  const headDim = Number((t as Record<string, unknown>).attention_head_dim ?? 64);
  return preferOneDnn(heads * headDim);
}

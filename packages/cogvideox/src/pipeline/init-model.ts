/**
 * `initModel`: write a CogVideoX pipeline folder in the diffusers layout with random weights —
 * `model_index.json`, `transformer/`, `vae/`, `text_encoder/`, `tokenizer/` (a small T5-style Unigram
 * tokenizer.json), `scheduler/` — with configs shaped like the official ones, so pipelines, the trainer
 * and tests run without downloads. Weights are streamed to disk tensor by tensor from state-dict shape
 * lists (for the big presets the models are never held in memory): matrices and convs
 * N(0, 1/fan_in), embeddings N(0, 1), norm weights 1, biases 0.
 */
import fs from 'node:fs';
import path from 'node:path';
import { Rng, floatToHalf, writeSafetensorsStream, type SafetensorsStreamEntry } from '@vrepa/core';
import { COGVIDEOX_2B_SCHEDULER, COGVIDEOX_5B_SCHEDULER } from '../schedulers/alphas.js';
import { COGVIDEOX_2B_TRANSFORMER, COGVIDEOX_5B_TRANSFORMER, TRANSFORMER_DEFAULTS, type CogVideoXTransformerConfig } from '../transformer/config.js';
import { CogVideoXTransformer3DModel } from '../transformer/model.js';
import { T5_V1_1_XXL, resolveT5Config, type T5Config } from '../t5/config.js';
import { COGVIDEOX_VAE_CONFIG, resolveVaeConfig, type CogVideoXVaeConfig } from '../vae/config.js';
import { AutoencoderKLCogVideoX } from '../vae/model.js';

export type ModelPreset = 'tiny' | 'cogvideox-2b' | 'cogvideox-5b';

export interface PresetConfigs {
  transformer: CogVideoXTransformerConfig;
  vae: CogVideoXVaeConfig;
  textEncoder: T5Config;
  scheduler: Record<string, unknown>;
}

const TINY_VOCAB_WORDS =
  'a an the of in on at to and with is are was red blue green yellow white black cat dog ball car bird fish man woman person child water snow beach sky sea river tree road city room table ' +
  'running walking rolling falling flying jumping sleeping bouncing pouring moving slow motion video shot close camera view light sun rain night day small big two three then while';

/** A small T5-style tokenizer.json (Unigram over letters, digits, punctuation and a few hundred word pieces). */
export function tinyTokenizerJson(): { json: Record<string, unknown>; vocabSize: number } {
  const vocab: Array<[string, number]> = [
    ['<pad>', 0],
    ['</s>', 0],
    ['<unk>', 0],
    ['\u2581', -2.0],
  ];
  const seen = new Set(vocab.map((v) => v[0]));
  const add = (p: string, s: number) => {
    if (!seen.has(p)) {
      seen.add(p);
      vocab.push([p, s]);
    }
  };
  TINY_VOCAB_WORDS.split(' ').forEach((w, i) => add(`\u2581${w}`, -3 - i * 0.01));
  for (const suf of ['s', 'es', 'ing', 'ed', 'er', 'ly', 'y']) add(suf, -5);
  for (const ch of 'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.,!?;:\'"-()') {
    add(ch, -8);
    add(`\u2581${ch}`, -8.5);
  }
  const special = (id: number, content: string) => ({ id, content, single_word: false, lstrip: false, rstrip: false, normalized: false, special: true });
  const json = {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: [special(0, '<pad>'), special(1, '</s>'), special(2, '<unk>')],
    normalizer: null,
    pre_tokenizer: { type: 'Sequence', pretokenizers: [{ type: 'WhitespaceSplit' }, { type: 'Metaspace', replacement: '\u2581', prepend_scheme: 'always', split: true }] },
    post_processor: {
      type: 'TemplateProcessing',
      single: [{ Sequence: { id: 'A', type_id: 0 } }, { SpecialToken: { id: '</s>', type_id: 0 } }],
      pair: [{ Sequence: { id: 'A', type_id: 0 } }, { SpecialToken: { id: '</s>', type_id: 0 } }, { Sequence: { id: 'B', type_id: 0 } }, { SpecialToken: { id: '</s>', type_id: 0 } }],
      special_tokens: { '</s>': { id: '</s>', ids: [1], tokens: ['</s>'] } },
    },
    decoder: { type: 'Metaspace', replacement: '\u2581', prepend_scheme: 'always', split: true },
    model: { type: 'Unigram', unk_id: 2, vocab, byte_fallback: false },
  };
  return { json, vocabSize: vocab.length };
}

/** The configs of a preset. `tiny` generates a 9-frame 32×32 clip in seconds on CPU. */
export function presetConfigs(preset: ModelPreset): PresetConfigs {
  switch (preset) {
    case 'tiny': {
      const vocab = tinyTokenizerJson().vocabSize;
      return {
        transformer: {
          ...TRANSFORMER_DEFAULTS,
          num_attention_heads: 2,
          attention_head_dim: 8,
          in_channels: 4,
          out_channels: 4,
          time_embed_dim: 16,
          text_embed_dim: 16,
          num_layers: 2,
          sample_width: 8,
          sample_height: 8,
          sample_frames: 9,
        },
        vae: resolveVaeConfig({
          block_out_channels: [8, 8, 16],
          down_block_types: new Array(3).fill('CogVideoXDownBlock3D'),
          up_block_types: new Array(3).fill('CogVideoXUpBlock3D'),
          latent_channels: 4,
          layers_per_block: 1,
          norm_num_groups: 4,
          sample_height: 32,
          sample_width: 32,
        }),
        textEncoder: resolveT5Config({ vocab_size: vocab + 4, d_model: 16, d_kv: 8, d_ff: 32, num_layers: 2, num_heads: 2 }),
        scheduler: { _class_name: 'CogVideoXDDIMScheduler', ...COGVIDEOX_2B_SCHEDULER, steps_offset: 0 },
      };
    }
    case 'cogvideox-2b':
      return { transformer: COGVIDEOX_2B_TRANSFORMER, vae: COGVIDEOX_VAE_CONFIG, textEncoder: T5_V1_1_XXL, scheduler: { _class_name: 'CogVideoXDDIMScheduler', ...COGVIDEOX_2B_SCHEDULER } };
    case 'cogvideox-5b':
      return {
        transformer: COGVIDEOX_5B_TRANSFORMER,
        vae: { ...COGVIDEOX_VAE_CONFIG, scaling_factor: 0.7 },
        textEncoder: T5_V1_1_XXL,
        scheduler: { _class_name: 'CogVideoXDDIMScheduler', ...COGVIDEOX_5B_SCHEDULER },
      };
    default:
      throw new Error(`initModel: unknown preset '${String(preset)}' (tiny, cogvideox-2b, cogvideox-5b)`);
  }
}

/** T5 encoder state-dict names and PyTorch shapes, from the config (no model built). */
export function t5StateDictShapes(c: T5Config): Map<string, number[]> {
  const m = new Map<string, number[]>();
  const inner = c.num_heads * c.d_kv;
  m.set('shared.weight', [c.vocab_size, c.d_model]);
  for (let i = 0; i < c.num_layers; i++) {
    const p = `encoder.block.${i}.layer.`;
    for (const n of ['q', 'k', 'v']) m.set(`${p}0.SelfAttention.${n}.weight`, [inner, c.d_model]);
    m.set(`${p}0.SelfAttention.o.weight`, [c.d_model, inner]);
    if (i === 0) m.set(`${p}0.SelfAttention.relative_attention_bias.weight`, [c.relative_attention_num_buckets, c.num_heads]);
    m.set(`${p}0.layer_norm.weight`, [c.d_model]);
    if (c.is_gated_act) {
      m.set(`${p}1.DenseReluDense.wi_0.weight`, [c.d_ff, c.d_model]);
      m.set(`${p}1.DenseReluDense.wi_1.weight`, [c.d_ff, c.d_model]);
    } else m.set(`${p}1.DenseReluDense.wi.weight`, [c.d_ff, c.d_model]);
    m.set(`${p}1.DenseReluDense.wo.weight`, [c.d_model, c.d_ff]);
    m.set(`${p}1.layer_norm.weight`, [c.d_model]);
  }
  m.set('encoder.final_layer_norm.weight', [c.d_model]);
  return m;
}

/** Transformer state-dict shapes from a 1-block model of the same config, block 0's keys repeated for every block. */
export function transformerStateDictShapes(c: CogVideoXTransformerConfig): Map<string, number[]> {
  const one = new CogVideoXTransformer3DModel({ ...c, num_layers: 1 }, { init: 'zeros', align: false });
  try {
    const out = new Map<string, number[]>();
    for (const [k, s] of one.stateDictShapes()) {
      if (k.startsWith('transformer_blocks.0.')) {
        for (let i = 0; i < c.num_layers; i++) out.set(`transformer_blocks.${i}.${k.slice('transformer_blocks.0.'.length)}`, s);
      } else out.set(k, s);
    }
    return out;
  } finally {
    one.dispose();
  }
}

/** VAE state-dict shapes (the VAE is built with zero init to list them). */
export function vaeStateDictShapes(c: CogVideoXVaeConfig): Map<string, number[]> {
  const m = new AutoencoderKLCogVideoX(c as unknown as Record<string, unknown>, { init: 'zeros' });
  try {
    return m.stateDictShapes();
  } finally {
    m.dispose();
  }
}

function encodeFloats(data: Float32Array, dtype: 'F32' | 'F16' | 'BF16'): Uint8Array {
  if (dtype === 'F32') return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  const out = new Uint16Array(data.length);
  if (dtype === 'F16') for (let i = 0; i < data.length; i++) out[i] = floatToHalf(data[i]!);
  else {
    const u = new Uint32Array(data.buffer, data.byteOffset, data.length);
    for (let i = 0; i < data.length; i++) {
      const x = u[i]!;
      out[i] = (x + 0x7fff + ((x >>> 16) & 1)) >>> 16; // round to nearest even
    }
  }
  return new Uint8Array(out.buffer);
}

/** The random value rule of init-model for one state-dict entry. */
export function randomInitKind(name: string, shape: number[]): 'ones' | 'zeros' | { std: number } {
  if (shape.length === 1) {
    if (name.endsWith('.bias')) return 'zeros';
    return /norm|layer_norm|norm_layer/.test(name) ? 'ones' : 'zeros';
  }
  if (/^shared\.weight$|embed_tokens|relative_attention_bias|pos_embedding/.test(name)) return { std: 1 };
  const fanIn = shape.slice(1).reduce((a, b) => a * b, 1);
  return { std: 1 / Math.sqrt(fanIn) };
}

/** Stream random weights for `shapes` into one safetensors file. */
export function writeRandomWeights(file: string, shapes: Map<string, number[]>, rng: Rng, dtype: 'F32' | 'F16' | 'BF16' = 'F32'): void {
  const entries: SafetensorsStreamEntry[] = [...shapes].map(([name, shape]) => ({
    name,
    dtype,
    shape,
    bytes: () => {
      const n = shape.reduce((a, b) => a * b, 1);
      const data = new Float32Array(n);
      const kind = randomInitKind(name, shape);
      if (kind === 'ones') data.fill(1);
      else if (kind !== 'zeros') rng.fillNormal(data, 0, kind.std);
      return encodeFloats(data, dtype);
    },
  }));
  writeSafetensorsStream(file, entries);
}

export interface InitModelOptions {
  seed?: number;
  /** stored float dtype (default F32 for tiny, BF16 for the full-size presets) */
  dtype?: 'F32' | 'F16' | 'BF16';
  /** replace a non-empty `out` folder */
  overwrite?: boolean;
  /** progress lines */
  log?: (line: string) => void;
}

/** Write a pipeline folder for `preset` into `out`. Returns the files written. */
export function initModel(preset: ModelPreset, out: string, opts: InitModelOptions = {}): string[] {
  const cfg = presetConfigs(preset);
  const dtype = opts.dtype ?? (preset === 'tiny' ? 'F32' : 'BF16');
  if (fs.existsSync(out) && fs.readdirSync(out).length > 0 && !opts.overwrite)
    throw new Error(`initModel: ${out} exists and is not empty (pass --overwrite to replace its model files)`);
  const rng = Rng.fromSeed(opts.seed ?? 0);
  const log = opts.log ?? (() => {});
  const written: string[] = [];
  const writeJson = (rel: string, obj: unknown) => {
    const p = path.join(out, rel);
    fs.mkdirSync(path.dirname(p), { recursive: true });
    fs.writeFileSync(p, JSON.stringify(obj, null, 2) + '\n');
    written.push(p);
  };
  const weights = (rel: string, shapes: Map<string, number[]>) => {
    const p = path.join(out, rel);
    fs.mkdirSync(path.dirname(p), { recursive: true });
    const n = [...shapes.values()].reduce((a, s) => a + s.reduce((x, y) => x * y, 1), 0);
    log(`${rel}: ${shapes.size} tensors, ${(n / 1e6).toFixed(1)}M parameters (${dtype})`);
    writeRandomWeights(p, shapes, rng.fork(), dtype);
    written.push(p);
  };
  const version = '0.33.0.dev0';
  writeJson('model_index.json', {
    _class_name: 'CogVideoXPipeline',
    _diffusers_version: version,
    scheduler: ['diffusers', String(cfg.scheduler._class_name)],
    text_encoder: ['transformers', 'T5EncoderModel'],
    tokenizer: ['transformers', 'T5Tokenizer'],
    transformer: ['diffusers', 'CogVideoXTransformer3DModel'],
    vae: ['diffusers', 'AutoencoderKLCogVideoX'],
  });
  writeJson('scheduler/scheduler_config.json', { _diffusers_version: version, ...cfg.scheduler });
  const tok = tinyTokenizerJson();
  writeJson('tokenizer/tokenizer.json', tok.json);
  writeJson('tokenizer/tokenizer_config.json', { tokenizer_class: 'T5Tokenizer', eos_token: '</s>', unk_token: '<unk>', pad_token: '<pad>', extra_ids: 0, model_max_length: 226 });
  writeJson('tokenizer/special_tokens_map.json', { eos_token: '</s>', unk_token: '<unk>', pad_token: '<pad>' });
  const te = cfg.textEncoder;
  writeJson('text_encoder/config.json', {
    architectures: ['T5EncoderModel'],
    model_type: 't5',
    is_encoder_decoder: false,
    tie_word_embeddings: false,
    dropout_rate: 0.0,
    torch_dtype: dtype === 'F32' ? 'float32' : dtype === 'F16' ? 'float16' : 'bfloat16',
    ...te,
  });
  weights('text_encoder/model.safetensors', t5StateDictShapes(te));
  writeJson('vae/config.json', { _class_name: 'AutoencoderKLCogVideoX', _diffusers_version: version, ...cfg.vae });
  weights('vae/diffusion_pytorch_model.safetensors', vaeStateDictShapes(cfg.vae));
  writeJson('transformer/config.json', { _class_name: 'CogVideoXTransformer3DModel', _diffusers_version: version, ...cfg.transformer });
  weights('transformer/diffusion_pytorch_model.safetensors', transformerStateDictShapes(cfg.transformer));
  return written;
}

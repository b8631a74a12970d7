/**
 * The CogVideoX transformer configuration: the fields of a diffusers `config.json`
 * (`CogVideoXTransformer3DModel`), with diffusers' defaults, validated once. Every field the public
 * CogVideoX-2B / -5B / -5B-I2V configs use is supported; CogVideoX 1.5 fields (`patch_size_t`,
 * `ofs_embed_dim`) are refused with a clear error.
 */

export interface CogVideoXTransformerConfig {
  num_attention_heads: number;
  attention_head_dim: number;
  in_channels: number;
  out_channels: number;
  flip_sin_to_cos: boolean;
  freq_shift: number;
  time_embed_dim: number;
  ofs_embed_dim: number | null;
  text_embed_dim: number;
  num_layers: number;
  dropout: number;
  attention_bias: boolean;
  sample_width: number;
  sample_height: number;
  sample_frames: number;
  patch_size: number;
  patch_size_t: number | null;
  temporal_compression_ratio: number;
  max_text_seq_length: number;
  activation_fn: 'gelu-approximate' | 'gelu';
  timestep_activation_fn: 'silu';
  norm_elementwise_affine: boolean;
  norm_eps: number;
  spatial_interpolation_scale: number;
  temporal_interpolation_scale: number;
  use_rotary_positional_embeddings: boolean;
  use_learned_positional_embeddings: boolean;
  patch_bias: boolean;
}

/** The VideoREPA additions of `CogVideoXTransformer3DModelAlign` (official names). */
export interface AlignConfig {
  /** 1-based index of the block whose vision tokens are projected (official default 18). */
  align_layer: number;
  /** output dims of the projectors (official: [768]); only the first is used by the trainer. */
  align_dims: number[];
  /** hidden width of the projector MLP (official 2048). */
  projector_dim: number;
}

/** Constructor defaults of diffusers' CogVideoXTransformer3DModel (= the CogVideoX-2B config). */
export const TRANSFORMER_DEFAULTS: CogVideoXTransformerConfig = {
  num_attention_heads: 30,
  attention_head_dim: 64,
  in_channels: 16,
  out_channels: 16,
  flip_sin_to_cos: true,
  freq_shift: 0,
  time_embed_dim: 512,
  ofs_embed_dim: null,
  text_embed_dim: 4096,
  num_layers: 30,
  dropout: 0.0,
  attention_bias: true,
  sample_width: 90,
  sample_height: 60,
  sample_frames: 49,
  patch_size: 2,
  patch_size_t: null,
  temporal_compression_ratio: 4,
  max_text_seq_length: 226,
  activation_fn: 'gelu-approximate',
  timestep_activation_fn: 'silu',
  norm_elementwise_affine: true,
  norm_eps: 1e-5,
  spatial_interpolation_scale: 1.875,
  temporal_interpolation_scale: 1.0,
  use_rotary_positional_embeddings: false,
  use_learned_positional_embeddings: false,
  patch_bias: true,
};

/** The public CogVideoX-2B transformer config (THUDM/CogVideoX-2b, transformer/config.json). */
export const COGVIDEOX_2B_TRANSFORMER: CogVideoXTransformerConfig = { ...TRANSFORMER_DEFAULTS };

/** The public CogVideoX-5B transformer config (THUDM/CogVideoX-5b, transformer/config.json). */
export const COGVIDEOX_5B_TRANSFORMER: CogVideoXTransformerConfig = {
  ...TRANSFORMER_DEFAULTS,
  num_attention_heads: 48,
  num_layers: 42,
  use_rotary_positional_embeddings: true,
};

/** The config.json fields of the align parts (training only; stock diffusers warns about them). */
export const ALIGN_CONFIG_KEYS: ReadonlyArray<keyof AlignConfig> = ['align_layer', 'align_dims', 'projector_dim'];

/** State-dict prefixes of the align parts (training only; stock diffusers reports them as weights not used). */
export const ALIGN_STATE_DICT_PREFIXES: readonly string[] = ['projectors.', 'downsampler_cogvideo_output.'];

/** Whether a state-dict key belongs to the VideoREPA align parts (projector, downsampler). */
export function isAlignKey(key: string): boolean {
  return ALIGN_STATE_DICT_PREFIXES.some((p) => key.startsWith(p));
}

/** Official VideoREPA align defaults (align layer 18, VideoMAEv2-B dim 768, projector width 2048). */
export const ALIGN_DEFAULTS: AlignConfig = { align_layer: 18, align_dims: [768], projector_dim: 2048 };

/** Fields a config must state (they fix the parameter shapes); the rest default as in diffusers. */
const REQUIRED: ReadonlyArray<keyof CogVideoXTransformerConfig> = [
  'num_attention_heads',
  'attention_head_dim',
  'in_channels',
  'num_layers',
  'text_embed_dim',
  'time_embed_dim',
];

/**
 * Validate a parsed diffusers `config.json` (optionally with the align fields) and fill defaults.
 * Keys starting with `_` (`_class_name`, `_diffusers_version`, `_name_or_path`) are ignored; unknown
 * keys, missing shape fields and unsupported values are errors naming the field.
 */
export function resolveTransformerConfig(
  raw: Record<string, unknown>,
  what = 'transformer config',
): { config: CogVideoXTransformerConfig; align?: Partial<AlignConfig> } {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) throw new Error(`${what}: expected a JSON object, got ${JSON.stringify(raw)}`);
  const out: Record<string, unknown> = { ...TRANSFORMER_DEFAULTS };
  const align: Partial<AlignConfig> = {};
  for (const [k, v] of Object.entries(raw)) {
    if (k.startsWith('_')) continue;
    if ((ALIGN_CONFIG_KEYS as readonly string[]).includes(k)) {
      (align as Record<string, unknown>)[k] = v;
      continue;
    }
    if (!(k in TRANSFORMER_DEFAULTS)) {
      throw new Error(`${what}: unknown field '${k}' (not a CogVideoXTransformer3DModel config field)`);
    }
    out[k] = v;
  }
  for (const k of REQUIRED) {
    if (!(k in raw)) throw new Error(`${what}: required field '${k}' is missing`);
  }
  const c = out as unknown as CogVideoXTransformerConfig;
  if (c.out_channels === null || c.out_channels === undefined) c.out_channels = c.in_channels;
  const posInt = (k: keyof CogVideoXTransformerConfig) => {
    const v = c[k];
    if (typeof v !== 'number' || !Number.isInteger(v) || v < 1) throw new Error(`${what}: '${k}' must be a positive integer, got ${JSON.stringify(v)}`);
  };
  for (const k of [
    'num_attention_heads', 'attention_head_dim', 'in_channels', 'out_channels', 'time_embed_dim', 'text_embed_dim', 'num_layers',
    'sample_width', 'sample_height', 'sample_frames', 'patch_size', 'temporal_compression_ratio', 'max_text_seq_length',
  ] as const) posInt(k);
  const bool = (k: keyof CogVideoXTransformerConfig) => {
    if (typeof c[k] !== 'boolean') throw new Error(`${what}: '${k}' must be true or false, got ${JSON.stringify(c[k])}`);
  };
  for (const k of ['flip_sin_to_cos', 'attention_bias', 'norm_elementwise_affine', 'use_rotary_positional_embeddings', 'use_learned_positional_embeddings', 'patch_bias'] as const) bool(k);
  const num = (k: keyof CogVideoXTransformerConfig) => {
    if (typeof c[k] !== 'number' || !Number.isFinite(c[k] as number)) throw new Error(`${what}: '${k}' must be a finite number, got ${JSON.stringify(c[k])}`);
  };
  for (const k of ['freq_shift', 'dropout', 'norm_eps', 'spatial_interpolation_scale', 'temporal_interpolation_scale'] as const) num(k);
  if (c.patch_size_t !== null) {
    throw new Error(`${what}: 'patch_size_t' = ${JSON.stringify(c.patch_size_t)} is not supported (CogVideoX 1.5 checkpoints; VideoREPA uses CogVideoX 1.0, patch_size_t null)`);
  }
  if (c.ofs_embed_dim !== null && c.ofs_embed_dim !== 0) {
    throw new Error(`${what}: 'ofs_embed_dim' = ${JSON.stringify(c.ofs_embed_dim)} is not supported (CogVideoX 1.5 I2V only; expected null)`);
  }
  if (c.activation_fn !== 'gelu-approximate' && c.activation_fn !== 'gelu') {
    throw new Error(`${what}: 'activation_fn' = ${JSON.stringify(c.activation_fn)} is not supported (expected "gelu-approximate" or "gelu")`);
  }
  if (c.timestep_activation_fn !== 'silu') {
    throw new Error(`${what}: 'timestep_activation_fn' = ${JSON.stringify(c.timestep_activation_fn)} is not supported (expected "silu")`);
  }
  if (!(c.dropout >= 0 && c.dropout < 1)) throw new Error(`${what}: 'dropout' = ${c.dropout} must be in [0, 1)`);
  if (!c.use_rotary_positional_embeddings && c.use_learned_positional_embeddings) {
    throw new Error(`${what}: 'use_learned_positional_embeddings' = true needs 'use_rotary_positional_embeddings' = true (as in diffusers)`);
  }
  if (c.attention_head_dim % 8 !== 0 && c.use_rotary_positional_embeddings) {
    throw new Error(`${what}: 'attention_head_dim' must be divisible by 8 for 3D rotary embeddings, got ${c.attention_head_dim}`);
  }
  const inner = c.num_attention_heads * c.attention_head_dim;
  if (!c.use_rotary_positional_embeddings && inner % 16 !== 0) {
    throw new Error(`${what}: inner dim num_attention_heads·attention_head_dim = ${inner} must be divisible by 16 for the 3D sincos positions`);
  }
  if (c.norm_eps <= 0) throw new Error(`${what}: 'norm_eps' must be > 0, got ${c.norm_eps}`);
  return { config: c, align: Object.keys(align).length ? align : undefined };
}

/** Resolve the align fields against the transformer config (1-based layer in range, dims positive). */
export function resolveAlignConfig(config: CogVideoXTransformerConfig, align: Partial<AlignConfig> = {}, what = 'align config'): AlignConfig {
  const a: AlignConfig = { ...ALIGN_DEFAULTS, ...align };
  if (!Number.isInteger(a.align_layer) || a.align_layer < 1 || a.align_layer > config.num_layers) {
    throw new Error(`${what}: align_layer ${JSON.stringify(a.align_layer)} is out of range (1-based, 1..${config.num_layers})`);
  }
  if (!Array.isArray(a.align_dims) || a.align_dims.length < 1 || !a.align_dims.every((d) => Number.isInteger(d) && d > 0)) {
    throw new Error(`${what}: align_dims must be a non-empty list of positive integers, got ${JSON.stringify(a.align_dims)}`);
  }
  if (!Number.isInteger(a.projector_dim) || a.projector_dim < 1) {
    throw new Error(`${what}: projector_dim must be a positive integer, got ${JSON.stringify(a.projector_dim)}`);
  }
  return a;
}

/** inner dim = heads · head_dim */
export function innerDim(c: CogVideoXTransformerConfig): number {
  return c.num_attention_heads * c.attention_head_dim;
}

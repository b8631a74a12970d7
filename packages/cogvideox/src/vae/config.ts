/** AutoencoderKLCogVideoX configuration: the keys of a diffusers `vae/config.json`. */

export interface CogVideoXVaeConfig {
  in_channels: number;
  out_channels: number;
  down_block_types: string[];
  up_block_types: string[];
  block_out_channels: number[];
  latent_channels: number;
  layers_per_block: number;
  act_fn: string;
  norm_eps: number;
  norm_num_groups: number;
  temporal_compression_ratio: number;
  sample_height: number;
  sample_width: number;
  scaling_factor: number;
  shift_factor: number | null;
  latents_mean: number[] | null;
  latents_std: number[] | null;
  force_upcast: boolean;
  use_quant_conv: boolean;
  use_post_quant_conv: boolean;
  invert_scale_latents: boolean;
}

/** The CogVideoX-2B / -5B `vae/config.json` (diffusers defaults). */
export const COGVIDEOX_VAE_CONFIG: CogVideoXVaeConfig = {
  in_channels: 3,
  out_channels: 3,
  down_block_types: ['CogVideoXDownBlock3D', 'CogVideoXDownBlock3D', 'CogVideoXDownBlock3D', 'CogVideoXDownBlock3D'],
  up_block_types: ['CogVideoXUpBlock3D', 'CogVideoXUpBlock3D', 'CogVideoXUpBlock3D', 'CogVideoXUpBlock3D'],
  block_out_channels: [128, 256, 256, 512],
  latent_channels: 16,
  layers_per_block: 3,
  act_fn: 'silu',
  norm_eps: 1e-6,
  norm_num_groups: 32,
  temporal_compression_ratio: 4,
  sample_height: 480,
  sample_width: 720,
  scaling_factor: 1.15258426,
  shift_factor: null,
  latents_mean: null,
  latents_std: null,
  force_upcast: true,
  use_quant_conv: false,
  use_post_quant_conv: false,
  invert_scale_latents: false,
};

/** A checked, complete config from a (partial) `config.json` object; bad values name the key. */
export function resolveVaeConfig(raw: Partial<CogVideoXVaeConfig> & Record<string, unknown> = {}, what = 'CogVideoX VAE config'): CogVideoXVaeConfig {
  const c = { ...COGVIDEOX_VAE_CONFIG, ...raw } as CogVideoXVaeConfig;
  const posInt = (k: keyof CogVideoXVaeConfig) => {
    const v = c[k];
    if (typeof v !== 'number' || !Number.isInteger(v) || v < 1) throw new Error(`${what}: ${k} must be a positive integer, got ${JSON.stringify(v)}`);
  };
  (['in_channels', 'out_channels', 'latent_channels', 'layers_per_block', 'norm_num_groups', 'sample_height', 'sample_width'] as const).forEach(posInt);
  const n = c.block_out_channels?.length;
  if (!Array.isArray(c.block_out_channels) || !n || !c.block_out_channels.every((v) => Number.isInteger(v) && v > 0))
    throw new Error(`${what}: block_out_channels must be a non-empty list of positive integers, got ${JSON.stringify(c.block_out_channels)}`);
  for (const ch of c.block_out_channels)
    if (ch % c.norm_num_groups !== 0) throw new Error(`${what}: block_out_channels entry ${ch} is not divisible by norm_num_groups ${c.norm_num_groups}`);
  if (!Array.isArray(c.down_block_types) || c.down_block_types.length !== n || c.down_block_types.some((t) => t !== 'CogVideoXDownBlock3D'))
    throw new Error(`${what}: down_block_types must be ${n} × 'CogVideoXDownBlock3D' (one per block_out_channels entry), got ${JSON.stringify(c.down_block_types)}`);
  if (!Array.isArray(c.up_block_types) || c.up_block_types.length !== n || c.up_block_types.some((t) => t !== 'CogVideoXUpBlock3D'))
    throw new Error(`${what}: up_block_types must be ${n} × 'CogVideoXUpBlock3D', got ${JSON.stringify(c.up_block_types)}`);
  const level = Math.log2(c.temporal_compression_ratio);
  if (!Number.isInteger(level) || level < 0 || level > n - 1)
    throw new Error(`${what}: temporal_compression_ratio must be a power of 2 up to 2^${n - 1}, got ${c.temporal_compression_ratio}`);
  if (!['silu', 'swish'].includes(c.act_fn)) throw new Error(`${what}: act_fn must be 'silu', got ${JSON.stringify(c.act_fn)}`);
  if (!(c.norm_eps > 0)) throw new Error(`${what}: norm_eps must be positive, got ${c.norm_eps}`);
  if (!(typeof c.scaling_factor === 'number' && c.scaling_factor > 0)) throw new Error(`${what}: scaling_factor must be a positive number, got ${JSON.stringify(c.scaling_factor)}`);
  if (c.use_quant_conv || c.use_post_quant_conv)
    throw new Error(`${what}: use_quant_conv / use_post_quant_conv are not supported (CogVideoX uses neither)`);
  if (c.shift_factor !== null && c.shift_factor !== undefined && typeof c.shift_factor !== 'number')
    throw new Error(`${what}: shift_factor must be a number or null, got ${JSON.stringify(c.shift_factor)}`);
  return c;
}

/** Spatial down-sampling factor (2^(blocks − 1)): 8 for CogVideoX. */
export function vaeSpatialFactor(c: CogVideoXVaeConfig): number {
  return 2 ** (c.block_out_channels.length - 1);
}

/** Number of latent frames for `frames` video frames (frames = 1 + t·k): (frames − 1)/t + 1. */
export function latentFrames(c: CogVideoXVaeConfig, frames: number): number {
  return Math.floor((frames - 1) / c.temporal_compression_ratio) + 1;
}

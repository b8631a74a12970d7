/** Test-only: the tiny transformer config the package tests build models from (not exported from the package). */

/** A tiny CogVideoX transformer config in the diffusers format (fields not given take diffusers' defaults). */
export function tinyConfig(over: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    num_attention_heads: 2,
    attention_head_dim: 16,
    in_channels: 4,
    out_channels: 4,
    time_embed_dim: 16,
    text_embed_dim: 12,
    num_layers: 2,
    sample_width: 6,
    sample_height: 4,
    sample_frames: 5,
    max_text_seq_length: 5,
    ...over,
  };
}

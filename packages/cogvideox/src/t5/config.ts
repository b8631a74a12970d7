/** T5 encoder configuration: the keys of a transformers `text_encoder/config.json` that the encoder uses. */

export interface T5Config {
  vocab_size: number;
  d_model: number;
  d_kv: number;
  d_ff: number;
  num_layers: number;
  num_heads: number;
  relative_attention_num_buckets: number;
  relative_attention_max_distance: number;
  layer_norm_epsilon: number;
  /** 'gated-gelu' (T5 v1.1, CogVideoX), 'relu' (T5 v1.0), 'gated-<act>' or '<act>' */
  feed_forward_proj: string;
  /** activation; transformers derives 'gelu_new' from 'gated-gelu' */
  dense_act_fn: string;
  is_gated_act: boolean;
  pad_token_id: number;
  eos_token_id: number;
}

/** The public T5 v1.1 XXL text-encoder config CogVideoX uses (`text_encoder/config.json`). */
export const T5_V1_1_XXL: T5Config = {
  vocab_size: 32128,
  d_model: 4096,
  d_kv: 64,
  d_ff: 10240,
  num_layers: 24,
  num_heads: 64,
  relative_attention_num_buckets: 32,
  relative_attention_max_distance: 128,
  layer_norm_epsilon: 1e-6,
  feed_forward_proj: 'gated-gelu',
  dense_act_fn: 'gelu_new',
  is_gated_act: true,
  pad_token_id: 0,
  eos_token_id: 1,
};

/** A T5-base-sized encoder (v1.1 layout): the benchmark's model. */
export const T5_V1_1_BASE: T5Config = { ...T5_V1_1_XXL, d_model: 768, d_kv: 64, d_ff: 2048, num_layers: 12, num_heads: 12 };

const POSITIVE_INTS = ['vocab_size', 'd_model', 'd_kv', 'd_ff', 'num_layers', 'num_heads', 'relative_attention_num_buckets', 'relative_attention_max_distance'] as const;

/**
 * A complete, checked config from a (partial) `config.json` object. `feed_forward_proj` is parsed as
 * transformers does ('gated-gelu' → gated, act 'gelu_new'; 'relu' → not gated, act 'relu'). Unknown or
 * invalid values are errors naming the key.
 */
export function resolveT5Config(raw: Partial<T5Config> & Record<string, unknown>, what = 'T5 config'): T5Config {
  const merged: Record<string, unknown> = { ...T5_V1_1_XXL, ...raw };
  for (const k of POSITIVE_INTS) {
    const v = merged[k];
    if (typeof v !== 'number' || !Number.isInteger(v) || v < 1) throw new Error(`${what}: ${k} must be a positive integer, got ${JSON.stringify(v)}`);
  }
  const eps = merged.layer_norm_epsilon;
  if (typeof eps !== 'number' || !(eps > 0)) throw new Error(`${what}: layer_norm_epsilon must be a positive number, got ${JSON.stringify(eps)}`);
  const ffp = String(merged.feed_forward_proj);
  const parts = ffp.split('-');
  const gated = parts[0] === 'gated';
  if ((gated && parts.length !== 2) || (!gated && parts.length !== 1))
    throw new Error(`${what}: feed_forward_proj must be '<act>' or 'gated-<act>' (e.g. 'gated-gelu', 'relu'), got '${ffp}'`);
  let act = parts[parts.length - 1]!;
  // transformers: 'gated-gelu' means the tanh GELU ('gelu_new') for backwards compatibility
  if (ffp === 'gated-gelu') act = 'gelu_new';
  if (!['gelu_new', 'gelu', 'relu', 'silu', 'gelu_pytorch_tanh'].includes(act))
    throw new Error(`${what}: unsupported activation '${act}' in feed_forward_proj '${ffp}' (supported: relu, gelu, gelu_new, silu)`);
  if ((merged.relative_attention_num_buckets as number) < 4)
    throw new Error(`${what}: relative_attention_num_buckets must be at least 4, got ${merged.relative_attention_num_buckets}`);
  return {
    vocab_size: merged.vocab_size as number,
    d_model: merged.d_model as number,
    d_kv: merged.d_kv as number,
    d_ff: merged.d_ff as number,
    num_layers: merged.num_layers as number,
    num_heads: merged.num_heads as number,
    relative_attention_num_buckets: merged.relative_attention_num_buckets as number,
    relative_attention_max_distance: merged.relative_attention_max_distance as number,
    layer_norm_epsilon: eps,
    feed_forward_proj: ffp,
    dense_act_fn: act,
    is_gated_act: gated,
    pad_token_id: (merged.pad_token_id as number) ?? 0,
    eos_token_id: (merged.eos_token_id as number) ?? 1,
  };
}

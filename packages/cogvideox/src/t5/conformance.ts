/**
 * Conformance handler of the `t5_encoder` case. A sub-case with a weights file builds the encoder from
 * params.config, loads the weights and compares the relative-position buckets, the position bias,
 * the pipeline call (no mask), the masked call, every hidden state and the last block's output. A
 * sub-case naming a tokenizer file (and prompts in values.prompts) tokenises them with the manifest's
 * max_length and compares input_ids / attention_mask exactly; with a model too, the encoder then runs on
 * our own ids. Everything is read from the manifest.
 */
import path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import type { ConformanceContext } from '@vrepa/core';
import { T5EncoderModel, relativePositionBuckets } from './model.js';
import { loadT5Weights } from './load.js';
import { T5Tokenizer } from './tokenizer.js';

function globToRegExp(glob: string): RegExp {
  return new RegExp(`^${glob.trim().replace(/[.+?^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '.*')}$`);
}

/**
 * The manifest tolerance sentence for tensor `name`: a key equal to it, or one of a key's '/'-separated
 * alternatives matching it (with '*' globs), or a key that is a '_'-prefix of it (`posterior` for
 * `posterior_mean`). Throws when none does.
 */
export function toleranceOf(tolerances: Record<string, unknown>, name: string, caseName = 'conformance'): string {
  const entries = Object.entries(tolerances).filter((e): e is [string, string] => typeof e[1] === 'string');
  for (const [k, v] of entries) if (k === name || k.split('/').some((alt) => globToRegExp(alt).test(name))) return v;
  const parts = name.split('_');
  for (let n = parts.length - 1; n >= 1; n--) {
    const pre = parts.slice(0, n).join('_');
    for (const [k, v] of entries) if (k.split('/').some((alt) => globToRegExp(alt).test(pre))) return v;
  }
  throw new Error(`${caseName}: no tolerance for '${name}' in the manifest (have ${Object.keys(tolerances).join(', ')})`);
}

export async function t5EncoderHandler(ctx: ConformanceContext): Promise<void> {
  const sc = ctx.subcase;
  const p = ctx.params;
  const tensors: Record<string, { shape: number[] }> = sc.tensors ?? {};
  const tol = (n: string) => toleranceOf(sc.tolerances ?? {}, n, 't5_encoder');
  const has = (n: string) => !!tensors[n];

  // tokenizer: our ids for values.prompts
  let ids: tf.Tensor | null = null;
  let mask: tf.Tensor | null = null;
  const tokFile: string | undefined = sc.tokenizer_file ?? p.tokenizer?.file;
  const prompts: string[] | undefined = sc.values?.prompts;
  if (tokFile && prompts) {
    const tok = T5Tokenizer.fromFile(path.join(ctx.caseDir, path.basename(tokFile)));
    const maxLength: number = p.max_length ?? p.tokenizer?.max_length ?? p.seq_len;
    const out = tok.encodeBatch(prompts, { maxLength, padding: 'max_length', truncation: true });
    ids = tf.tensor2d(out.inputIds, undefined, 'int32');
    mask = tf.tensor2d(out.attentionMask, undefined, 'int32');
    if (has('input_ids')) ctx.compare('input_ids', ids, tol('input_ids'));
    if (has('attention_mask')) ctx.compare('attention_mask', mask, tol('attention_mask'));
    const untrunc: number[][] | undefined = sc.values?.untruncated_ids;
    if (untrunc) {
      // the pipeline's untruncated check (padding='longest'): compare row by row as flat lists
      prompts.forEach((pr, i) => {
        const got = tok.encode(pr);
        ctx.compare(`untruncated_ids[${i}]`, got, 'exact', untrunc[i]!);
      });
    }
  }
  if (!ctx.weights) {
    if (!ids) throw new Error('t5_encoder: the sub-case has neither a weights file nor a tokenizer with prompts');
    return;
  }

  const weights = ctx.weights;
  const model = new T5EncoderModel(p.config, { init: 'zeros' });
  try {
    loadT5Weights(model, { keys: () => weights.keys(), shape: (k) => weights.info(k).shape, read: (k) => weights.read(k) }, { source: weights.path });
    const c = model.config;
    if (!ids) ids = ctx.ref('input_ids');
    if (!mask) mask = ctx.ref('attention_mask');
    const L = ids.shape[1]!;
    if (has('relative_position_bucket_by_offset')) {
      const buckets = relativePositionBuckets(L, c.relative_attention_num_buckets, c.relative_attention_max_distance);
      ctx.compare('relative_position_bucket_by_offset', buckets, tol('relative_position_bucket_by_offset'));
    }
    if (has('position_bias_by_offset')) {
      const buckets = relativePositionBuckets(L, c.relative_attention_num_buckets, c.relative_attention_max_distance);
      const table = model.encoder.block.at(0).attn.SelfAttention.relative_attention_bias!.weight.value;
      const byOffset = tf.transpose(tf.gather(table, tf.tensor1d(buckets, 'int32'))); // [H, 2L−1]
      ctx.compare('position_bias_by_offset', byOffset, tol('position_bias_by_offset'));
    }
    if (has('position_bias')) ctx.compare('position_bias', model.positionBias(L), tol('position_bias'));

    const plain = model.encode(ids, { outputHiddenStates: true });
    ctx.compare('last_hidden_state', plain.lastHiddenState, tol('last_hidden_state'));
    plain.hiddenStates!.forEach((h, i) => {
      if (has(`hidden_states_${i}`)) ctx.compare(`hidden_states_${i}`, h, tol(`hidden_states_${i}`));
    });
    const lastBlock = `block${c.num_layers - 1}_out`;
    if (has(lastBlock)) ctx.compare(lastBlock, plain.lastBlockOutput!, tol(lastBlock));

    if (has('last_hidden_state_masked')) {
      const masked = model.encode(ids, { attentionMask: mask, outputHiddenStates: true });
      ctx.compare('last_hidden_state_masked', masked.lastHiddenState, tol('last_hidden_state_masked'));
      masked.hiddenStates!.forEach((h, i) => {
        if (has(`hidden_states_masked_${i}`)) ctx.compare(`hidden_states_masked_${i}`, h, tol(`hidden_states_masked_${i}`));
      });
      if (has(`${lastBlock}_masked`)) ctx.compare(`${lastBlock}_masked`, masked.lastBlockOutput!, tol(`${lastBlock}_masked`));
    }
  } finally {
    model.dispose();
  }
}

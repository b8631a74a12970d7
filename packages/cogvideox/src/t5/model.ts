/**
 * T5 text encoder (transformers `T5EncoderModel`, v1.1 layout), parameter names = the transformers
 * state-dict keys: `shared.weight`, `encoder.block.{i}.layer.0.SelfAttention.{q,k,v,o}.weight`,
 * `encoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight`,
 * `encoder.block.{i}.layer.0.layer_norm.weight`, `encoder.block.{i}.layer.1.DenseReluDense.{wi_0,wi_1,wo}.weight`
 * (`wi` for non-gated), `encoder.block.{i}.layer.1.layer_norm.weight`, `encoder.final_layer_norm.weight`.
 *
 * Semantics: x = shared[ids] (no scaling, no absolute positions); per block
 * x += o(attn(rms(x))) with scores q·kᵀ + position_bias (NO 1/√d_kv) and the SAME position bias (block
 * 0's relative_attention_bias) in every block; x += wo(act(wi_0(rms(x))) · wi_1(rms(x))); output =
 * final_layer_norm(x). The CogVideoX pipeline calls it without an attention mask (pads attend).
 */
import * as tf from '@tensorflow/tfjs';
import { Embedding, Linear, MASK_MIN, Module, ModuleList, RMSNorm, activation, attention, mergeHeads, splitHeads, type InitOptions } from '@vrepa/core';
import { resolveT5Config, type T5Config } from './config.js';

/**
 * T5's bidirectional relative-position bucket of `offset = key − query`, with transformers'
 * float32 arithmetic for the logarithmic buckets (log, divide, multiply in float32, then truncation).
 */
export function relativePositionBucket(offset: number, numBuckets: number, maxDistance: number): number {
  const n = Math.floor(numBuckets / 2);
  let bucket = offset > 0 ? n : 0;
  const a = Math.abs(offset);
  const exact = Math.floor(n / 2);
  if (a < exact) return bucket + a;
  const f = Math.fround;
  const ratio = f(f(a) / exact);
  const logRatio = f(Math.log(ratio));
  const denom = f(Math.log(maxDistance / exact));
  const scaled = f(f(logRatio / denom) * (n - exact));
  const large = Math.min(n - 1, exact + Math.trunc(scaled));
  return bucket + large;
}

/** Buckets for every offset −(len−1) … len−1 (index = offset + len − 1). */
export function relativePositionBuckets(seqLen: number, numBuckets: number, maxDistance: number): Int32Array {
  const out = new Int32Array(2 * seqLen - 1);
  for (let i = 0; i < out.length; i++) out[i] = relativePositionBucket(i - (seqLen - 1), numBuckets, maxDistance);
  return out;
}

/** T5Attention (encoder self-attention): q, k, v, o without bias; block 0 owns the relative bias table. */
export class T5Attention extends Module {
  readonly q: Linear;
  readonly k: Linear;
  readonly v: Linear;
  readonly o: Linear;
  readonly relative_attention_bias: Embedding | null;
  constructor(
    readonly config: T5Config,
    hasRelativeBias: boolean,
    init: InitOptions = {},
  ) {
    super();
    const inner = config.num_heads * config.d_kv;
    this.q = this.module('q', new Linear(config.d_model, inner, { ...init, bias: false }));
    this.k = this.module('k', new Linear(config.d_model, inner, { ...init, bias: false }));
    this.v = this.module('v', new Linear(config.d_model, inner, { ...init, bias: false }));
    this.o = this.module('o', new Linear(inner, config.d_model, { ...init, bias: false }));
    this.relative_attention_bias = hasRelativeBias
      ? this.module('relative_attention_bias', new Embedding(config.relative_attention_num_buckets, config.num_heads, init))
      : null;
  }

  /** Position bias `[1, heads, L, L]`: bias[0, h, q, k] = relative_attention_bias[bucket(k − q), h]. */
  positionBias(seqLen: number): tf.Tensor {
    if (!this.relative_attention_bias) throw new Error('T5Attention.positionBias: only the first block has relative_attention_bias');
    const c = this.config;
    const byOffset = relativePositionBuckets(seqLen, c.relative_attention_num_buckets, c.relative_attention_max_distance);
    const idx = new Int32Array(seqLen * seqLen);
    for (let q = 0; q < seqLen; q++) for (let k = 0; k < seqLen; k++) idx[q * seqLen + k] = byOffset[k - q + seqLen - 1]!;
    return tf.tidy(() => {
      const rows = tf.gather(this.relative_attention_bias!.weight.value, tf.tensor1d(idx, 'int32')); // [L·L, H]
      return tf.reshape(tf.transpose(tf.reshape(rows, [seqLen, seqLen, c.num_heads]), [2, 0, 1]), [1, c.num_heads, seqLen, seqLen]);
    });
  }

  /** `x` `[B, L, d_model]`, `bias` broadcastable to `[B, heads, L, L]` (position bias + key mask) → `[B, L, d_model]`. */
  forward(x: tf.Tensor, bias: tf.Tensor): tf.Tensor {
    return tf.tidy(() => {
      const h = this.config.num_heads;
      const q = splitHeads(this.q.forward(x), h);
      const k = splitHeads(this.k.forward(x), h);
      const v = splitHeads(this.v.forward(x), h);
      return this.o.forward(mergeHeads(attention(q, k, v, { scale: 1, mask: bias })));
    });
  }
}

/** T5LayerSelfAttention: `layer_norm` then `SelfAttention`, residual. */
export class T5LayerSelfAttention extends Module {
  readonly SelfAttention: T5Attention;
  readonly layer_norm: RMSNorm;
  constructor(config: T5Config, hasRelativeBias: boolean, init: InitOptions = {}) {
    super();
    this.SelfAttention = this.module('SelfAttention', new T5Attention(config, hasRelativeBias, init));
    this.layer_norm = this.module('layer_norm', new RMSNorm(config.d_model, { eps: config.layer_norm_epsilon }));
  }
  forward(x: tf.Tensor, bias: tf.Tensor): tf.Tensor {
    return tf.tidy(() => tf.add(x, this.SelfAttention.forward(this.layer_norm.forward(x), bias)));
  }
}

/** T5DenseGatedActDense (`wi_0`, `wi_1`, `wo`) or T5DenseActDense (`wi`, `wo`), no biases. */
export class T5DenseActDense extends Module {
  readonly wi_0: Linear | null = null;
  readonly wi_1: Linear | null = null;
  readonly wi: Linear | null = null;
  readonly wo: Linear;
  private readonly act: (x: tf.Tensor) => tf.Tensor;
  constructor(config: T5Config, init: InitOptions = {}) {
    super();
    const o = { ...init, bias: false };
    if (config.is_gated_act) {
      this.wi_0 = this.module('wi_0', new Linear(config.d_model, config.d_ff, o));
      this.wi_1 = this.module('wi_1', new Linear(config.d_model, config.d_ff, o));
    } else {
      this.wi = this.module('wi', new Linear(config.d_model, config.d_ff, o));
    }
    this.wo = this.module('wo', new Linear(config.d_ff, config.d_model, o));
    this.act = activation(config.dense_act_fn);
  }
  forward(x: tf.Tensor): tf.Tensor {
    return tf.tidy(() => {
      const h = this.wi ? this.act(this.wi.forward(x)) : tf.mul(this.act(this.wi_0!.forward(x)), this.wi_1!.forward(x));
      return this.wo.forward(h);
    });
  }
}

/** T5LayerFF: `layer_norm` then `DenseReluDense`, residual. */
export class T5LayerFF extends Module {
  readonly DenseReluDense: T5DenseActDense;
  readonly layer_norm: RMSNorm;
  constructor(config: T5Config, init: InitOptions = {}) {
    super();
    this.DenseReluDense = this.module('DenseReluDense', new T5DenseActDense(config, init));
    this.layer_norm = this.module('layer_norm', new RMSNorm(config.d_model, { eps: config.layer_norm_epsilon }));
  }
  forward(x: tf.Tensor): tf.Tensor {
    return tf.tidy(() => tf.add(x, this.DenseReluDense.forward(this.layer_norm.forward(x))));
  }
}

/** T5Block (encoder): `layer.0` self-attention, `layer.1` feed-forward. */
export class T5Block extends Module {
  readonly layer: ModuleList<Module>;
  readonly attn: T5LayerSelfAttention;
  readonly ff: T5LayerFF;
  constructor(config: T5Config, hasRelativeBias: boolean, init: InitOptions = {}) {
    super();
    this.layer = this.module('layer', new ModuleList<Module>());
    this.attn = new T5LayerSelfAttention(config, hasRelativeBias, init);
    this.ff = new T5LayerFF(config, init);
    this.layer.push(this.attn);
    this.layer.push(this.ff);
  }
  forward(x: tf.Tensor, bias: tf.Tensor): tf.Tensor {
    return tf.tidy(() => this.ff.forward(this.attn.forward(x, bias)));
  }
}

/** T5Stack (encoder part): `block.{i}`, `final_layer_norm`. */
export class T5Stack extends Module {
  readonly block: ModuleList<T5Block>;
  readonly final_layer_norm: RMSNorm;
  constructor(config: T5Config, init: InitOptions = {}) {
    super();
    this.block = this.module('block', new ModuleList<T5Block>());
    for (let i = 0; i < config.num_layers; i++) this.block.push(new T5Block(config, i === 0, init));
    this.final_layer_norm = this.module('final_layer_norm', new RMSNorm(config.d_model, { eps: config.layer_norm_epsilon }));
  }
}

export interface T5EncodeOptions {
  /** `[B, L]` 1 = token, 0 = padding; omitted = the CogVideoX pipeline's call (every position attends) */
  attentionMask?: tf.Tensor | number[][];
  /** also return every hidden state (transformers' output_hidden_states) and the last block's output */
  outputHiddenStates?: boolean;
}

export interface T5EncoderOutput {
  /** `[B, L, d_model]` after the final norm */
  lastHiddenState: tf.Tensor;
  /** with outputHiddenStates: [embeddings, block 0 out, …, block n−2 out, lastHiddenState] (num_layers + 1) */
  hiddenStates?: tf.Tensor[];
  /** with outputHiddenStates: the last block's output before the final norm */
  lastBlockOutput?: tf.Tensor;
}

/** transformers T5EncoderModel: `shared` embedding + `encoder` stack. */
export class T5EncoderModel extends Module {
  readonly config: T5Config;
  readonly shared: Embedding;
  readonly encoder: T5Stack;
  constructor(config: Partial<T5Config> | Record<string, unknown>, init: InitOptions = {}) {
    super();
    this.config = resolveT5Config(config as Record<string, unknown>);
    this.shared = this.module('shared', new Embedding(this.config.vocab_size, this.config.d_model, init));
    this.encoder = this.module('encoder', new T5Stack(this.config, init));
  }

  /** The position bias `[1, heads, L, L]` (block 0's table, shared by all blocks). */
  positionBias(seqLen: number): tf.Tensor {
    return this.encoder.block.at(0).attn.SelfAttention.positionBias(seqLen);
  }

  /**
   * `inputIds` `[B, L]` (int) → last hidden state `[B, L, d_model]` (and optionally all hidden states).
   * Without `attentionMask` this is the CogVideoX pipeline's call: pads take part in attention.
   */
  encode(inputIds: tf.Tensor | number[][], opts: T5EncodeOptions = {}): T5EncoderOutput {
    const ids = inputIds instanceof tf.Tensor ? inputIds : tf.tensor2d(inputIds, undefined, 'int32');
    try {
      if (ids.rank !== 2) throw new Error(`T5EncoderModel.encode: inputIds must be [batch, seq_len], got [${ids.shape.join(', ')}]`);
      const [b, l] = ids.shape as [number, number];
      let maskT: tf.Tensor | null = null;
      if (opts.attentionMask) {
        maskT = opts.attentionMask instanceof tf.Tensor ? opts.attentionMask : tf.tensor2d(opts.attentionMask, undefined, 'float32');
        if (maskT.shape.join() !== ids.shape.join())
          throw new Error(`T5EncoderModel.encode: attentionMask must be [${b}, ${l}] like inputIds, got [${maskT.shape.join(', ')}]`);
      }
      const out = tf.tidy(() => {
        let bias = this.positionBias(l);
        if (maskT) {
          // (1 − mask)·float32_min on the masked KEYS
          const add = tf.mul(tf.sub(1, tf.cast(maskT, 'float32')), MASK_MIN);
          bias = tf.add(bias, tf.reshape(add, [b, 1, 1, l]));
        }
        let x = this.shared.forward(ids);
        const hidden: tf.Tensor[] = [];
        const blocks = [...this.encoder.block];
        blocks.forEach((blk, i) => {
          if (opts.outputHiddenStates) hidden.push(x);
          const y = blk.forward(x, bias);
          if (!opts.outputHiddenStates && i > 0) x.dispose(); // (block 0's input, the embedding, is freed by tidy)
          x = y;
        });
        const last = this.encoder.final_layer_norm.forward(x);
        if (!opts.outputHiddenStates) return { lastHiddenState: last };
        return { lastHiddenState: last, hiddenStates: [...hidden, last], lastBlockOutput: x };
      });
      if (maskT && maskT !== opts.attentionMask) maskT.dispose();
      return out;
    } finally {
      if (ids !== inputIds) ids.dispose();
    }
  }

  /** Same as `encode(ids).lastHiddenState`. */
  forward(inputIds: tf.Tensor | number[][], attentionMask?: tf.Tensor | number[][]): tf.Tensor {
    return this.encode(inputIds, { attentionMask }).lastHiddenState;
  }
}

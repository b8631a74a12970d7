/** PyTorch nn.Embedding: a lookup table `weight` `[num_embeddings, dim]` (same layout in both). */
import * as tf from '@tensorflow/tfjs';
import { Module, type Parameter } from '../module.js';
import { type InitOptions, getInitRng } from './init.js';

/**
 * Rows of `weight` `[V, D]` for integer `ids` of any shape → `[...ids.shape, D]`. Ids outside [0, V)
 * are an error (PyTorch raises too) rather than the zeros tf.gather would give on some backends.
 */
export function embedding(ids: tf.Tensor | number[] | number[][] | Int32Array, weight: tf.Tensor): tf.Tensor {
  if (weight.rank !== 2) throw new Error(`embedding: weight must be [num_embeddings, dim], got [${weight.shape.join(', ')}]`);
  const v = weight.shape[0]!;
  return tf.tidy(() => {
    const t = ids instanceof tf.Tensor ? ids : tf.tensor(ids as number[], undefined, 'int32');
    const data = t.dataSync();
    for (let i = 0; i < data.length; i++) {
      const id = data[i]!;
      if (!Number.isInteger(id) || id < 0 || id >= v)
        throw new Error(`embedding: id ${id} at flat position ${i} is outside the table's ${v} rows`);
    }
    const flat = tf.reshape(t.dtype === 'int32' ? t : tf.cast(t, 'int32'), [-1]);
    return tf.reshape(tf.gather(weight, flat), [...t.shape, weight.shape[1]!]);
  });
}

/** PyTorch nn.Embedding(num, dim): parameter `weight` `[num, dim]`, initialised N(0, 1) as PyTorch. */
export class Embedding extends Module {
  readonly weight: Parameter;
  constructor(
    readonly numEmbeddings: number,
    readonly dim: number,
    opts: InitOptions = {},
  ) {
    super();
    this.weight = this.param('weight', () =>
      (opts.init ?? 'torch') === 'zeros' ? tf.zeros([numEmbeddings, dim]) : (opts.rng ?? getInitRng()).randomTensor([numEmbeddings, dim], 'normal'),
    );
  }
  /** ids of any shape → `[...ids.shape, dim]` */
  forward(ids: tf.Tensor | number[] | number[][] | Int32Array): tf.Tensor {
    return embedding(ids, this.weight.value);
  }
}

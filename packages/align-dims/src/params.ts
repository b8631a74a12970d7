/**
 * Minimal named-parameter handling for the align parts (official state-dict names, PyTorch layouts).
 * TODO(core): swap to core's Module registry when `packages/core/src/module.ts` lands; this file only
 * keeps a name → tf.Variable map and checks shapes on load.
 */
import * as tf from '@tensorflow/tfjs';

let counter = 0;

/** A unique engine name for a variable carrying the state-dict name `name` (tf variable names are global). */
export function variableName(name: string): string {
  counter += 1;
  return `${name}#${counter}`;
}

/** Seeded PyTorch-default init for Linear / Conv: U(−1/√fanIn, 1/√fanIn) for weight and bias. */
export function uniformInit(shape: number[], fanIn: number, seed: number): tf.Tensor {
  const bound = 1 / Math.sqrt(fanIn);
  return tf.randomUniform(shape, -bound, bound, 'float32', seed);
}

/** A source of state-dict tensors: a record, a Map, or a getter (returns undefined when absent). */
export type StateDictSource = Record<string, tf.Tensor> | Map<string, tf.Tensor> | ((name: string) => tf.Tensor | undefined);

export function getFrom(src: StateDictSource, name: string): tf.Tensor | undefined {
  if (typeof src === 'function') return src(name);
  if (src instanceof Map) return src.get(name);
  return src[name];
}

/**
 * Build variables for `expected` (name → shape) from `src`; every name must be present with its shape.
 * `owner` names the module in the error.
 */
export function variablesFrom(src: StateDictSource, expected: Record<string, number[]>, owner: string, trainable = true): Record<string, tf.Variable> {
  const missing = Object.keys(expected).filter((k) => getFrom(src, k) === undefined);
  if (missing.length) throw new Error(`${owner}: state dict is missing ${missing.join(', ')}`);
  const out: Record<string, tf.Variable> = {};
  for (const [name, shape] of Object.entries(expected)) {
    const t = getFrom(src, name)!;
    if (t.shape.join(',') !== shape.join(',')) {
      Object.values(out).forEach((v) => v.dispose());
      throw new Error(`${owner}: ${name} has shape [${t.shape.join(', ')}], expected [${shape.join(', ')}]`);
    }
    out[name] = tf.variable(t.dtype === 'float32' ? t : tf.cast(t, 'float32'), trainable, variableName(name));
  }
  return out;
}

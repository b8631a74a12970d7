/** Helpers that prove a function leaks no tensors (tests use them on every public op). */
import * as tf from '@tensorflow/tfjs';

/**
 * Run `fn` once to warm up, then `repeats` more times; returns how many tensors the repeats left
 * behind (0 for a clean function). Tensors `fn` returns are disposed by this helper.
 */
export async function tensorLeakAcross(fn: () => unknown, repeats = 3): Promise<number> {
  const run = async () => {
    const out = await fn();
    tf.dispose(collect(out));
  };
  await run();
  const before = tf.memory().numTensors;
  for (let i = 0; i < repeats; i++) await run();
  return tf.memory().numTensors - before;
}

function collect(x: unknown): tf.Tensor[] {
  if (x instanceof tf.Tensor) return [x];
  if (Array.isArray(x)) return x.flatMap(collect);
  if (x && typeof x === 'object' && !(ArrayBuffer.isView(x))) return Object.values(x).flatMap(collect);
  return [];
}

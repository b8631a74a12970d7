/** A typed wrapper of tf.customGrad (its declared types do not accept named tensor parameters). */
import * as tf from '@tensorflow/tfjs';

export type CustomForward = (
  inputs: tf.Tensor[],
  save: tf.GradSaveFunc,
) => { value: tf.Tensor; gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => tf.Tensor | tf.Tensor[] };

/**
 * An op with a hand-written gradient. `f` gets the input tensors and `save` (tensors saved for the
 * backward; the forward runs inside a tidy, so anything else it creates is freed).
 */
export function customOp(f: CustomForward): (...inputs: tf.Tensor[]) => tf.Tensor {
  const op = tf.customGrad(((...args: Array<tf.Tensor | tf.GradSaveFunc>) => {
    const save = args[args.length - 1] as tf.GradSaveFunc;
    return f(args.slice(0, -1) as tf.Tensor[], save);
  }) as unknown as Parameters<typeof tf.customGrad>[0]);
  return (...inputs: tf.Tensor[]) => op(...inputs);
}

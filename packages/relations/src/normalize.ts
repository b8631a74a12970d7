/**
 * Row normalisation with `torch.nn.functional.normalize(x, dim=-1, eps=1e-12)` semantics:
 * n = x / max(‖x‖₂, eps). Its gradient matches torch autograd, including rows whose norm is ≤ eps
 * (there the clamp passes no gradient and dx = dn / eps).
 */
import * as tf from '@tensorflow/tfjs';

export const NORMALIZE_EPS = 1e-12;

/** n = x / r with r = max(‖x‖, eps) over the last axis; returns n, r ([..., 1]) and the mask ‖x‖ > eps. */
export function normalizeRowsParts(x: tf.Tensor): { n: tf.Tensor; r: tf.Tensor; live: tf.Tensor } {
  return tf.tidy(() => {
    const norm = tf.sqrt(tf.sum(tf.square(x), -1, true));
    const r = tf.maximum(norm, NORMALIZE_EPS);
    const live = tf.cast(tf.greater(norm, NORMALIZE_EPS), 'float32');
    return { n: tf.div(x, r), r, live };
  });
}

/** dL/dx from dL/dn through n = x / max(‖x‖, eps): (dn − live·n·(n·dn)) / r. */
export function normalizeRowsBackward(dn: tf.Tensor, n: tf.Tensor, r: tf.Tensor, live: tf.Tensor): tf.Tensor {
  return tf.tidy(() => {
    const proj = tf.mul(tf.sum(tf.mul(n, dn), -1, true), live);
    return tf.div(tf.sub(dn, tf.mul(n, proj)), r);
  });
}

/** `[..., dim]` → rows scaled to unit L2 norm (torch `F.normalize(x, dim=-1)`), differentiable. */
export function l2Normalize<T extends tf.Tensor>(x: T): T {
  const op = tf.customGrad((...args: Array<tf.Tensor | tf.GradSaveFunc>) => {
    const input = args[0] as tf.Tensor;
    const save = args[1] as tf.GradSaveFunc;
    const { n, r, live } = normalizeRowsParts(input);
    save([n, r, live]);
    return {
      value: n,
      gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => normalizeRowsBackward(dy, saved[0]!, saved[1]!, saved[2]!),
    };
  });
  return op(x) as T;
}

/** Identity whose gradient is zero: the teacher side of every loss is a constant. */
export function stopGradient<T extends tf.Tensor>(x: T): T {
  const op = tf.customGrad((...args: Array<tf.Tensor | tf.GradSaveFunc>) => ({
    value: tf.clone(args[0] as tf.Tensor),
    gradFunc: (dy: tf.Tensor) => tf.zerosLike(dy),
  }));
  return op(x) as T;
}

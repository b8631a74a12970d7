/**
 * A fully-connected layer on PyTorch-layout weights with flag-free matmuls in both directions:
 * y = x·Wᵀ + b as x·(Wᵀ materialised), dx = dy·W, dW = dyᵀ(materialised)·x, db = Σ dy.
 * (On wasm, matmuls with transpose flags run ~12× slower than the plain form; this keeps the projector
 * and the patchified downsampler on the fast path on every backend.)
 * TODO(core): replace with core's Linear once `packages/core/src/nn` lands.
 */
import * as tf from '@tensorflow/tfjs';

/** `x [N, in] · weight[out, in]ᵀ + bias[out]` → `[N, out]`, differentiable in all three. */
export function linear2d(x: tf.Tensor2D, weight: tf.Tensor2D, bias: tf.Tensor1D): tf.Tensor2D {
  const [n, inX] = x.shape;
  const [out, inW] = weight.shape;
  if (inX !== inW) throw new Error(`linear: input has ${inX} features but the weight [${out}, ${inW}] expects ${inW}`);
  if (bias.shape[0] !== out) throw new Error(`linear: bias has ${bias.shape[0]} entries, expected ${out} (weight [${out}, ${inW}])`);
  const f = tf.customGrad((...args: Array<tf.Tensor | tf.GradSaveFunc>) => {
    const [xi, w, b] = args as tf.Tensor[];
    const save = args[3] as tf.GradSaveFunc;
    save([xi, w]);
    const value = tf.add(tf.matMul(xi as tf.Tensor2D, tf.transpose(w as tf.Tensor2D)), b);
    const gradFunc = (dy: tf.Tensor, saved: tf.Tensor[]) => {
      const [xs, ws] = saved as [tf.Tensor2D, tf.Tensor2D];
      const dy2 = dy as tf.Tensor2D;
      return [tf.matMul(dy2, ws), tf.matMul(tf.transpose(dy2), xs), tf.sum(dy2, 0)];
    };
    return { value, gradFunc };
  });
  const y = f(x, weight, bias) as tf.Tensor2D;
  if (y.shape[0] !== n) throw new Error('linear: internal shape error');
  return y;
}

/** Apply `linear2d` to the last axis of `x [..., in]`. */
export function linear(x: tf.Tensor, weight: tf.Tensor2D, bias: tf.Tensor1D): tf.Tensor {
  return tf.tidy(() => {
    const inDim = x.shape[x.rank - 1]!;
    const lead = x.shape.slice(0, -1);
    const y = linear2d(tf.reshape(x, [-1, inDim]), weight, bias);
    return tf.reshape(y, [...lead, weight.shape[0]]);
  });
}

/** SiLU(x) = x·σ(x) (PyTorch nn.SiLU). */
export function silu(x: tf.Tensor): tf.Tensor {
  return tf.tidy(() => tf.mul(x, tf.sigmoid(x)));
}

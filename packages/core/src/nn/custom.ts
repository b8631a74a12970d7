/**
 * Ops with hand-written gradients that keep only what their backward needs.
 *
 * Why not plain `tf.customGrad`: it evaluates the gradient of EVERY input when the backward reaches
 * the op, even of inputs nothing asked a gradient for (a frozen weight, the input of the first
 * layer), which for a linear layer is a full extra matMul. `customOp` instead hands the engine one
 * thunk per input, as tfjs' own kernel gradients do, so the engine evaluates only the thunks of
 * inputs on the path to what is being differentiated.
 *
 * Why the lean reshape: tfjs' Reshape gradient saves its input (it only needs the shape), so every
 * reshape on the tape keeps a buffer alive; on tfjs-node each reshape is also a new data id whose
 * bytes tf.memory() counts again although TensorFlow shares the buffer.
 */
import * as tf from '@tensorflow/tfjs';
import { mulAdd } from '../backends/native-fast.js';

/** One gradient per input: a thunk the engine calls only when that input's gradient is needed. */
export type GradThunks = Array<() => tf.Tensor>;

export type CustomForward = (
  inputs: tf.Tensor[],
  save: tf.GradSaveFunc,
) => { value: tf.Tensor; gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => tf.Tensor | tf.Tensor[] | GradThunks };

interface EngineInternals {
  runKernelFunc(params: {
    forwardFunc: (backend: unknown, save: tf.GradSaveFunc) => tf.Tensor;
    backwardsFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => Record<string, () => tf.Tensor>;
    inputs: Record<string, tf.Tensor>;
  }): tf.Tensor;
}

const toThunks = (g: tf.Tensor | tf.Tensor[] | GradThunks): GradThunks =>
  (Array.isArray(g) ? g : [g]).map((t) => (typeof t === 'function' ? t : () => t));

/**
 * An op with a hand-written gradient. `f` gets the input tensors and `save` (tensors saved for the
 * backward; the forward runs inside a tidy, so anything else it creates is freed). Its `gradFunc`
 * returns one gradient per input, either tensors or (better) thunks: a thunk runs inside its own tidy
 * and only if that input's gradient is needed, so do the work inside the thunks, not before them.
 */
export function customOp(f: CustomForward): (...inputs: tf.Tensor[]) => tf.Tensor {
  const engine = tf.engine() as unknown as Partial<EngineInternals>;
  if (typeof engine.runKernelFunc !== 'function') {
    // fallback for a tfjs without the engine entry point customGrad itself uses: every gradient eagerly
    const op = tf.customGrad(((...args: Array<tf.Tensor | tf.GradSaveFunc>) => {
      const save = args[args.length - 1] as tf.GradSaveFunc;
      const r = f(args.slice(0, -1) as tf.Tensor[], save);
      return { value: r.value, gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => toThunks(r.gradFunc(dy, saved)).map((g) => g()) };
    }) as unknown as Parameters<typeof tf.customGrad>[0]);
    return (...inputs: tf.Tensor[]) => op(...inputs);
  }
  return (...inputs: tf.Tensor[]) => {
    for (const [i, t] of inputs.entries())
      if (!(t instanceof tf.Tensor)) throw new Error(`customOp: input ${i} must be a tf.Tensor, got ${typeof t}`);
    let gradFunc: ReturnType<CustomForward>['gradFunc'] | undefined;
    const inputMap: Record<string, tf.Tensor> = {};
    inputs.forEach((t, i) => (inputMap[i] = t));
    return engine.runKernelFunc!.call(engine, {
      forwardFunc: (_backend, save) => {
        const r = f(inputs, save);
        if (!(r.value instanceof tf.Tensor)) throw new Error('customOp: the forward must return { value: tf.Tensor, gradFunc }');
        gradFunc = r.gradFunc;
        return r.value;
      },
      backwardsFunc: (dy, saved) => {
        const g = toThunks(gradFunc!(dy, saved));
        if (g.length !== inputs.length) throw new Error(`customOp: gradFunc returned ${g.length} gradients for ${inputs.length} inputs`);
        const map: Record<string, () => tf.Tensor> = {};
        g.forEach((fn, i) => (map[i] = fn));
        return map;
      },
      inputs: inputMap,
    });
  };
}

/**
 * tf.reshape whose gradient saves nothing (tfjs' saves the input to read its shape). `shape` may
 * hold one -1. Same result as tf.reshape.
 */
export function leanReshape(x: tf.Tensor, shape: number[]): tf.Tensor {
  const known = shape.reduce((a, s) => (s === -1 ? a : a * s), 1);
  const full = shape.map((s) => (s === -1 ? x.size / known : s));
  if (full.reduce((a, s) => a * s, 1) !== x.size || full.some((s) => !Number.isInteger(s) || s < 0))
    throw new Error(`leanReshape: cannot reshape [${x.shape.join(', ')}] (${x.size} elements) to [${shape.join(', ')}]`);
  const inShape = x.shape;
  return customOp(([xi]) => ({ value: tf.reshape(xi!, full), gradFunc: (dy: tf.Tensor) => [() => tf.reshape(dy, inShape)] }))(x);
}

/** Sum `dy` (the broadcast result) back to `shape`. */
function unbroadcast(dy: tf.Tensor, shape: number[]): tf.Tensor {
  const axes = tf.backend_util.getReductionAxes(shape, dy.shape);
  const r = axes.length ? tf.sum(dy, axes) : dy;
  return r.shape.length === shape.length && r.shape.every((s, i) => s === shape[i]) ? r : tf.reshape(r, shape);
}

const addOp = customOp(([a, b]) => {
  const [sa, sb] = [a!.shape, b!.shape];
  return { value: tf.add(a!, b!), gradFunc: (dy: tf.Tensor) => [() => unbroadcast(dy, sa), () => unbroadcast(dy, sb)] };
});

/**
 * tf.add (with broadcasting) whose gradient saves nothing: tfjs' Add gradient keeps both inputs alive
 * until the backward only to read their shapes. Use it for residual sums and shifts under a tape.
 */
export function leanAdd(a: tf.Tensor, b: tf.Tensor): tf.Tensor {
  tf.backend_util.assertAndGetBroadcastShape(a.shape, b.shape);
  return addOp(a, b);
}

/**
 * tf.concat whose gradient saves nothing (tfjs' Concat gradient keeps every input alive to read its
 * size along `axis`). All inputs float32 of equal rank.
 */
export function leanConcat(xs: tf.Tensor[], axis: number): tf.Tensor {
  if (xs.length === 0) throw new Error('leanConcat: needs at least one tensor');
  const ax = axis < 0 ? axis + xs[0]!.rank : axis;
  const sizes = xs.map((x) => x.shape[ax]!);
  return customOp((inputs) => ({
    value: tf.concat(inputs, ax),
    gradFunc: (dy: tf.Tensor) =>
      sizes.map((n, i) => () => {
        const begin = dy.shape.map(() => 0);
        begin[ax] = sizes.slice(0, i).reduce((s, v) => s + v, 0);
        const size = dy.shape.slice();
        size[ax] = n;
        return tf.slice(dy, begin, size);
      }),
  }))(...xs);
}

/** `t` summed over the axes it was broadcast along, to `shape` (keepDims where the ranks match: no reshape). */
function sumTo(t: tf.Tensor, shape: number[]): tf.Tensor {
  const axes = tf.backend_util.getReductionAxes(shape, t.shape);
  if (!axes.length) return t;
  return shape.length === t.rank ? tf.sum(t, axes, true) : tf.reshape(tf.sum(t, axes), shape);
}

const modulateOp = customOp(([x, scale, shift], save) => {
  const s1 = tf.add(scale!, 1);
  save([x!, s1]);
  const [sx, ss, sh] = [x!.shape, scale!.shape, shift!.shape];
  return {
    value: mulAdd(x!, s1, shift!) ?? tf.add(tf.mul(x!, s1), shift!),
    gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => [
      () => sumTo(tf.mul(dy, saved[1]!), sx),
      () => sumTo(tf.mul(dy, saved[0]!), ss),
      () => sumTo(dy, sh),
    ],
  };
});

/**
 * AdaLN modulation `x·(1 + scale) + shift` (DiT / CogVideoX: scale and shift `[B, 1, D]` broadcast over the
 * tokens of `x` `[B, N, D]`). The forward is the same three ops as `tf.add(tf.mul(x, tf.add(scale, 1)), shift)`,
 * so the same values; the gradient is written out (one product and one sum per input, no casts or
 * reshapes: tfjs' Multiply and Add gradients cost 9 kernels here, this 4), the same values as autodiff's.
 * On tfjs-node with binding patch 33 the forward's product and sum run as one native pass (`mulAdd`, the
 * same float32 operations in the same order: the same bits) when `VREPA_TF_MUL_ADD=1` (opt-in: no
 * measurable gain in the toy step so far).
 */
export function modulate(x: tf.Tensor, scale: tf.Tensor, shift: tf.Tensor): tf.Tensor {
  tf.backend_util.assertAndGetBroadcastShape(x.shape, scale.shape);
  tf.backend_util.assertAndGetBroadcastShape(x.shape, shift.shape);
  return modulateOp(x, scale, shift);
}

const gatedResidualOp = customOp(([h, gate, a], save) => {
  save([gate!, a!]);
  const [sh, sg, sa] = [h!.shape, gate!.shape, a!.shape];
  return {
    value: mulAdd(gate!, a!, h!) ?? tf.add(h!, tf.mul(gate!, a!)),
    gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => [
      () => sumTo(dy, sh),
      () => sumTo(tf.mul(dy, saved[1]!), sg),
      () => sumTo(tf.mul(dy, saved[0]!), sa),
    ],
  };
});

/**
 * A gated residual `h + gate·a` (AdaLN-zero: gate `[B, 1, D]`). Same forward ops as
 * `tf.add(h, tf.mul(gate, a))`, so the same values; the written-out gradient has 3 kernels where autodiff's
 * has 6, with the same values. On tfjs-node with binding patch 33 the forward is one native pass (`mulAdd`,
 * bit-identical) when `VREPA_TF_MUL_ADD=1` (opt-in).
 */
export function gatedResidual(h: tf.Tensor, gate: tf.Tensor, a: tf.Tensor): tf.Tensor {
  tf.backend_util.assertAndGetBroadcastShape(h.shape, tf.backend_util.assertAndGetBroadcastShape(gate.shape, a.shape));
  return gatedResidualOp(h, gate, a);
}

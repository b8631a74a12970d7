/**
 * The VideoREPA projector: Linear(in → hidden) · SiLU · Linear(hidden → hidden) · SiLU · Linear(hidden → out),
 * built from core's Module / Linear, so its state dict has the official names `projectors.0.{0,2,4}.{weight,bias}`
 * (PyTorch layouts on load / save; Linear weights stored `[in, out]` for flag-free matmuls).
 */
import * as tf from '@tensorflow/tfjs';
import { Activation, Linear, Module, ModuleList, Sequential, type InitOptions, type StateDictSource } from '@vrepa/core';

export interface ProjectorConfig {
  /** Input feature dim (the transformer's inner dim: 1920 for CogVideoX-2B). */
  inDim: number;
  /** Hidden width (official 2048). */
  hiddenDim?: number;
  /** Output dim = the teacher's feature dim (768 for VideoMAEv2-B). */
  outDim?: number;
}

function resolve(c: ProjectorConfig): Required<ProjectorConfig> {
  const r = { inDim: c.inDim, hiddenDim: c.hiddenDim ?? 2048, outDim: c.outDim ?? 768 };
  for (const k of ['inDim', 'hiddenDim', 'outDim'] as const) {
    if (!Number.isInteger(r[k]) || r[k] < 1) throw new Error(`Projector: ${k} must be a positive integer, got ${String(r[k])}`);
  }
  return r;
}

/** `projectors` = ModuleList([Sequential(Linear, SiLU, Linear, SiLU, Linear)]), as in the official transformer. */
export class Projector extends Module {
  readonly config: Required<ProjectorConfig>;
  readonly projectors: ModuleList<Sequential>;

  /** Fresh parameters with PyTorch's default Linear init (`init.rng` to seed them; `init: 'zeros'` before a load). */
  constructor(config: ProjectorConfig, init: InitOptions = {}) {
    super();
    const c = resolve(config);
    this.config = c;
    const mlp = new Sequential([
      new Linear(c.inDim, c.hiddenDim, init),
      new Activation('silu'),
      new Linear(c.hiddenDim, c.hiddenDim, init),
      new Activation('silu'),
      new Linear(c.hiddenDim, c.outDim, init),
    ]);
    this.projectors = this.module('projectors', new ModuleList([mlp]));
  }

  /** Parameters from a state dict with the official names (other keys are ignored; missing or mis-shaped ones throw). */
  static fromStateDict(src: StateDictSource, config: ProjectorConfig): Projector {
    const p = new Projector(config, { init: 'zeros' });
    try {
      const rep = p.loadStateDict(src, { strict: false });
      if (rep.missing.length) throw new Error(`Projector: state dict is missing ${rep.missing.join(', ')}`);
    } catch (e) {
      p.dispose();
      throw e;
    }
    return p;
  }

  /**
   * `[..., inDim]` → `[..., outDim]` (e.g. `[B, F·H·W, 1920]` → `[B, F·H·W, 768]`).
   *
   * One fused op with a hand-written gradient: the forward keeps only the two pre-activations for the
   * backward, and the backward recomputes the SiLUs and frees each layer's temporaries as it goes.
   * (TF.js autodiff keeps every intermediate of the backward alive until it ends: ~5 GB for the
   * paper's 17550 tokens, more than the wasm heap; this form needs about a fifth of that.)
   * `fused: false` runs the plain Sequential (autodiff) instead.
   */
  forward(x: tf.Tensor, opts: { fused?: boolean } = {}): tf.Tensor {
    const d = x.shape[x.rank - 1];
    if (d !== this.config.inDim) throw new Error(`Projector: input has ${d} features (shape [${x.shape.join(', ')}]), expected inDim ${this.config.inDim}`);
    if (opts.fused === false) return this.projectors.at(0).forward(x);
    const seq = this.projectors.at(0);
    const [l0, l2, l4] = [0, 2, 4].map((i) => seq.at(i) as Linear);
    const lead = x.shape.slice(0, -1);
    return tf.tidy(() => {
      const y = fusedMlp(tf.reshape(x, [-1, d]) as tf.Tensor2D, l0!, l2!, l4!);
      return tf.reshape(y, [...lead, this.config.outDim]);
    });
  }

  /** Alias of `forward`. */
  apply(x: tf.Tensor, opts: { fused?: boolean } = {}): tf.Tensor {
    return this.forward(x, opts);
  }
}

const silu = (z: tf.Tensor) => tf.mul(z, tf.sigmoid(z));
/** d silu / dz = σ(z)·(1 + z·(1 − σ(z))) */
const dsilu = (z: tf.Tensor) =>
  tf.tidy(() => {
    const sg = tf.sigmoid(z);
    return tf.mul(sg, tf.add(1, tf.mul(z, tf.sub(1, sg))));
  });

/** Linear·SiLU·Linear·SiLU·Linear on `[N, in]` with stored `[in, out]` weights, as one custom-gradient op. */
function fusedMlp(x: tf.Tensor2D, l0: Linear, l2: Linear, l4: Linear): tf.Tensor2D {
  const ws = [l0.weight.value, l2.weight.value, l4.weight.value];
  const bs = [l0.bias, l2.bias, l4.bias].map((b, i) => b?.value ?? tf.zeros([ws[i]!.shape[1]!]));
  const op = tf.customGrad((...args: Array<tf.Tensor | tf.GradSaveFunc>) => {
    const [xi, w0, b0, w2, b2, w4, b4] = args as tf.Tensor2D[];
    const save = args[7] as tf.GradSaveFunc;
    const { z1, z2, y } = tf.tidy(() => {
      const z1 = tf.add(tf.matMul(xi!, w0!), b0!) as tf.Tensor2D;
      const z2 = tf.add(tf.matMul(silu(z1) as tf.Tensor2D, w2!), b2!) as tf.Tensor2D;
      const y = tf.add(tf.matMul(silu(z2) as tf.Tensor2D, w4!), b4!) as tf.Tensor2D;
      return { z1, z2, y };
    });
    save([xi!, z1, z2, w0!, w2!, w4!]);
    const gradFunc = (dy: tf.Tensor, saved: tf.Tensor[]) => {
      const [xs, z1s, z2s, w0s, w2s, w4s] = saved as tf.Tensor2D[];
      const dy2 = dy as tf.Tensor2D;
      const [dW4, db4, dz2] = tf.tidy(() => {
        const a2 = silu(z2s!) as tf.Tensor2D;
        const dW = tf.matMul(a2, dy2, true, false);
        a2.dispose();
        const da2 = tf.matMul(dy2, w4s!, false, true);
        return [dW, tf.sum(dy2, 0), tf.mul(da2, dsilu(z2s!))];
      });
      const [dW2, db2, dz1] = tf.tidy(() => {
        const a1 = silu(z1s!) as tf.Tensor2D;
        const dW = tf.matMul(a1, dz2 as tf.Tensor2D, true, false);
        a1.dispose();
        const da1 = tf.matMul(dz2 as tf.Tensor2D, w2s!, false, true);
        return [dW, tf.sum(dz2!, 0), tf.mul(da1, dsilu(z1s!))];
      });
      dz2!.dispose();
      const dW0 = tf.matMul(xs!, dz1 as tf.Tensor2D, true, false);
      const db0 = tf.sum(dz1!, 0);
      const dx = tf.matMul(dz1 as tf.Tensor2D, w0s!, false, true);
      dz1!.dispose();
      return [dx, dW0, db0, dW2!, db2!, dW4!, db4!];
    };
    return { value: y, gradFunc };
  });
  return op(x, ws[0]!, bs[0]!, ws[1]!, bs[1]!, ws[2]!, bs[2]!) as tf.Tensor2D;
}

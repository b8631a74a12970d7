/**
 * The VideoREPA projector: Linear(in → hidden) · SiLU · Linear(hidden → hidden) · SiLU · Linear(hidden → out),
 * parameters named as in the official state dict: `projectors.0.{0,2,4}.{weight,bias}` (weights [out, in]).
 */
import * as tf from '@tensorflow/tfjs';
import { linear, silu } from './linear.js';
import { type StateDictSource, uniformInit, variableName, variablesFrom } from './params.js';

export interface ProjectorConfig {
  /** Input feature dim (the transformer's inner dim: 1920 for CogVideoX-2B). */
  inDim: number;
  /** Hidden width (official 2048). */
  hiddenDim?: number;
  /** Output dim = the teacher's feature dim (768 for VideoMAEv2-B). */
  outDim?: number;
  /** State-dict prefix (official `projectors.0`). */
  prefix?: string;
}

function resolve(c: ProjectorConfig): Required<ProjectorConfig> {
  const r = { inDim: c.inDim, hiddenDim: c.hiddenDim ?? 2048, outDim: c.outDim ?? 768, prefix: c.prefix ?? 'projectors.0' };
  for (const k of ['inDim', 'hiddenDim', 'outDim'] as const) {
    if (!Number.isInteger(r[k]) || r[k] < 1) throw new Error(`Projector: ${k} must be a positive integer, got ${String(r[k])}`);
  }
  return r;
}

export class Projector {
  readonly config: Required<ProjectorConfig>;
  private readonly vars: Record<string, tf.Variable>;

  private constructor(config: Required<ProjectorConfig>, vars: Record<string, tf.Variable>) {
    this.config = config;
    this.vars = vars;
  }

  /** Expected state-dict entries: name → shape. */
  static shapes(config: ProjectorConfig): Record<string, number[]> {
    const c = resolve(config);
    const p = c.prefix;
    return {
      [`${p}.0.weight`]: [c.hiddenDim, c.inDim],
      [`${p}.0.bias`]: [c.hiddenDim],
      [`${p}.2.weight`]: [c.hiddenDim, c.hiddenDim],
      [`${p}.2.bias`]: [c.hiddenDim],
      [`${p}.4.weight`]: [c.outDim, c.hiddenDim],
      [`${p}.4.bias`]: [c.outDim],
    };
  }

  /** Fresh parameters with PyTorch's default Linear init, seeded. */
  static create(config: ProjectorConfig, opts: { seed?: number } = {}): Projector {
    const c = resolve(config);
    const seed = opts.seed ?? 0;
    const vars: Record<string, tf.Variable> = {};
    let i = 0;
    for (const [name, shape] of Object.entries(Projector.shapes(c))) {
      const fanIn = name.endsWith('.0.weight') || name.endsWith('.0.bias') ? c.inDim : c.hiddenDim;
      const init = uniformInit(shape, fanIn, seed * 7919 + i++);
      vars[name] = tf.variable(init, true, variableName(name));
      init.dispose();
    }
    return new Projector(c, vars);
  }

  /** Parameters from a state dict with the official names (extra keys are ignored; missing ones throw). */
  static fromStateDict(src: StateDictSource, config: ProjectorConfig): Projector {
    const c = resolve(config);
    return new Projector(c, tf.tidy(() => variablesFrom(src, Projector.shapes(c), 'Projector')));
  }

  /** State-dict name → trainable variable. */
  parameters(): Record<string, tf.Variable> {
    return { ...this.vars };
  }

  /** `[..., inDim]` → `[..., outDim]` (e.g. `[B, F·H·W, 1920]` → `[B, F·H·W, 768]`). */
  apply(x: tf.Tensor): tf.Tensor {
    const c = this.config;
    const d = x.shape[x.rank - 1];
    if (d !== c.inDim) throw new Error(`Projector: input has ${d} features (shape [${x.shape.join(', ')}]), expected inDim ${c.inDim}`);
    const v = this.vars;
    const p = c.prefix;
    return tf.tidy(() => {
      let h = silu(linear(x, v[`${p}.0.weight`] as tf.Tensor2D, v[`${p}.0.bias`] as tf.Tensor1D));
      h = silu(linear(h, v[`${p}.2.weight`] as tf.Tensor2D, v[`${p}.2.bias`] as tf.Tensor1D));
      return linear(h, v[`${p}.4.weight`] as tf.Tensor2D, v[`${p}.4.bias`] as tf.Tensor1D);
    });
  }

  dispose(): void {
    Object.values(this.vars).forEach((v) => v.dispose());
  }
}

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

  /** `[..., inDim]` → `[..., outDim]` (e.g. `[B, F·H·W, 1920]` → `[B, F·H·W, 768]`). */
  forward(x: tf.Tensor): tf.Tensor {
    const d = x.shape[x.rank - 1];
    if (d !== this.config.inDim) throw new Error(`Projector: input has ${d} features (shape [${x.shape.join(', ')}]), expected inDim ${this.config.inDim}`);
    return this.projectors.at(0).forward(x);
  }

  /** Alias of `forward`. */
  apply(x: tf.Tensor): tf.Tensor {
    return this.forward(x);
  }
}

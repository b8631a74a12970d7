/** Parameter initialisation shared by the nn blocks (PyTorch's defaults, drawn from a seeded Rng). */
import * as tf from '@tensorflow/tfjs';
import { Rng } from '../rng.js';

/**
 * How a block fills its parameters when created:
 * - 'torch' (default): PyTorch's default init (Linear/Conv: U(−1/√fan_in, 1/√fan_in) for weight and
 *   bias; norms: weight 1, bias 0), drawn from `rng` (or the shared init generator).
 * - 'zeros': weights and biases 0 (norm weights still 1) — cheap, for models whose weights are loaded.
 */
export type InitKind = 'torch' | 'zeros';

export interface InitOptions {
  init?: InitKind;
  rng?: Rng;
}

let initRng = Rng.fromSeed(0);

/** The generator blocks draw their initial weights from when no `rng` is passed (seed 0 at start). */
export function getInitRng(): Rng {
  return initRng;
}

/** Replace the shared init generator (e.g. `setInitRng(Rng.fromSeed(cfg.seed))` before building a model). */
export function setInitRng(rng: Rng): void {
  initRng = rng;
}

/** U(−bound, bound) of the given shape, or zeros under init 'zeros'. */
export function uniformInit(shape: number[], bound: number, opts: InitOptions = {}): tf.Tensor {
  if ((opts.init ?? 'torch') === 'zeros') return tf.zeros(shape);
  return (opts.rng ?? initRng).randomTensor(shape, 'uniform', { low: -bound, high: bound });
}

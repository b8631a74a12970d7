/**
 * (Node only: core's graph functions run on the native backend.) The pre-training step as one TensorFlow
 * graph: `compilePretrainStep` traces `pretrainStepFunction` with core's `compileFunction`.
 */
import type * as tf from '@tensorflow/tfjs';
import { compileFunction, graphFunctionsAvailable, type CompiledFunction } from '@vrepa/core';
import type { PretrainMasks } from './masking.js';
import { pretrainLossTensors, pretrainStepFunction, type LossAndGrads, type TargetOptions } from './pretrain-loss.js';
import { disposeMaskTensors, type PretrainForwardOptions, type VideoMAEPretrain } from './videomae-pretrain.js';

/** `pretrainLossAndGrads` compiled into one TensorFlow graph (see `compilePretrainStep`). */
export interface PretrainStep {
  /** the loss and gradients of every trainable parameter on a batch and its masks (everything returned is the caller's) */
  (clip: tf.Tensor, masks: PretrainMasks): LossAndGrads;
  /**
   * How the next call runs: 'trace' (the first two calls: eagerly while recorded, their results from their own
   * graph), 'graph' (one graph run), or 'eager' where graph functions are not available (another backend, an
   * unpatched binding, VREPA_TF_GRAPH=0) or the traces differed (`reason`).
   */
  mode(): 'trace' | 'graph' | 'eager';
  /** why it runs eagerly, when the traces differed */
  readonly reason: string | undefined;
  /** frees the graphs (the model stays the caller's) */
  dispose(): void;
}

/**
 * The pre-training step (`pretrainLossAndGrads` without `keepOutputs`) as one TensorFlow graph, through core's
 * `compileFunction`: the masks' tensors (gather indices, loss weights) are made before each call
 * (`pretrainLossTensors`, with every mask check) and passed in with the clip, the position tables and the
 * trainable variables, so calls trace identically; after two equal traces every call is one graph run — the
 * eager ops' kernels, so the eager bits with oneDNN off (with oneDNN on, TensorFlow gives the graph other
 * oneDNN kernels: rounding differences of ~1e-7 relative). Token counts are fixed by the mask options, so a run
 * keeps one graph per batch shape (compileFunction keeps up to 4). Where graph functions are not available it
 * runs the eager step (the same function).
 */
export function compilePretrainStep(model: VideoMAEPretrain, opts: TargetOptions & PretrainForwardOptions & { onFallback?: (reason: string) => void } = {}): PretrainStep {
  const { onFallback, ...stepOpts } = opts;
  const step = pretrainStepFunction(model, stepOpts);
  let fn: CompiledFunction | null = null;
  const call = ((clip: tf.Tensor, masks: PretrainMasks) => {
    const t = pretrainLossTensors(model, clip, masks);
    try {
      const inputs = step.inputs(clip, t);
      fn ??= compileFunction((xs) => step.fn(xs), { onFallback });
      return step.collect(fn(inputs), inputs);
    } finally {
      disposeMaskTensors(t);
    }
  }) as PretrainStep;
  call.mode = () => (fn ? fn.mode() : graphFunctionsAvailable() ? 'trace' : 'eager');
  Object.defineProperty(call, 'reason', { get: () => fn?.reason });
  call.dispose = () => fn?.dispose();
  return call;
}

/**
 * The transformer's inference forward as one TensorFlow graph (core's `compileFunction`, binding patch 34).
 *
 * An evaluation loop (probe features, held-out losses, a sampler's steps) runs the same forward many times on
 * inputs of a few shapes with weights that do not change. `compiledForward(model, opts)` traces
 * `model.forward(latents, text, { timeProjection }, opts)` per input signature (shapes, dtypes) until two
 * traces are identical, then runs every later call as one graph op — without the per-op JavaScript, which is
 * most of a small model's forward time. What it holds:
 *
 * - The weights (and the model's cached position / rotary tables) are read by id ("captured"): they must not
 *   change or be disposed while the compiled forward is used. Dispose it when done (it removes its graphs).
 * - The timesteps come in as their time projection (`model.timeProjection(timesteps)`, made by the caller
 *   outside the graph), so no per-call value is frozen into the graph.
 * - The options that change the graph (alignLayer, projectAligned, rotary mode) are fixed per instance.
 *   No dropout (inference only), no returnBlocks / returnEmbeddings.
 *
 * Values: with oneDNN off a graph run gives the eager forward's bits; with oneDNN on (TensorFlow's default)
 * TensorFlow rewrites the graph's ops to other oneDNN kernels, so outputs differ from the eager forward's in
 * rounding (~1e-7 relative per op). Where graph functions are not available (wasm, an unpatched binding,
 * `VREPA_TF_GRAPH=0` or `VREPA_TF_FAST_EXEC=0`, read per call) it calls `model.forward` — the eager values.
 */
import * as tf from '@tensorflow/tfjs';
import { compileFunction, graphFunctionsAvailable, type CompiledFunction } from '@vrepa/core';
import type { CogVideoXTransformer3DModel, RotaryMode, TransformerOutput } from './model.js';

export interface CompiledForwardOptions {
  /** 1-based block whose vision tokens are returned (forward's alignLayer; default the model's align config, or 0) */
  alignLayer?: number;
  /** apply the projector to them (default true), as forward */
  projectAligned?: boolean;
  /** 5B style: which rotary tables (default 'pipeline'), as forward */
  rotary?: RotaryMode;
  /** input signatures kept as graphs; a further one runs eagerly (default 8) */
  maxSignatures?: number;
  /** called once, with the reason, if the forward cannot be a graph and stays eager */
  onFallback?: (reason: string) => void;
}

/** `model.forward` with fixed options, traced into graphs per input signature: see compiledForward. */
export interface CompiledForward {
  /**
   * The forward of `latents` `[B, F, h, w, C]`, `text` `[B, L, text_embed_dim]` and `timeProjection`
   * `[B, inner_dim]` (`model.timeProjection(timesteps)`): `{ sample, alignHidden?, aligned? }` as forward
   * gives them, new tensors the caller disposes (tracked by an enclosing tf.tidy).
   */
  (latents: tf.Tensor, text: tf.Tensor, timeProjection: tf.Tensor): TransformerOutput;
  /** the model it runs and the forward options fixed in it (alignLayer resolved) */
  readonly model: CogVideoXTransformer3DModel;
  readonly options: { readonly alignLayer: number; readonly projectAligned: boolean; readonly rotary: RotaryMode };
  /** how the next call on these inputs (any, when omitted) runs: 'off' (graph functions not available here: plain forward), 'trace', 'graph', or 'eager' (fell back: see reason) */
  mode(inputs?: [tf.Tensor, tf.Tensor, tf.Tensor]): 'off' | 'trace' | 'graph' | 'eager';
  /** why it fell back to eager, when it did */
  readonly reason: string | undefined;
  /** remove the graphs (later calls trace again); the model is not touched */
  dispose(): void;
}

/**
 * Compile `model`'s inference forward (see the module comment). The returned function gives what
 * `model.forward(latents, text, { timeProjection }, { alignLayer, projectAligned, rotary })` gives, in
 * structure; in values the same bits with oneDNN off and the same within float32 rounding with oneDNN on.
 */
export function compiledForward(model: CogVideoXTransformer3DModel, opts: CompiledForwardOptions = {}): CompiledForward {
  const c = model.config;
  const alignLayer = opts.alignLayer ?? (model.projector && model.alignConfig ? model.alignConfig.align_layer : 0);
  const projectAligned = opts.projectAligned ?? true;
  const rotary = opts.rotary ?? 'pipeline';
  if (!Number.isInteger(alignLayer) || alignLayer < 0 || alignLayer > c.num_layers) {
    throw new Error(`compiledForward: alignLayer ${alignLayer} is out of range (1-based block index 1..${c.num_layers}, or 0 for none)`);
  }
  if (alignLayer > 0 && projectAligned && !model.projector) {
    throw new Error(`compiledForward: alignLayer ${alignLayer} asked, but the model has no projector (load a VideoREPA checkpoint or call createAlignParts)`);
  }
  const forwardOpts = { alignLayer, projectAligned, rotary };
  const plain = (latents: tf.Tensor, text: tf.Tensor, timeProjection: tf.Tensor) => model.forward(latents, text, { timeProjection }, forwardOpts);
  // outputs in a fixed order: sample, then alignHidden and aligned when the options ask for them
  const fn = (xs: tf.Tensor[]): tf.Tensor[] => {
    const o = plain(xs[0]!, xs[1]!, xs[2]!);
    return [o.sample, ...(alignLayer > 0 ? [o.alignHidden!] : []), ...(alignLayer > 0 && projectAligned ? [o.aligned!] : [])];
  };
  let compiled: CompiledFunction | null = null;
  const checked = new Set<string>();
  const call = ((latents: tf.Tensor, text: tf.Tensor, timeProjection: tf.Tensor): TransformerOutput => {
    if (!graphFunctionsAvailable()) return plain(latents, text, timeProjection);
    const key = `${latents.shape.join(',')}|${text.shape.join(',')}|${timeProjection.shape.join(',')}`;
    if (!checked.has(key)) {
      // a bad input raises forward's named error here rather than inside a trace (which would fall back to eager for good)
      model.checkInputs(latents, text, { timeProjection });
      // the tables a forward on these shapes reads, made before the first trace: it captures them instead of
      // freezing them as constants, so the first two traces already match
      model.prepareTables(latents.shape, text.shape[1]!, rotary);
      // weights still held in JS (as loaded or initialised: the tensorflow backend uploads a tensor on its first
      // use) would be frozen as constants by the first trace and captured by the next: upload them now (a
      // reshape of each), so that the first two traces match here too
      tf.tidy(() => {
        for (const v of model.parameters()) tf.reshape(v, [-1]);
      });
      checked.add(key);
    }
    compiled ??= compileFunction(fn, { maxSignatures: opts.maxSignatures ?? 8, onFallback: opts.onFallback });
    const outs = compiled([latents, text, timeProjection]);
    const r: TransformerOutput = { sample: outs[0]! };
    if (alignLayer > 0) r.alignHidden = outs[1]!;
    if (alignLayer > 0 && projectAligned) r.aligned = outs[2]!;
    return r;
  }) as CompiledForward;
  Object.defineProperty(call, 'model', { value: model });
  Object.defineProperty(call, 'options', { value: Object.freeze({ ...forwardOpts }) });
  call.mode = (inputs) => {
    if (!graphFunctionsAvailable()) return 'off';
    if (!compiled) return 'trace';
    return compiled.mode(inputs);
  };
  Object.defineProperty(call, 'reason', { get: () => compiled?.reason });
  call.dispose = () => {
    compiled?.dispose();
    compiled = null;
  };
  return call;
}

/**
 * Targets, loss and reconstruction of VideoMAE / VideoMAEv2 pre-training (official
 * `engine_for_pretraining.py :: train_one_epoch` and the MAE figure's un-normalisation).
 *
 * Target: the clip un-normalised (`x · std + mean`, ImageNet), cut into tubelets `[B, N, t·p², C]`
 * (pixels `(p0 p1 p2)` major, channel minor); with `normalizeTarget` (official `normlize_target`, on
 * by default) each token's channel is normalised over its t·p² pixels: `(x − mean) / (std_unbiased + 1e-6)`.
 * Labels are the targets of the tokens the decoder predicts (`decoderMask = 0`), in token order.
 * Loss: per-token mean over the last axis of (output − label)², averaged over the predicted tokens that
 * the ENCODER masked (`cal_loss_mask`; without decoder masking these are all predicted tokens).
 */
import * as tf from '@tensorflow/tfjs';
import { IMAGENET_MEAN, IMAGENET_STD } from '@vrepa/align-dims';
import { maskIndices, type PretrainMasks } from './masking.js';
import { disposeMaskTensors, gatherTokens, type PretrainForwardOptions, type PretrainMaskTensors, type VideoMAEPretrain } from './videomae-pretrain.js';
import type { TeacherGrid } from './vit.js';

export interface TargetOptions {
  /** official `normlize_target` (default true): per token and channel (x − mean) / (unbiased std + 1e-6) */
  normalizeTarget?: boolean;
  /** the clip's normalisation to undo; default ImageNet mean */
  mean?: readonly number[];
  /** default ImageNet std */
  std?: readonly number[];
}

function gridOfClip(shape: readonly number[], tubelet: number, patch: number, what: string): TeacherGrid {
  if (shape.length !== 5) throw new Error(`${what}: expected [batch, frames, height, width, channels], got [${shape.join(', ')}]`);
  const [, f, h, w] = shape as number[];
  if (f! % tubelet || f! < tubelet) throw new Error(`${what}: tubelet size ${tubelet} does not divide ${f} frames`);
  if (h! % patch || w! % patch || h! < patch || w! < patch) throw new Error(`${what}: patch size ${patch} does not divide the frame size ${h}×${w}`);
  return { frames: f! / tubelet, height: h! / patch, width: w! / patch };
}

/** `[B, F, H, W, C]` → `[B, N, t·p², C]` tubelets in token order (frame-major), pixels (p0 p1 p2) within each. */
export function patchifyClip(x: tf.Tensor, tubelet: number, patch: number): tf.Tensor4D {
  const g = gridOfClip(x.shape, tubelet, patch, 'patchifyClip');
  const [b, , , , c] = x.shape as number[];
  return tf.tidy(() => {
    const y = tf.reshape(x, [b!, g.frames, tubelet, g.height, patch, g.width, patch, c!]);
    // [B, T', t, H', p, W', p, C] → [B, T', H', W', t, p, p, C]
    const z = tf.transpose(y, [0, 1, 3, 5, 2, 4, 6, 7]);
    return tf.reshape(z, [b!, g.frames * g.height * g.width, tubelet * patch * patch, c!]) as tf.Tensor4D;
  });
}

/** Inverse of `patchifyClip` with the channel folded: `[B, N, t·p²·C]` on `grid` → `[B, grid.frames·t, grid.height·p, grid.width·p, C]`. */
export function unpatchify(tokens: tf.Tensor, grid: TeacherGrid, tubelet: number, patch: number, channels = 3): tf.Tensor5D {
  const [b, n, pd] = tokens.shape as number[];
  if (tokens.rank !== 3 || n !== grid.frames * grid.height * grid.width || pd !== tubelet * patch * patch * channels)
    throw new Error(`unpatchify: expected [batch, ${grid.frames * grid.height * grid.width}, ${tubelet * patch * patch * channels}] for grid ${grid.frames}×${grid.height}×${grid.width}, got [${tokens.shape.join(', ')}]`);
  return tf.tidy(() => {
    const y = tf.reshape(tokens, [b!, grid.frames, grid.height, grid.width, tubelet, patch, patch, channels]);
    const z = tf.transpose(y, [0, 1, 4, 2, 5, 3, 6, 7]);
    return tf.reshape(z, [b!, grid.frames * tubelet, grid.height * patch, grid.width * patch, channels]) as tf.Tensor5D;
  });
}

/** `x · std + mean` per channel (last axis): the clip's pixels in [0, 1]. */
export function unnormalizeClip(clip: tf.Tensor, opts: Pick<TargetOptions, 'mean' | 'std'> = {}): tf.Tensor {
  const c = clip.shape[clip.rank - 1]!;
  const mean = opts.mean ?? IMAGENET_MEAN;
  const std = opts.std ?? IMAGENET_STD;
  if (mean.length !== c || std.length !== c) throw new Error(`unnormalizeClip: mean/std have ${mean.length}/${std.length} entries for ${c} channels`);
  return tf.tidy(() => tf.add(tf.mul(clip, tf.tensor1d([...std])), tf.tensor1d([...mean])));
}

/** Per token & channel mean and unbiased std over the t·p² pixels of `[B, N, P, C]` patches → `[B, N, 1, C]` each. */
export function patchMoments(patches: tf.Tensor): { mean: tf.Tensor; std: tf.Tensor } {
  const p = patches.shape[2]!;
  if (p < 2) throw new Error(`patchMoments: the unbiased std needs ≥ 2 pixels per tubelet, got ${p}`);
  return tf.tidy(() => {
    const mean = tf.mean(patches, 2, true);
    const std = tf.sqrt(tf.div(tf.sum(tf.square(tf.sub(patches, mean)), 2, true), p - 1));
    return { mean, std };
  });
}

/**
 * Every token's target `[B, N, t·p²·C]` from an ImageNet-normalised clip `[B, F, H, W, C]` (official
 * `images_patch`): un-normalise, cut into tubelets, and (`normalizeTarget`, default) normalise per token
 * and channel.
 */
export function pretrainTargets(clip: tf.Tensor, tubelet: number, patch: number, opts: TargetOptions = {}): tf.Tensor3D {
  return tf.tidy(() => {
    const patches = patchifyClip(unnormalizeClip(clip, opts), tubelet, patch); // [B, N, P, C]
    const [b, n, p, c] = patches.shape;
    let t: tf.Tensor = patches;
    if (opts.normalizeTarget ?? true) {
      const { mean, std } = patchMoments(patches);
      t = tf.div(tf.sub(patches, mean), tf.add(std, 1e-6));
    }
    return tf.reshape(t, [b, n, p * c]) as tf.Tensor3D;
  });
}

/** Loss weights `[B·N_pred]` (1 where the encoder masked the predicted token) and their count, from the host masks. */
function labelWeights(masks: PretrainMasks, predicted: number[][], n: number): { w: Float32Array; counted: number } {
  const w = new Float32Array(predicted.length * predicted[0]!.length);
  let counted = 0;
  predicted.forEach((idx, s) =>
    idx.forEach((i, j) => {
      const m = masks.encoderMask[s * n + i] ? 1 : 0;
      w[s * idx.length + j] = m;
      counted += m;
    }),
  );
  return { w, counted };
}

/** The labels of the predicted tokens (`decoderMask = 0`) `[B, N_pred, P]` and the loss weights `[B, N_pred]` (1 where the encoder masked). */
export function pretrainLabels(targets: tf.Tensor3D, masks: PretrainMasks): { labels: tf.Tensor3D; weights: tf.Tensor2D; counted: number } {
  const [b, n, p] = targets.shape;
  const predicted = maskIndices(masks.decoderMask, b, n, 0, 'pretrainLabels: decoder mask');
  const { w, counted } = labelWeights(masks, predicted, n);
  return tf.tidy(() => ({ labels: gatherTokens(targets, predicted, p), weights: tf.tensor2d(w, [b, predicted[0]!.length]), counted }));
}

/**
 * Every tensor a pre-training step makes from its masks, made beforehand: the model's gather indices
 * (`VideoMAEPretrain.maskTensors`) and the loss weights `[B, N_pred]` (1 where the encoder masked the
 * predicted token; the same values `pretrainLabels` makes), plus `counted`, their sum as a JS number (no tensor
 * is made from it). Dispose with `disposeMaskTensors`.
 */
export interface PretrainLossTensors extends PretrainMaskTensors {
  /** float32 `[B, N_pred]` */
  lossWeights: tf.Tensor2D;
  counted: number;
}

/** The `PretrainLossTensors` of a batch's masks, after every check (the clip, the model's mask errors, then "nothing to count"). */
export function pretrainLossTensors(model: VideoMAEPretrain, clip: tf.Tensor, masks: PretrainMasks): PretrainLossTensors {
  model.checkClip(clip, `pretrainLoss: clip`);
  const mt = model.maskTensors(clip, masks);
  const { w, counted } = labelWeights(masks, mt.predicted, mt.tokens);
  if (counted === 0) {
    disposeMaskTensors(mt);
    throw new Error('pretrainLoss: no predicted token is masked for the encoder, so the loss has nothing to count');
  }
  return { ...mt, lossWeights: tf.tensor2d(w, [mt.batch, mt.predicted[0]!.length]), counted };
}

/** Masked MSE: per-token mean over the last axis of (outputs − labels)², weighted by `weights`, summed, divided by their sum. */
export function maskedMse(outputs: tf.Tensor, labels: tf.Tensor, weights: tf.Tensor): tf.Scalar {
  return tf.tidy(() => {
    const perToken = tf.mean(tf.square(tf.sub(outputs, labels)), -1);
    return tf.div(tf.sum(tf.mul(perToken, weights)), tf.sum(weights)) as tf.Scalar;
  });
}

export interface PretrainLossResult {
  /** the masked MSE */
  loss: tf.Scalar;
  /** `[B, N_pred, t·p²·C]` decoder predictions (token order) */
  outputs: tf.Tensor3D;
  /** `[B, N_pred, t·p²·C]` their targets */
  labels: tf.Tensor3D;
  /** `[B, N_vis, De]` encoder output of the visible tokens (after encoder.norm) */
  encoded: tf.Tensor3D;
}

/**
 * One pre-training loss evaluation (official train step without the optimizer): targets from the clip,
 * the model on the masks, masked MSE. Every returned tensor is the caller's (dispose them; inside
 * `tf.variableGrads` return only `loss`). Throws when no predicted token is encoder-masked.
 */
export function pretrainLoss(model: VideoMAEPretrain, clip: tf.Tensor, masks: PretrainMasks, opts: TargetOptions & PretrainForwardOptions = {}): PretrainLossResult {
  const t = pretrainLossTensors(model, clip, masks);
  try {
    return pretrainLossWith(model, clip, t, opts);
  } finally {
    disposeMaskTensors(t);
  }
}

/**
 * `pretrainLoss` on the masks' tensors made beforehand (`pretrainLossTensors`): only ops on tensors, no
 * tensor made from per-call JS values (what tracing it into a graph needs).
 */
export function pretrainLossWith(model: VideoMAEPretrain, clip: tf.Tensor, t: Pick<PretrainLossTensors, 'visibleIndex' | 'predictedIndex' | 'lossWeights'>, opts: TargetOptions & PretrainForwardOptions = {}): PretrainLossResult {
  model.checkClip(clip, `pretrainLoss: clip`);
  const { encoded, outputs } = model.forwardWith(clip, t, { encodeAllTokens: opts.encodeAllTokens });
  const targets = pretrainTargets(clip, model.config.tubeletSize, model.config.patchSize, opts);
  const labels = gatherTokens(targets, t.predictedIndex, targets.shape[2]);
  targets.dispose();
  const loss = maskedMse(outputs, labels, t.lossWeights);
  return { loss, outputs, labels, encoded };
}

export interface LossAndGrads {
  loss: tf.Scalar;
  /** gradient of every trainable parameter, by official name, in the STORED layout of its variable */
  grads: Map<string, tf.Tensor>;
  /** the decoder predictions, when `keepOutputs` was set */
  outputs?: tf.Tensor3D;
}

/**
 * The pre-training step as a function of tensors — what `pretrainLossAndGrads` runs eagerly and
 * `compilePretrainStep` (Node) traces into one graph: no tensor is made from per-step JS values inside `fn`.
 */
export interface PretrainStepFunction {
  /**
   * `fn`'s inputs for a batch: `[clip, visibleIndex, predictedIndex, lossWeights, encoder table, decoder table,
   * ...trainable variables]`. The model's position tables are read as they are; they are inputs so that a traced
   * step never freezes them (a table made from JS values and not used yet would be a constant of the first trace
   * and read by id in the next). Trainable variables are inputs because the optimizer changes them.
   */
  inputs(clip: tf.Tensor, t: Pick<PretrainLossTensors, 'visibleIndex' | 'predictedIndex' | 'lossWeights'>): tf.Tensor[];
  /** `inputs` → `[loss, (predictions with keepOutputs), ...the gradients present, in variable order]` */
  fn(xs: tf.Tensor[]): tf.Tensor[];
  /** `fn`'s outputs (of these `inputs`) as `LossAndGrads`, gradients under the official names */
  collect(outs: tf.Tensor[], inputs: tf.Tensor[]): LossAndGrads;
}

type StepOptions = TargetOptions & PretrainForwardOptions;
const FIXED_INPUTS = 6;

function trainable(model: VideoMAEPretrain) {
  const named = model.namedParameters().filter(([, p]) => p.trainable);
  if (!named.length) throw new Error('pretrainLossAndGrads: the model has no trainable parameters');
  return named;
}

/**
 * See `PretrainStepFunction`. The trainable parameters are read per call (`inputs`); `collect` maps `fn`'s
 * gradients to names by the layout of the last `fn` run with the same variables (a graph run runs no `fn`).
 */
export function pretrainStepFunction(model: VideoMAEPretrain, opts: StepOptions & { keepOutputs?: boolean } = {}): PretrainStepFunction {
  const keepOutputs = !!opts.keepOutputs;
  const layouts = new Map<string, string[]>();
  const key = (vars: tf.Tensor[]) => vars.map((v) => (v as tf.Variable).name).join(',');
  return {
    inputs(clip, t) {
      const named = trainable(model);
      const { encoder, decoder } = model.positionTables();
      return [clip, t.visibleIndex, t.predictedIndex, t.lossWeights, encoder, decoder, ...named.map(([, p]) => p.value)];
    },
    fn(xs) {
      const [clip, visibleIndex, predictedIndex, lossWeights] = xs as [tf.Tensor, tf.Tensor1D, tf.Tensor1D, tf.Tensor2D];
      const vars = xs.slice(FIXED_INPUTS) as tf.Variable[];
      let outputs: tf.Tensor | undefined;
      const { value, grads } = tf.variableGrads(() => {
        const r = pretrainLossWith(model, clip, { visibleIndex, predictedIndex, lossWeights }, opts);
        if (keepOutputs) outputs = tf.keep(tf.clone(r.outputs));
        return r.loss;
      }, vars);
      const names = vars.map((v) => v.name).filter((n) => grads[n]);
      layouts.set(key(vars), names);
      return [value, ...(outputs ? [outputs] : []), ...names.map((n) => grads[n]!)];
    },
    collect(outs, inputs) {
      const vars = inputs.slice(FIXED_INPUTS);
      const names = layouts.get(key(vars));
      if (!names) throw new Error('pretrainStepFunction: collect() before fn() ran on these variables');
      const official = new Map(model.namedParameters().map(([n, p]) => [p.value.name, n]));
      let k = 0;
      const loss = outs[k++] as tf.Scalar;
      const outputs = keepOutputs ? (outs[k++] as tf.Tensor3D) : undefined;
      const grads = new Map<string, tf.Tensor>();
      for (const n of names) grads.set(official.get(n)!, outs[k++]!);
      return { loss, grads, outputs };
    },
  };
}

/**
 * The loss and the gradients of every trainable parameter (tfjs autodiff through the whole model).
 * Everything returned is the caller's. `keepOutputs` also returns the predictions (for pictures).
 * Runs eagerly; `compilePretrainStep` (Node) runs the same function as one TensorFlow graph.
 */
export function pretrainLossAndGrads(model: VideoMAEPretrain, clip: tf.Tensor, masks: PretrainMasks, opts: StepOptions & { keepOutputs?: boolean } = {}): LossAndGrads {
  trainable(model);
  const step = pretrainStepFunction(model, opts);
  const t = pretrainLossTensors(model, clip, masks);
  try {
    const inputs = step.inputs(clip, t);
    return step.collect(step.fn(inputs), inputs);
  } finally {
    disposeMaskTensors(t);
  }
}

export interface ReconstructionFrames {
  /** `[B, F, H, W, C]` the clip in [0, 1] */
  original: tf.Tensor5D;
  /** the clip with encoder-masked tubelets grey (0.5) */
  masked: tf.Tensor5D;
  /** visible tubelets from the clip, masked ones from the prediction (un-normalised with each tubelet's own mean/std as the MAE figures do), clipped to [0, 1] */
  reconstructed: tf.Tensor5D;
}

/**
 * Pictures of a prediction (the MAE papers' figure: original / masked / reconstructed). `outputs` are the
 * predictions `[B, N_pred, P]` for `masks` (from `forward` or `pretrainLoss`); with normalised targets they
 * are un-normalised with the mean and unbiased std of each tubelet of the original clip. Encoder-masked
 * tokens that the decoder did not predict (running-cell masking) stay grey.
 */
export function reconstructionFrames(model: VideoMAEPretrain, clip: tf.Tensor, outputs: tf.Tensor, masks: PretrainMasks, opts: TargetOptions = {}): ReconstructionFrames {
  const b = model.checkClip(clip, 'reconstructionFrames: clip');
  const { tubeletSize: t, patchSize: p, inChans: c } = model.config;
  const n = model.numTokens;
  const predicted = maskIndices(masks.decoderMask, b, n, 0, 'reconstructionFrames: decoder mask');
  const np = predicted[0]!.length;
  const pd = t * p * p * c;
  if (outputs.rank !== 3 || outputs.shape[0] !== b || outputs.shape[1] !== np || outputs.shape[2] !== pd)
    throw new Error(`reconstructionFrames: outputs must be [${b}, ${np}, ${pd}] for these masks, got [${outputs.shape.join(', ')}]`);
  return tf.tidy(() => {
    const pixels = unnormalizeClip(clip, opts);
    const patches = patchifyClip(pixels, t, p); // [B, N, P, C]
    let pred: tf.Tensor = tf.reshape(outputs, [b, np, t * p * p, c]);
    if (opts.normalizeTarget ?? true) {
      const { mean, std } = patchMoments(patches);
      const flat = (x: tf.Tensor) => tf.reshape(x, [b, n, c]);
      const m = tf.reshape(gatherTokens(flat(mean), predicted, c), [b, np, 1, c]);
      const s = tf.reshape(gatherTokens(flat(std), predicted, c), [b, np, 1, c]);
      pred = tf.add(tf.mul(pred, tf.add(s, 1e-6)), m);
    }
    // scatter the predictions into a full token array; `have[b, i]` = 1 where token i was predicted
    const idx = new Int32Array(b * np);
    const have = new Float32Array(b * n);
    predicted.forEach((ix, s) => ix.forEach((i, j) => ((idx[s * np + j] = s * n + i), (have[s * n + i] = 1))));
    const scattered = tf.reshape(tf.scatterND(tf.tensor2d(idx, [b * np, 1], 'int32'), tf.reshape(pred, [b * np, pd]), [b * n, pd]), [b, n, pd]);
    const enc = tf.reshape(tf.tensor2d(Float32Array.from(masks.encoderMask), [b, n]), [b, n, 1]);
    const predMask = tf.reshape(tf.tensor2d(have, [b, n]), [b, n, 1]);
    const orig = tf.reshape(patches, [b, n, pd]);
    const grey = tf.fill([b, n, pd], 0.5);
    const visibleOrGrey = tf.add(tf.mul(orig, tf.sub(1, enc)), tf.mul(grey, enc));
    // masked & predicted → prediction; masked & not predicted → grey; visible → original
    const recon = tf.add(tf.mul(visibleOrGrey, tf.sub(1, tf.mul(enc, predMask))), tf.mul(scattered, tf.mul(enc, predMask)));
    const g = model.grid;
    return {
      original: tf.clipByValue(pixels, 0, 1) as tf.Tensor5D,
      masked: tf.clipByValue(unpatchify(visibleOrGrey, g, t, p, c), 0, 1) as tf.Tensor5D,
      reconstructed: tf.clipByValue(unpatchify(recon, g, t, p, c), 0, 1) as tf.Tensor5D,
    };
  });
}

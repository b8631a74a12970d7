/**
 * The study's measures, all on held-out clips: OCP probe accuracy of features (3-slice Physion protocol,
 * stratified k-fold, @vrepa/eval's probe), the diffusion loss at fixed timesteps and noise, TRD between the
 * student's align-layer tokens and the teacher's, and generated clips — continuations of held-out scenes from
 * their context frames (context latents replaced by their forward-noised copy at every step) and clips from
 * captions alone — scored by @vrepa/eval's trajectory metrics.
 *
 * The transformer forwards of the measures (probe features, held-out loss, every sampler step) take an
 * optional `CompiledForward` (@vrepa/cogvideox' compiledForward: the forward traced into one TensorFlow graph
 * per input shape, weights captured). An evaluation that runs many forwards makes one per model and passes
 * it (study.ts evaluateModel); without one they run `model.forward` eagerly, as before. With oneDNN off the
 * compiled forward gives the eager bits; with oneDNN on (TensorFlow's default) its values differ from the
 * eager ones in rounding (~1e-7 relative per op), so measures differ from an eager run's at that level.
 */
import * as tf from '@tensorflow/tfjs';
import { Rng } from '@vrepa/core';
import { GRID_MATCH_STRATEGIES, matchGrids, type TokenGrid } from '@vrepa/align-dims';
import { trdLoss } from '@vrepa/relations';
import { CogVideoXDDIMScheduler, COGVIDEOX_2B_SCHEDULER, diffusionWeights, type CogVideoXTransformer3DModel, type CompiledForward, type TransformerOutput } from '@vrepa/cogvideox';
import {
  crossValidateProbe,
  featureStats,
  gravityConsistency,
  gravityPxPerFrame2,
  physionFeatures,
  refineColour,
  standardizedGram,
  trackColours,
  trajectoryMetrics,
  type FeatureMatrix,
  type StatesFile,
  type TrajectoryMetrics,
} from '@vrepa/eval';
import { decodeLatents, tensorToPixels, type LatentSpace } from './latent.js';

// ───────────────────────────── forwards ─────────────────────────────

/**
 * The forward a measure runs at timesteps `ts` (JS numbers): through `compiled` when given — checked to be
 * `model`'s, compiled with these options; the time projection is made here, outside its graph — else
 * `model.forward` eagerly.
 */
function measureForward(model: CogVideoXTransformer3DModel, compiled: CompiledForward | undefined, want: { alignLayer: number; projectAligned: boolean }, what: string): (latents: tf.Tensor, text: tf.Tensor, ts: number[]) => TransformerOutput {
  if (!compiled) return (latents, text, ts) => model.forward(latents, text, ts, want);
  if (compiled.model !== model) throw new Error(`${what}: the compiled forward is another model's`);
  const o = compiled.options;
  if (o.alignLayer !== want.alignLayer || (want.alignLayer > 0 && o.projectAligned !== want.projectAligned)) {
    throw new Error(`${what}: needs a forward compiled with { alignLayer: ${want.alignLayer}${want.alignLayer > 0 ? `, projectAligned: ${want.projectAligned}` : ''} }, got { alignLayer: ${o.alignLayer}, projectAligned: ${o.projectAligned} }`);
  }
  return (latents, text, ts) => compiled(latents, text, model.timeProjection(ts));
}

// ───────────────────────────── features and probes ─────────────────────────────

/** Run `fn` over index batches and stack the resulting feature rows. */
export function featureRows(n: number, batch: number, fn: (start: number, count: number) => tf.Tensor2D): FeatureMatrix {
  let d = 0;
  let data = new Float32Array(0);
  for (let s = 0; s < n; s += batch) {
    const c = Math.min(batch, n - s);
    const f = fn(s, c);
    if (s === 0) {
      d = f.shape[1];
      data = new Float32Array(n * d);
    }
    data.set(f.dataSync(), s * d);
    f.dispose();
  }
  return { data, n, d };
}

/**
 * Align-layer tokens of the student `[B, N, D]` for latents at timestep `t` with seeded noise (the forward
 * VideoREPA's probe reads: noisy input, hidden state after block `layer`, vision tokens only). `compiled`:
 * `compiledForward(model, { alignLayer: layer, projectAligned: false })` to run the forward as a graph.
 */
export function studentAlignTokens(model: CogVideoXTransformer3DModel, latents: tf.Tensor, text: tf.Tensor, t: number, noiseSeed: number, layer: number, compiled?: CompiledForward): { tokens: tf.Tensor3D; grid: TokenGrid } {
  const schedule = new CogVideoXDDIMScheduler(COGVIDEOX_2B_SCHEDULER);
  const forward = measureForward(model, compiled, { alignLayer: layer, projectAligned: false }, 'studentAlignTokens');
  const grid = model.latentGrid(latents.shape);
  const tokens = tf.tidy(() => {
    const noise = Rng.fromSeed(noiseSeed, 5).randomTensor(latents.shape, 'normal');
    const ts = new Array(latents.shape[0]!).fill(t);
    const noisy = schedule.addNoise(latents, noise, ts);
    const out = forward(noisy, text, ts);
    tf.dispose(out.sample);
    return out.alignHidden as tf.Tensor3D;
  });
  return { tokens, grid };
}

export interface ProbeSummary {
  accuracy: number;
  std: number;
  foldAccuracies: number[];
  n: number;
  d: number;
}

/** Stratified k-fold probe accuracy (λ by inner CV) of features with labels; groups keep subsets stratified. */
export async function probeAccuracy(x: FeatureMatrix, labels: Uint8Array, groups: Int32Array, folds: number, seed: number): Promise<ProbeSummary> {
  const k = await standardizedGram(x, featureStats(x));
  const r = crossValidateProbe(k, { features: x, labels, groups }, { folds, seed });
  return { accuracy: r.accuracy, std: r.std, foldAccuracies: r.foldAccuracies, n: r.n, d: r.d };
}

/** The 3-slice Physion features of tokens. */
export function sliceFeatures(tokens: tf.Tensor3D, grid: TokenGrid, slices = 3): tf.Tensor2D {
  return physionFeatures({ tokens, grid }, { slices: Math.min(slices, grid.frames) });
}

/** Raw-pixel 3-slice features of clips `[B, F, H, W, 3]` (each frame one "token grid" of 1×1 tokens of H·W·3). */
export function pixelFeatures(clips: tf.Tensor, slices = 3): tf.Tensor2D {
  return tf.tidy(() => {
    const [B, F, H, W] = clips.shape as number[];
    const tokens = tf.reshape(clips, [B!, F!, H! * W! * 3]) as tf.Tensor3D;
    return physionFeatures({ tokens, grid: { frames: F!, height: 1, width: 1 } }, { slices });
  });
}

// ───────────────────────────── losses on held-out clips ─────────────────────────────

/**
 * Per-clip diffusion loss (the official weighting 1/(1−ᾱ_t) of the x̂₀ error, as cogvideox' diffusionLoss) at
 * fixed timesteps, averaged over `timesteps`; noise seeded by (seed, timestep index), one batched forward per
 * timestep. Returns one value per clip of the batch. `compiled`: `compiledForward(model, { alignLayer: 0 })`
 * to run the forwards as a graph.
 */
export function heldOutDiffusionLoss(model: CogVideoXTransformer3DModel, latents: tf.Tensor, text: tf.Tensor, timesteps: number[], seed: number, compiled?: CompiledForward): number[] {
  const schedule = new CogVideoXDDIMScheduler(COGVIDEOX_2B_SCHEDULER);
  const forward = measureForward(model, compiled, { alignLayer: 0, projectAligned: true }, 'heldOutDiffusionLoss');
  const B = latents.shape[0]!;
  const sum = new Float64Array(B);
  for (const [j, t] of timesteps.entries()) {
    const per = tf.tidy(() => {
      const noise = Rng.fromSeed(seed, 100 + j).randomTensor(latents.shape, 'normal');
      const ts = new Array(B).fill(t);
      const noisy = schedule.addNoise(latents, noise, ts);
      const out = forward(noisy, text, ts);
      const x0 = schedule.getVelocity(out.sample, noisy, ts);
      return tf.mul(tf.mean(tf.reshape(tf.square(tf.sub(x0, latents)), [B, -1]), 1), diffusionWeights(schedule, ts)[0]!).dataSync();
    });
    per.forEach((v, i) => (sum[i]! += v));
  }
  return Array.from(sum, (v) => v / timesteps.length);
}

/**
 * TRD (official form) between student align-layer tokens and teacher tokens on held-out clips, two ways:
 * through the model's own projector and downsampler (the training loss, measured on unseen clips), and on the
 * raw align-layer tokens (no learned parts: relations are dimension-free, so the raw features are compared
 * directly after dropping latent frame 0 and interpolating onto the teacher's grid).
 */
export function heldOutTrd(
  model: CogVideoXTransformer3DModel,
  student: { tokens: tf.Tensor3D; grid: TokenGrid },
  teacher: { tokens: tf.Tensor3D; grid: TokenGrid },
  opts: { margin: number; gridMatch: keyof typeof GRID_MATCH_STRATEGIES },
): { projected: number; raw: number } {
  return tf.tidy(() => {
    const strategy = GRID_MATCH_STRATEGIES[opts.gridMatch]!;
    const base = { studentGrid: student.grid, teacherGrid: teacher.grid, timeScaleFactor: 2 };
    const projected = model.projector!.apply(student.tokens) as tf.Tensor3D;
    const mp = matchGrids(projected, teacher.tokens, { ...base, strategy, downsampler: model.downsampler ?? undefined });
    const p = trdLoss(mp.student, mp.teacher, { grid: mp.grid, margin: opts.margin, form: 'official' }).dataSync()[0]!;
    const mr = matchGrids(student.tokens, teacher.tokens, { ...base, strategy: GRID_MATCH_STRATEGIES['teacher-interpolated']! });
    const r = trdLoss(mr.student, mr.teacher, { grid: mr.grid, margin: opts.margin, form: 'official' }).dataSync()[0]!;
    return { projected: p, raw: r };
  });
}

// ───────────────────────────── generation ─────────────────────────────

export interface SampleOptions {
  steps: number;
  seed: number;
  /** latent frames [0, contextFrames) are known (continuation); 0 = caption-only */
  contextFrames: number;
  /** `compiledForward(model, { alignLayer: 0 })`: every step's forward as a graph (default: model.forward eagerly) */
  compiled?: CompiledForward;
}

/**
 * DDIM sampling (CogVideoX-2B schedule, no guidance: the student is trained without caption dropout).
 * With `contextFrames` > 0 the known latent frames of `known` are written into the sample before every
 * step, noised to the current level with one fixed noise draw (the replacement method), and the clean
 * context is put back at the end. Returns latents `[B, F, h, w, C]`.
 */
export function sampleLatents(model: CogVideoXTransformer3DModel, text: tf.Tensor, shape: number[], opts: SampleOptions, known?: tf.Tensor): tf.Tensor5D {
  const schedule = new CogVideoXDDIMScheduler(COGVIDEOX_2B_SCHEDULER);
  const timesteps = schedule.setTimesteps(opts.steps);
  const rng = Rng.fromSeed(opts.seed, 9);
  const K = opts.contextFrames;
  const [B, F, h, w, C] = shape as [number, number, number, number, number];
  if (K > 0 && !known) throw new Error('sampleLatents: contextFrames > 0 needs the known latents');
  const forward = measureForward(model, opts.compiled, { alignLayer: 0, projectAligned: true }, 'sampleLatents');
  let x = rng.randomTensor(shape, 'normal');
  const ctxNoise = K > 0 ? rng.randomTensor([B, K, h, w, C], 'normal') : null;
  const ctx = K > 0 ? tf.slice(known!, [0, 0, 0, 0, 0], [B, K, h, w, C]) : null;
  const replace = (sample: tf.Tensor, ctxValue: tf.Tensor) => tf.concat([ctxValue, tf.slice(sample, [0, K, 0, 0, 0], [B, F - K, h, w, C])], 1);
  for (const t of timesteps) {
    const next = tf.tidy(() => {
      const ts = new Array(B).fill(t);
      const cur = K > 0 ? replace(x, schedule.addNoise(ctx!, ctxNoise!, ts)) : x;
      const out = forward(cur, text, ts);
      return schedule.step(out.sample, t, cur).prevSample;
    });
    x.dispose();
    x = next;
  }
  const final = K > 0 ? tf.tidy(() => replace(x, ctx!)) : x;
  if (final !== x) x.dispose();
  tf.dispose([ctxNoise, ctx].filter((t): t is tf.Tensor => t !== null));
  return final as tf.Tensor5D;
}

/** Latents → uint8 clips `[F, H, W, 3]`, one per batch item. */
export function latentsToClips(latents: tf.Tensor, space: LatentSpace): Uint8Array[] {
  const px = decodeLatents(latents, space);
  const B = px.shape[0];
  const out = Array.from({ length: B }, (_, i) => tf.tidy(() => tensorToPixels(tf.slice(px, [i], [1]))));
  px.dispose();
  return out;
}

export interface ClipScore {
  clip: string;
  label: 0 | 1;
  /** mean position error (px) of agent and patient over the frames after the context */
  positionErrorPx: number;
  /** contact predicted from the tracked objects (centroid distance ≤ sum of equivalent radii + 1 px) */
  predictedContact: 0 | 1 | null;
  missingFrames: number;
  extraBlobFrames: number;
  jumpFrames: number;
  interpenetrationFrames: number;
  maxAreaChange: number;
  /** share of visible frame triples accelerating downward faster than 1.5·g + 1 px/frame² (@vrepa/eval gravityConsistency) */
  gravityViolationRate: number;
}

/**
 * Score one clip against a scene's ground truth with @vrepa/eval's trajectory metrics, plus a contact
 * prediction from the tracks and a gravity-consistency residual.
 */
export function scoreClip(frames: Uint8Array, width: number, height: number, statesJson: string): ClipScore {
  const gt = JSON.parse(statesJson) as StatesFile & { objects: { role: string; area: number }[] };
  const m: TrajectoryMetrics = trajectoryMetrics(frames, width, height, gt);
  const ppm = gt.pixels_per_meter * (width / gt.width);
  const radii = (["agent", "patient"] as const).map((r) => Math.sqrt((gt.objects.find((o) => o.role === r) as unknown as { area: number }).area / Math.PI) * ppm);
  const pos = trackPositions(frames, width, height, gt);
  let minGap = Infinity;
  for (let f = m.context; f < m.frames; f++) {
    const a = pos[0]![f];
    const b = pos[1]![f];
    if (!a || !b) continue;
    minGap = Math.min(minGap, Math.hypot(a[0] - b[0], a[1] - b[1]) - radii[0]! - radii[1]!);
  }
  const errs = m.objects.map((o) => o.meanPositionErrorPx).filter(Number.isFinite);
  return {
    clip: m.clip,
    label: gt.contact,
    positionErrorPx: errs.length ? errs.reduce((a, b) => a + b, 0) / errs.length : NaN,
    predictedContact: Number.isFinite(minGap) ? (minGap <= 1 ? 1 : 0) : null,
    missingFrames: m.objects.reduce((a, o) => a + o.missingFrames, 0),
    extraBlobFrames: m.objects.reduce((a, o) => a + o.extraBlobFrames, 0),
    jumpFrames: m.objects.reduce((a, o) => a + o.jumpFrames, 0),
    interpenetrationFrames: m.interpenetrationFrames,
    maxAreaChange: Math.max(...m.objects.map((o) => o.maxAreaChange)),
    gravityViolationRate: gravityConsistency(pos, gravityPxPerFrame2(ppm, gt.fps)).rate,
  };
}

/** Tracked agent / patient centroids per frame (undefined where not visible), as trajectoryMetrics tracks them. */
export function trackPositions(frames: Uint8Array, width: number, height: number, gt: StatesFile): ([number, number] | undefined)[][] {
  const size = width * height * 3;
  const n = Math.min(frames.length / size, gt.states.length);
  const idx = ['agent', 'patient'].map((r) => gt.objects.findIndex((o) => o.role === r));
  const first = frames.subarray(0, size);
  const colours = idx.map((i) => refineColour(first, width, height, gt.objects[i]!.color));
  const palette = [gt.background, gt.floor, ...gt.objects.filter((_, i) => !idx.includes(i)).map((o) => o.color)].map((c) => refineColour(first, width, height, c, 30));
  const tracked = trackColours(frames.subarray(0, n * size), width, height, colours, { palette });
  return idx.map((_, k) => tracked.map((f) => (f[k]!.present ? ([f[k]!.cx, f[k]!.cy] as [number, number]) : undefined)));
}

/**
 * The VideoREPA finetuning loop: model + align parts (+ LoRA), the official loss (cogvideox'
 * `trainingLoss`: v-prediction → x̂₀ with weights 1/(1−ᾱ_t), + λ·TRD), AdamW, LR warmup + schedule,
 * global-norm clipping, gradient accumulation, a NaN/Inf guard, atomic checkpoints with exact resume,
 * and logs (log.jsonl, TensorBoard, progress bar, loss-curve PNG).
 *
 * Data parallel when TF_CONFIG names several tasks (@vrepa/core initDistributed): every task holds the whole
 * model (initial weights broadcast from rank 0), takes its shard of every global batch (optim.batch_size per
 * task, the same cursor and random draws everywhere), and the gradients are all-reduced (mean) before clipping
 * and AdamW — so N tasks × batch b follow the same trajectory as 1 task × batch N·b. Rank 0 writes checkpoints
 * and logs; --resume restores every task from the same checkpoint.
 */
import fs from 'node:fs';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { GRID_MATCH_STRATEGIES } from '@vrepa/align-dims';
import { Rng, compileFunction, distributed, fromTorchLayout, graphFunctionsAvailable, localDistributed, toTorchLayout, type CompiledFunction, type Distributed, type Parameter } from '@vrepa/core';
import {
  CogVideoXTransformer3DModel,
  CogVideoXDDIMScheduler,
  COGVIDEOX_2B_SCHEDULER,
  COGVIDEOX_5B_SCHEDULER,
  addLora,
  fromPretrained,
  saveLora,
  savePretrained,
  sampleTimesteps,
  timestepTensors,
  trainingLoss,
  type NoiseSchedule,
} from '@vrepa/cogvideox';
import { configHash, type TrainConfig } from './config.js';
import { AdamW, clipCoefficient, lrLambda } from '@vrepa/core';
import { CachedDataset, DataCursor, SyntheticDataset, collate, disposeSample, type TrainDataset } from './data.js';
import { disposeLoaded, loadLatestCheckpoint, paramsSignature, saveCheckpoint, type TrainState } from '@vrepa/core';
import { TensorBoardWriter } from '@vrepa/core';
import { CachedFolderDataset, prepareFolder } from './folder.js';
import { Validator } from './validation.js';
import { ProgressBar, writeLossPlot, type LossSeries } from '@vrepa/core';

/** The loss-plot lines of a finetuning run: total, diffusion, alignment. */
const LOSS_SERIES: LossSeries = [
  ['loss', 'total'],
  ['loss_diff', 'diffusion'],
  ['loss_align', 'alignment (TRD)'],
];

export interface StepLog {
  step: number;
  loss: number | null;
  loss_diff: number | null;
  loss_align: number | null;
  lr: number;
  grad_norm: number | null;
  skipped: boolean;
  epoch: number;
  /** milliseconds: data (incl. cache), forward+backward, optimizer */
  ms_data: number;
  ms_fwd_bwd: number;
  ms_opt: number;
}

export interface TrainerHooks {
  /** make the loss of this step non-finite (tests of the NaN guard) */
  injectNonFinite?: (step: number) => boolean;
  /** test hook for checkpoint writing (see saveCheckpoint) */
  beforeManifest?: (dir: string) => void;
  /** called after every step */
  onStep?: (log: StepLog) => void;
}

export interface TrainerOptions {
  out: string;
  /** continue from the newest valid checkpoint in out/checkpoints */
  resume?: boolean;
  maxSteps?: number;
  checkpointEvery?: number;
  /** also write the inference export at the end (overrides train.export_for_inference; see exportFinal) */
  exportForInference?: boolean;
  /** messages (warnings, info); default stderr */
  log?: (msg: string) => void;
  progress?: boolean;
  /** a dataset to use instead of the config's (tests, custom sources) */
  dataset?: TrainDataset;
  hooks?: TrainerHooks;
  /** the data-parallel group (default: the one initDistributed made, else single-process) */
  distributed?: Distributed;
}

export function buildModel(c: TrainConfig): CogVideoXTransformer3DModel {
  const alignOpt = { align_layer: c.align.align_layer, align_dims: c.align.align_dims, projector_dim: c.align.projector_dim };
  let model: CogVideoXTransformer3DModel;
  if (typeof c.model.transformer === 'string') {
    // a VideoREPA checkpoint brings its align parts; a plain CogVideoX folder gets fresh ones (official init, seeded)
    model = fromPretrained(c.model.transformer).model;
    if (!model.projector) model.createAlignParts(alignOpt, { rng: Rng.fromSeed(c.model.init_seed, 1) });
    else if (model.alignConfig!.align_layer !== c.align.align_layer) model.setAlignLayer(c.align.align_layer);
  } else {
    model = new CogVideoXTransformer3DModel(c.model.transformer, { rng: Rng.fromSeed(c.model.init_seed), align: alignOpt });
  }
  if (c.model.training_type === 'lora') addLora(model, { rank: c.model.lora_rank, alpha: c.model.lora_alpha }, { rng: Rng.fromSeed(c.model.init_seed, 2) });
  else model.requiresGrad(true);
  model.gradientCheckpointing = c.model.gradient_checkpointing;
  return model;
}

export function buildScheduler(c: TrainConfig): CogVideoXDDIMScheduler {
  return new CogVideoXDDIMScheduler(c.model.scheduler === 'cogvideox-5b' ? COGVIDEOX_5B_SCHEDULER : COGVIDEOX_2B_SCHEDULER);
}

export function buildDataset(c: TrainConfig, model: CogVideoXTransformer3DModel, log: (m: string) => void = () => {}, dist: Distributed = localDistributed()): TrainDataset {
  if (c.data.source === 'memory') throw new Error("buildDataset: data.source 'memory' needs the dataset passed in code (TrainerOptions.dataset)");
  if (c.data.source === 'synthetic') return new CachedDataset(SyntheticDataset.fromConfig(c, model.config.text_embed_dim), { dir: c.data.cache_dir });
  // a dataset folder: encode what is not cached yet (bad clips are handled here, before any step), then read the cache.
  // Data parallel: rank 0 fills the cache, the others wait and then find every entry cached.
  if (!dist.isChief) dist.barrier();
  const r = prepareFolder(c, { progress: dist.isChief, log });
  if (dist.isChief && dist.worldSize > 1) dist.barrier();
  return new CachedDataset(new CachedFolderDataset(c.data.cache_dir!, r.index));
}

export interface LossParts {
  total: number;
  diffusion: number;
  alignment: number | null;
}

function finite(x: number | null): number | null {
  return x === null || Number.isFinite(x) ? x : null;
}

/**
 * A training run: everything a step needs, plus the state a checkpoint saves. `step()` does one
 * optimizer step (with accumulation); `run()` loops to max steps with checkpoints and logs.
 */
export class Trainer {
  readonly model: CogVideoXTransformer3DModel;
  readonly schedule: NoiseSchedule;
  readonly dataset: TrainDataset;
  readonly params: Map<string, tf.Variable>;
  private readonly paramObjs: Map<string, Parameter>;
  readonly optimizer: AdamW;
  readonly rng: Rng;
  readonly cursor: DataCursor;
  readonly hash: string;
  readonly maxSteps: number;
  readonly checkpointEvery: number;
  step = 0;
  nanStreak = 0;
  skippedSteps = 0;
  lastLr = 0;
  private readonly log: (msg: string) => void;
  private tb: TensorBoardWriter | null = null;
  private validator: Validator | null = null;
  /** the data-parallel group (worldSize 1 when single-process) */
  readonly dist: Distributed;
  /** the micro-batch's loss and gradients as one TensorFlow graph (graphStep), made on first use */
  private graphStepFn: CompiledFunction | null = null;
  /** per input count: which outputs the traced step returns (alignment or not, gradient names) */
  private readonly graphLayouts = new Map<number, { align: boolean; names: string[] }>();
  /** the timesteps of the micro-batch graphStep is running (checks only: no tensor is made from them in the step) */
  private graphTimesteps: number[] = [];

  constructor(
    readonly config: TrainConfig,
    readonly opts: TrainerOptions,
  ) {
    const c = config;
    this.log = opts.log ?? ((m) => process.stderr.write(`${m}\n`));
    this.dist = opts.distributed ?? distributed() ?? localDistributed();
    this.model = buildModel(c);
    this.schedule = buildScheduler(c);
    this.dataset = opts.dataset ?? buildDataset(c, this.model, this.log, this.dist);
    this.paramObjs = new Map(this.model.namedParameters().filter(([, p]) => p.trainable));
    if (this.paramObjs.size === 0) throw new Error('Trainer: the model has no trainable parameters');
    this.params = new Map([...this.paramObjs].map(([n, p]) => [n, p.value]));
    this.optimizer = new AdamW(this.params, { lr: c.optim.learning_rate, beta1: c.optim.beta1, beta2: c.optim.beta2, eps: c.optim.epsilon, weightDecay: c.optim.weight_decay });
    this.rng = Rng.fromSeed(c.train.seed, 7);
    this.cursor = new DataCursor(c.train.seed, this.dataset.length);
    this.hash = configHash(c);
    const perStep = c.optim.batch_size * this.dist.worldSize * c.optim.gradient_accumulation_steps;
    if (this.dist.worldSize > 1) this.syncFromChief();
    this.maxSteps = opts.maxSteps ?? c.train.max_steps ?? Math.max(1, Math.ceil((c.train.num_epochs * this.dataset.length) / perStep));
    this.checkpointEvery = opts.checkpointEvery ?? c.train.checkpointing_steps;
  }

  /**
   * Data parallel: every parameter (trainable and frozen) takes rank 0's value, so that all tasks start from
   * identical weights whatever their initialisation or the files they loaded (as DistributedDataParallel does).
   */
  syncFromChief(): void {
    const all = this.model.namedParameters().map(([, p]) => p.value);
    const synced = this.dist.broadcast(all, 0);
    all.forEach((v, i) => v.assign(synced[i]!));
    tf.dispose(synced);
  }

  /** Learning rate of the next update. */
  currentLr(): number {
    const o = this.config.optim;
    return o.learning_rate * lrLambda(o.lr_scheduler, this.optimizer.step, o.lr_warmup_steps, this.maxSteps);
  }

  private lossFn(batch: { latents: tf.Tensor; text: tf.Tensor; teacher?: tf.Tensor }, fixed?: { timesteps: number[]; noise: tf.Tensor }, inject = false, training = !!fixed && this.dist.worldSize > 1) {
    const c = this.config;
    let parts!: ReturnType<typeof trainingLoss>;
    const f = () => {
      parts = trainingLoss(this.model, this.schedule, {
        latents: batch.latents,
        textEmbeddings: batch.text,
        teacher: batch.teacher,
        teacherGrid: this.dataset.teacherGrid,
        rng: fixed ? undefined : this.rng,
        // dropout masks (config.dropout > 0 only) come from the same saved stream, so resume stays exact
        dropoutRng: fixed && !training ? undefined : this.rng,
        timesteps: fixed?.timesteps,
        noise: fixed?.noise,
        lambda: c.align.proj_coeff,
        align: { loss: c.align.loss, margin: c.align.margin, strategy: GRID_MATCH_STRATEGIES[c.align.grid_match] },
      });
      return inject ? (tf.mul(parts.total, NaN) as tf.Scalar) : parts.total;
    };
    return { f, parts: () => parts };
  }

  /**
   * Data parallel: the timesteps and noise of the whole global batch, drawn in the order trainingLoss draws them
   * for one task with that batch, and this task's rows of them — so the random draws do not depend on the split.
   */
  private globalDraws(shardShape: number[]): { timesteps: number[]; noise: tf.Tensor } {
    const { rank, worldSize } = this.dist;
    const b = shardShape[0]!;
    const all = sampleTimesteps(b * worldSize, this.schedule.alphasCumprod.length, this.rng);
    const noise = this.rng.randomTensor([b * worldSize, ...shardShape.slice(1)], 'normal');
    const mine = tf.slice(noise, rank * b, b);
    noise.dispose();
    return { timesteps: all.slice(rank * b, (rank + 1) * b), noise: mine };
  }

  /**
   * Whether micro-batches run as one TensorFlow graph (core's compileFunction, issue 15's fifth wave): where
   * graph functions run (the native backend with binding patch 34, oneDNN off — as `vrepa train` picks for
   * models narrower than 128 — or VREPA_TF_GRAPH=1), the model has no dropout (its masks are JS draws inside
   * the forward) and the schedule makes its noise coefficients beforehand. Read per step.
   */
  graphStepsEnabled(): boolean {
    const s = this.schedule as NoiseSchedule;
    return graphFunctionsAvailable() && !(this.model.config.dropout > 0) && typeof s.noiseCoefficients === 'function' && typeof s.addNoiseWith === 'function' && typeof s.getVelocityWith === 'function';
  }

  /**
   * How the next micro-batch runs: 'off' (graph steps do not apply here: see graphStepsEnabled), 'trace' (its
   * first steps, traced while they run eagerly), 'graph' (one graph run per micro-batch) or 'eager' (the
   * traces differed; the reason was logged once).
   */
  graphMode(): 'off' | 'trace' | 'graph' | 'eager' {
    if (!this.graphStepsEnabled()) return 'off';
    return this.graphStepFn ? this.graphStepFn.mode() : 'trace';
  }

  /**
   * One micro-batch's loss and gradients as a graph: the random draws trainingLoss would make (timesteps, then
   * noise, from the same stream and in its order) and every tensor made from the timesteps are made here, so
   * the traced step makes no tensor from per-step JS values; the first two calls run eagerly while tracing and
   * compare their graphs, later ones run the graph — the same kernels on the same inputs (equal bits with
   * oneDNN off). Undefined (nothing drawn) where graphStepsEnabled() is false.
   */
  private graphStep(batch: { latents: tf.Tensor; text: tf.Tensor; teacher?: tf.Tensor }, fixed: { timesteps: number[]; noise: tf.Tensor } | undefined, vars: tf.Variable[]): { value: tf.Scalar; grads: Record<string, tf.Tensor>; parts: { diffusion: tf.Scalar; alignment: tf.Scalar | null } } | undefined {
    if (!this.graphStepsEnabled()) return undefined;
    const c = this.config;
    const B = batch.latents.shape[0]!;
    const timesteps = fixed?.timesteps ?? sampleTimesteps(B, this.schedule.alphasCumprod.length, this.rng);
    const noise = fixed ? undefined : this.rng.randomTensor(batch.latents.shape, 'normal');
    const steps = timestepTensors(this.model, this.schedule, timesteps, batch.latents.shape);
    const [a, b] = steps.noiseCoefficients!;
    const inputs = [batch.latents, batch.text, ...(batch.teacher ? [batch.teacher] : []), fixed?.noise ?? noise!, a!, b!, steps.lossWeights, steps.timeProjection, ...vars];
    if (!this.graphStepFn) {
      this.graphStepFn = compileFunction(
        (xs) => {
          const hasTeacher = xs.length === vars.length + 8;
          let i = 0;
          const [latents, text] = [xs[i++]!, xs[i++]!];
          const teacher = hasTeacher ? xs[i++]! : undefined;
          const [eps, ca, cb, w, tp] = [xs[i++]!, xs[i++]!, xs[i++]!, xs[i++]!, xs[i++]!];
          let parts!: ReturnType<typeof trainingLoss>;
          const { value, grads } = tf.variableGrads(() => {
            parts = trainingLoss(this.model, this.schedule, {
              latents,
              textEmbeddings: text,
              teacher,
              teacherGrid: this.dataset.teacherGrid,
              noise: eps,
              timestepTensors: { timesteps: this.graphTimesteps, noiseCoefficients: [ca, cb], lossWeights: w as tf.Tensor2D, timeProjection: tp as tf.Tensor2D },
              lambda: c.align.proj_coeff,
              align: { loss: c.align.loss, margin: c.align.margin, strategy: GRID_MATCH_STRATEGIES[c.align.grid_match] },
            });
            return parts.total;
          }, vars);
          const names = vars.map((v) => v.name).filter((n) => grads[n]);
          this.graphLayouts.set(xs.length, { align: !!parts.alignment, names });
          return [value, parts.diffusion, ...(parts.alignment ? [parts.alignment] : []), ...names.map((n) => grads[n]!)];
        },
        { onFallback: (reason) => this.log(`note: training steps run eagerly (not as one graph): ${reason}`) },
      );
    }
    this.graphTimesteps = timesteps;
    let outs: tf.Tensor[];
    try {
      outs = this.graphStepFn(inputs);
    } finally {
      tf.dispose([a!, b!, steps.lossWeights, steps.timeProjection, ...(noise ? [noise] : [])]);
    }
    const layout = this.graphLayouts.get(inputs.length)!;
    let k = 0;
    const value = outs[k++] as tf.Scalar;
    const diffusion = outs[k++] as tf.Scalar;
    const alignment = layout.align ? (outs[k++] as tf.Scalar) : null;
    const grads: Record<string, tf.Tensor> = {};
    for (const n of layout.names) grads[n] = outs[k++]!;
    return { value, grads, parts: { diffusion, alignment } };
  }

  /** The loss on a batch with fixed timesteps and noise (no update): for evaluation and tests. */
  evaluate(batch: { latents: tf.Tensor; text: tf.Tensor; teacher?: tf.Tensor }, fixed: { timesteps: number[]; noise: tf.Tensor }): LossParts {
    const { f, parts } = this.lossFn(batch, fixed, false, false);
    const total = tf.tidy(f);
    const p = parts();
    const out = { total: total.dataSync()[0]!, diffusion: p.diffusion.dataSync()[0]!, alignment: p.alignment ? p.alignment.dataSync()[0]! : null };
    tf.dispose([total, p.diffusion, ...(p.alignment ? [p.alignment] : [])]);
    return out;
  }

  /** One optimizer step (gradient accumulation over micro-batches). */
  trainStep(): StepLog {
    const c = this.config;
    const accum = c.optim.gradient_accumulation_steps;
    const stepNo = this.step + 1;
    const inject = this.opts.hooks?.injectNonFinite?.(stepNo) ?? false;
    let msData = 0;
    let msFwd = 0;
    let sums = { total: 0, diffusion: 0, alignment: 0 };
    let hasAlign = false;
    let grads: Map<string, tf.Tensor> | null = null;
    for (let k = 0; k < accum; k++) {
      let t0 = performance.now();
      // every task takes the same global batch from the cursor and keeps its shard
      const { rank, worldSize } = this.dist;
      const b = c.optim.batch_size;
      const indices = this.cursor.take(b * worldSize).slice(rank * b, (rank + 1) * b);
      const samples = indices.map((i) => this.dataset.get(i));
      const batch = collate(samples);
      samples.forEach(disposeSample);
      msData += performance.now() - t0;
      t0 = performance.now();
      const fixed = worldSize > 1 ? this.globalDraws(batch.latents.shape) : undefined;
      const vars = [...this.params.values()];
      let value: tf.Scalar;
      let g: Record<string, tf.Tensor>;
      let p: { diffusion: tf.Scalar; alignment: tf.Scalar | null };
      const graphed = inject ? undefined : this.graphStep(batch, fixed, vars);
      if (graphed) ({ value, grads: g, parts: p } = graphed);
      else {
        const { f, parts } = this.lossFn(batch, fixed, inject);
        ({ value, grads: g } = tf.variableGrads(f, vars));
        p = parts();
      }
      sums.total += value.dataSync()[0]!;
      sums.diffusion += p.diffusion.dataSync()[0]!;
      if (p.alignment) {
        hasAlign = true;
        sums.alignment += p.alignment.dataSync()[0]!;
      }
      tf.dispose([value, p.diffusion, ...(p.alignment ? [p.alignment] : []), batch.latents, batch.text, ...(batch.teacher ? [batch.teacher] : []), ...(fixed ? [fixed.noise] : [])]);
      // accumulate the mean over micro-batches (torch: loss / accum per micro-batch, grads summed)
      const next = new Map<string, tf.Tensor>();
      for (const [n, v] of this.params) {
        const gi = g[v.name];
        if (!gi) continue;
        const scaled = accum > 1 ? tf.div(gi, accum) : gi;
        if (scaled !== gi) gi.dispose();
        const prev = grads?.get(n);
        if (prev) {
          next.set(n, tf.add(prev, scaled));
          prev.dispose();
          scaled.dispose();
        } else next.set(n, scaled);
      }
      for (const t of Object.values(g)) if (!t.isDisposed && ![...next.values()].includes(t)) t.dispose();
      grads = next;
      msFwd += performance.now() - t0;
    }
    const t1 = performance.now();
    if (this.dist.worldSize > 1) {
      // the mean over tasks of the gradients (and of the losses, for the log) before clipping and AdamW
      const names = [...grads!.keys()];
      const reduced = this.dist.allReduceMean([...grads!.values(), tf.tensor1d([sums.total, sums.diffusion, sums.alignment])]);
      tf.dispose([...grads!.values()]);
      grads = new Map(names.map((n, i) => [n, reduced[i]!]));
      const l = reduced[names.length]!;
      [sums.total, sums.diffusion, sums.alignment] = Array.from(l.dataSync());
      l.dispose();
    }
    const msComm = performance.now() - t1;
    const loss = sums.total / accum;
    const lossDiff = sums.diffusion / accum;
    const lossAlign = hasAlign ? sums.alignment / accum : null;
    // clip_grad_norm_'s coefficient goes into the update (AdamW scales each gradient as it reads it)
    const clipped = clipCoefficient(grads!, c.optim.max_grad_norm);
    const lr = this.currentLr();
    const ok = Number.isFinite(loss) && Number.isFinite(clipped.norm);
    if (ok) {
      this.optimizer.apply(grads!, lr, clipped.coef);
      this.nanStreak = 0;
    } else {
      this.nanStreak += 1;
      this.skippedSteps += 1;
      this.log(`warning: step ${stepNo}: non-finite ${Number.isFinite(loss) ? 'gradient norm' : 'loss'} (loss ${loss}, grad norm ${clipped.norm}); step skipped, weights unchanged (${this.nanStreak} in a row, stop at ${c.train.nan_max_consecutive})`);
    }
    tf.dispose([...grads!.values()]);
    this.step = stepNo;
    this.lastLr = lr;
    const entry: StepLog = {
      step: stepNo,
      loss: finite(loss),
      loss_diff: finite(lossDiff),
      loss_align: finite(lossAlign),
      lr,
      grad_norm: finite(clipped.norm),
      skipped: !ok,
      epoch: this.cursor.epoch,
      ms_data: msData,
      ms_fwd_bwd: msFwd,
      ms_opt: performance.now() - t1 - msComm,
      ...(this.dist.worldSize > 1 ? { ms_allreduce: msComm } : {}),
    };
    if (this.nanStreak >= c.train.nan_max_consecutive) {
      throw new NonFiniteError(`training stopped at step ${stepNo}: ${this.nanStreak} non-finite steps in a row (train.nan_max_consecutive = ${c.train.nan_max_consecutive}); the last checkpoint holds the last good weights`, entry);
    }
    return entry;
  }

  state(): TrainState {
    return {
      step: this.step,
      optimizerStep: this.optimizer.step,
      epoch: this.cursor.epoch,
      position: this.cursor.position,
      rng: this.rng.state(),
      lr: this.lastLr,
      nanStreak: this.nanStreak,
      skippedSteps: this.skippedSteps,
    };
  }

  /** Trainable parameters in PyTorch layout under their state-dict names (caller disposes). */
  trainableStateDict(): Map<string, tf.Tensor> {
    return new Map([...this.paramObjs].map(([n, p]) => [n, toTorchLayout(p.value, p.layout)]));
  }

  saveCheckpoint(): string {
    const sd = this.trainableStateDict();
    try {
      return saveCheckpoint(
        this.opts.out,
        {
          step: this.step,
          configHash: this.hash,
          params: sd,
          exp_avg: this.optimizer.m,
          exp_avg_sq: this.optimizer.v,
          state: this.state(),
          extra: this.config.model.training_type === 'lora' ? (dir) => void saveLora(this.model, dir) : undefined,
          beforeManifest: this.opts.hooks?.beforeManifest,
        },
        this.config.train.keep_last,
      );
    } finally {
      tf.dispose([...sd.values()]);
    }
  }

  /** Restore the newest valid checkpoint; returns its step, or null when there is none. */
  restore(): number | null {
    const shapes = new Map([...this.paramObjs].map(([n, p]) => [n, { shape: p.torchShape }]));
    const ck = loadLatestCheckpoint(this.opts.out, { configHash: this.hash, paramsSignature: paramsSignature(shapes) }, this.log);
    if (!ck) return null;
    try {
      for (const [n, p] of this.paramObjs) {
        const t = ck.params.get(n);
        if (!t) throw new Error(`restore: ${ck.dir} has no tensor for parameter ${n}`);
        const stored = fromTorchLayout(t, p.layout);
        p.value.assign(stored);
        if (stored !== t) stored.dispose();
      }
      this.optimizer.load(ck.exp_avg, ck.exp_avg_sq, ck.state.optimizerStep);
      const s = ck.state;
      this.step = s.step;
      this.cursor.seek(s.epoch, s.position);
      this.rng.setState(s.rng);
      this.nanStreak = s.nanStreak;
      this.skippedSteps = s.skippedSteps;
      this.lastLr = s.lr;
      return s.step;
    } finally {
      disposeLoaded(ck);
    }
  }

  /** The whole run: resume (optional), steps, checkpoints, logs. */
  async run(): Promise<TrainResult> {
    const { out } = this.opts;
    const c = this.config;
    fs.mkdirSync(out, { recursive: true });
    const logFile = path.join(out, 'log.jsonl');
    const hasCheckpoints = fs.existsSync(path.join(out, 'checkpoints')) && fs.readdirSync(path.join(out, 'checkpoints')).some((n) => n.startsWith('step-'));
    if (!this.opts.resume && hasCheckpoints) throw new Error(`${out} already holds checkpoints; pass --resume to continue, or choose another --out`);
    const chief = this.dist.isChief;
    let resumedFrom: number | null = null;
    if (this.opts.resume) {
      resumedFrom = this.restore();
      if (chief) this.log(resumedFrom === null ? 'resume: no checkpoint found; starting from step 0' : `resume: continuing from step ${resumedFrom}`);
      if (this.dist.worldSize > 1) this.checkSameStep();
    }
    if (chief) {
      truncateLog(logFile, resumedFrom ?? 0);
      fs.writeFileSync(path.join(out, 'config.resolved.json'), JSON.stringify(c, null, 2) + '\n');
      if (c.train.tensorboard) this.tb = new TensorBoardWriter(path.join(out, 'tensorboard'));
    }
    const bar = new ProgressBar(this.maxSteps, this.step, chief && (this.opts.progress ?? true));
    const t0 = performance.now();
    const startStep = this.step;
    try {
      while (this.step < this.maxSteps) {
        const entry = this.trainStep();
        this.opts.hooks?.onStep?.(entry);
        if (!chief) continue;
        fs.appendFileSync(logFile, JSON.stringify(entry) + '\n');
        if (this.tb) {
          if (entry.loss !== null) this.tb.scalar('loss/total', entry.loss, entry.step);
          if (entry.loss_diff !== null) this.tb.scalar('loss/diffusion', entry.loss_diff, entry.step);
          if (entry.loss_align !== null) this.tb.scalar('loss/align', entry.loss_align, entry.step);
          this.tb.scalar('lr', entry.lr, entry.step);
          if (entry.grad_norm !== null) this.tb.scalar('grad_norm', entry.grad_norm, entry.step);
        }
        bar.update({ step: entry.step, loss: entry.loss, parts: { diff: entry.loss_diff, align: entry.loss_align }, lr: entry.lr });
        if (this.step % this.checkpointEvery === 0 || this.step === this.maxSteps) this.saveCheckpoint();
        if (c.train.plot_every > 0 && this.step % c.train.plot_every === 0) await writeLossPlot(logFile, path.join(out, 'loss.png'), LOSS_SERIES);
        if (c.train.validation_every > 0 && (this.step % c.train.validation_every === 0 || this.step === this.maxSteps)) await this.validate();
      }
    } finally {
      bar.done();
      this.tb?.close();
    }
    const seconds = (performance.now() - t0) / 1000;
    const stepsRun = this.step - startStep;
    if (!chief) {
      this.dist.barrier(); // rank 0 has written the last checkpoint
      return { steps: this.step, stepsRun, seconds, stepsPerSecond: stepsRun / Math.max(seconds, 1e-9), resumedFrom, skippedSteps: this.skippedSteps, logFile, plot: null, final: path.join(out, 'final') };
    }
    const plot = await writeLossPlot(logFile, path.join(out, 'loss.png'), LOSS_SERIES).catch((e) => {
      this.log(`warning: loss plot not written (${(e as Error).message})`);
      return null;
    });
    const final = this.exportFinal(path.join(out, 'final'));
    if (this.dist.worldSize > 1) this.dist.barrier();
    return { steps: this.step, stepsRun, seconds, stepsPerSecond: stepsRun / Math.max(seconds, 1e-9), resumedFrom, skippedSteps: this.skippedSteps, logFile, plot, final };
  }

  /** Data parallel resume: every task must have restored the same step (sum s = N·s and sum s² = N·s² ⇒ all equal). */
  private checkSameStep(): void {
    const s = this.step;
    const [t] = this.dist.allReduceSum([tf.tensor1d([s, s * s])]);
    const [sum, sq] = Array.from(t!.dataSync());
    t!.dispose();
    const n = this.dist.worldSize;
    if (sum !== n * s || sq !== n * s * s) {
      throw new Error(`resume: the tasks restored different steps (this task, rank ${this.dist.rank}: step ${s}; mean over tasks ${sum! / n}). Every task must see the same ${path.join(this.opts.out, 'checkpoints')} (a shared folder).`);
    }
  }

  /** Render the validation prompts with the current weights into OUT/validation (see Validator). */
  async validate(): Promise<string[]> {
    const c = this.config;
    if (!c.model.pipeline) throw new Error('validate: model.pipeline is not set');
    this.validator ??= new Validator(c.model.pipeline, this.model, { prompts: c.train.validation_prompts, steps: c.train.validation_inference_steps, seed: c.train.validation_seed, guidance: c.train.validation_guidance });
    const files = await this.validator.run(path.join(this.opts.out, 'validation'), this.step);
    this.log(`validation: ${files.join(', ')}`);
    return files;
  }

  /**
   * The trained weights in diffusers format: the LoRA file, or the full transformer folder (align parts
   * in: it resumes training and matches the official checkpoints). With train.export_for_inference (or
   * the option) also DIR/inference/: the transformer without the align parts (stock diffusers loads it
   * without warnings), or the LoRA file with α/r baked into lora_B (for loaders that ignore its metadata).
   */
  exportFinal(dir: string): string {
    fs.mkdirSync(dir, { recursive: true });
    const inference = this.opts.exportForInference ?? this.config.train.export_for_inference;
    if (this.config.model.training_type === 'lora') {
      const file = saveLora(this.model, dir);
      if (inference) this.log(`inference export: ${saveLora(this.model, path.join(dir, 'inference'), { bakeScale: true })}`);
      return file;
    }
    savePretrained(this.model, path.join(dir, 'transformer'));
    if (inference) {
      savePretrained(this.model, path.join(dir, 'inference', 'transformer'), { forInference: true });
      this.log(`inference export: ${path.join(dir, 'inference', 'transformer')}`);
    }
    return path.join(dir, 'transformer');
  }

  dispose(): void {
    this.graphStepFn?.dispose();
    this.validator?.dispose();
    this.optimizer.dispose();
    this.model.dispose();
    if (this.dataset instanceof CachedDataset) this.dataset.dispose();
  }
}

export class NonFiniteError extends Error {
  constructor(
    message: string,
    readonly entry: StepLog,
  ) {
    super(message);
    this.name = 'NonFiniteError';
  }
}

export interface TrainResult {
  steps: number;
  stepsRun: number;
  seconds: number;
  stepsPerSecond: number;
  resumedFrom: number | null;
  skippedSteps: number;
  logFile: string;
  plot: string | null;
  final: string;
}

/** Keep the log lines of steps ≤ `step` (a resumed run rewrites what the killed run logged after its checkpoint). */
export function truncateLog(file: string, step: number): void {
  if (!fs.existsSync(file)) return;
  const keep = fs
    .readFileSync(file, 'utf8')
    .split('\n')
    .filter((l) => {
      if (!l.trim()) return false;
      try {
        return (JSON.parse(l) as { step: number }).step <= step;
      } catch {
        return false; // a line cut by the kill
      }
    });
  fs.writeFileSync(file, keep.map((l) => `${l}\n`).join(''));
}

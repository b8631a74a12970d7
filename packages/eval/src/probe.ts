/**
 * Linear probes (Physion OCP protocol): standardised features, L2-regularised logistic regression with the
 * regularisation chosen by inner cross-validation, stratified k-fold accuracy, and a saved, reloadable probe.
 *
 * Efficiency: probe features are wide (Physion protocol: 3 slices × 150 tokens × 768 = 345,600 dims) and the
 * clips few (~1000). The L2-regularised problem min_w Σ ℓ(y_i, w·x_i + b) + λ/2‖w‖² has its solution in the span
 * of the training rows (w = Xᵀα), so it is solved in the dual: with K = X·Xᵀ (N×N, computed once, in column
 * chunks on the tf backend), each Newton (IRLS) step is a weighted kernel ridge regression with an unpenalised
 * intercept, solved exactly by one N×N Cholesky: (W^½KW^½ + λI)u = W^½z, bias from 1ᵀα = 0. Every fold and
 * every λ reuses sub-blocks of the same K. The primal weights w = Xᵀα are formed once for the saved probe.
 *
 * Standardisation: per-feature mean and standard deviation over all N clips (label-free, so no label leakage;
 * the mean drops out anyway because the intercept is not penalised). Constant features get std 1 (they are 0
 * after centring). This makes the probe exactly invariant to per-feature scaling.
 */
import * as tf from '@tensorflow/tfjs';
import { SafetensorsFile, writeSafetensors } from '@vrepa/core';
import { choleskyInPlace, choleskySolve, dot } from './linalg.js';
import { Rng } from './rng.js';

/** Row-major features `[n, d]`. */
export interface FeatureMatrix {
  data: Float32Array;
  n: number;
  d: number;
}

export class ProbeInputError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ProbeInputError';
  }
}

/** A labelled feature set, as stored in `feats.safetensors` (`features [N, D]`, `labels [N]`, optional `groups [N]`). */
export interface ProbeDataset {
  features: FeatureMatrix;
  /** 0/1 per row. */
  labels: Uint8Array;
  /** Subset id per row (e.g. roll = 0, contain = 1), optional. */
  groups?: Int32Array;
  /** Names of the group ids (index = id), optional. */
  groupNames?: string[];
}

// ───────────────────────────── standardisation and the Gram matrix ─────────────────────────────

/** Per-feature mean and standard deviation (population, ddof 0) over the given rows (default all); std 0 → 1. */
export function featureStats(x: FeatureMatrix, rows?: ArrayLike<number>): { mean: Float64Array; std: Float64Array } {
  const { data, n, d } = x;
  const idx = rows ?? Array.from({ length: n }, (_, i) => i);
  const mean = new Float64Array(d);
  const m2 = new Float64Array(d);
  for (let r = 0; r < idx.length; r++) {
    const off = idx[r]! * d;
    for (let j = 0; j < d; j++) mean[j]! += data[off + j]!;
  }
  for (let j = 0; j < d; j++) mean[j]! /= idx.length;
  for (let r = 0; r < idx.length; r++) {
    const off = idx[r]! * d;
    for (let j = 0; j < d; j++) {
      const c = data[off + j]! - mean[j]!;
      m2[j]! += c * c;
    }
  }
  const std = new Float64Array(d);
  for (let j = 0; j < d; j++) {
    const s = Math.sqrt(m2[j]! / idx.length);
    std[j] = s > 1e-12 * (Math.abs(mean[j]!) + 1) ? s : 1;
  }
  return { mean, std };
}

/**
 * K = X̃·X̃ᵀ `[n, n]` (float64) of the standardised features X̃ = (X − mean) / std, computed in column chunks with
 * tf matMul (so the full standardised matrix never exists) and accumulated in float64.
 */
export async function standardizedGram(
  x: FeatureMatrix,
  stats: { mean: Float64Array; std: Float64Array },
  opts: { chunkElements?: number; onProgress?: (done: number, total: number) => void } = {},
): Promise<Float64Array> {
  const { data, n, d } = x;
  const k = new Float64Array(n * n);
  const chunk = Math.max(1, Math.min(d, Math.floor((opts.chunkElements ?? 1 << 22) / n)));
  const a = new Float32Array(n * chunk);
  const at = new Float32Array(n * chunk);
  for (let c0 = 0; c0 < d; c0 += chunk) {
    const c = Math.min(chunk, d - c0);
    for (let i = 0; i < n; i++) {
      const src = i * d + c0;
      const dst = i * c;
      for (let j = 0; j < c; j++) {
        const v = (data[src + j]! - stats.mean[c0 + j]!) / stats.std[c0 + j]!;
        a[dst + j] = v;
        at[j * n + i] = v;
      }
    }
    const part = tf.tidy(() => tf.matMul(tf.tensor2d(a.subarray(0, n * c), [n, c]), tf.tensor2d(at.subarray(0, n * c), [c, n])));
    const vals = (await part.data()) as Float32Array;
    part.dispose();
    for (let i = 0; i < n * n; i++) k[i]! += vals[i]!;
    opts.onProgress?.(Math.min(d, c0 + c), d);
  }
  // symmetrise (float32 matmul blocks are symmetric up to rounding)
  for (let i = 0; i < n; i++)
    for (let j = 0; j < i; j++) {
      const v = 0.5 * (k[i * n + j]! + k[j * n + i]!);
      k[i * n + j] = v;
      k[j * n + i] = v;
    }
  return k;
}

/** The sub-block K[rows, cols] as a dense row-major Float64Array. */
export function subBlock(k: Float64Array, n: number, rows: ArrayLike<number>, cols: ArrayLike<number>): Float64Array {
  const out = new Float64Array(rows.length * cols.length);
  for (let i = 0; i < rows.length; i++) {
    const src = rows[i]! * n;
    const dst = i * cols.length;
    for (let j = 0; j < cols.length; j++) out[dst + j] = k[src + cols[j]!]!;
  }
  return out;
}

// ───────────────────────────── kernel logistic regression ─────────────────────────────

export interface KernelLogisticFit {
  /** Dual coefficients, w = Σ α_i x̃_i. */
  alpha: Float64Array;
  bias: number;
  iterations: number;
  /** Final objective Σ ℓ + λ/2 αᵀKα. */
  objective: number;
}

const softplus = (f: number) => (f > 0 ? f + Math.log1p(Math.exp(-f)) : Math.log1p(Math.exp(f)));
const sigmoid = (f: number) => (f >= 0 ? 1 / (1 + Math.exp(-f)) : Math.exp(f) / (1 + Math.exp(f)));

/**
 * L2-regularised logistic regression in the dual: minimise Σ_i [log(1 + e^{f_i}) − y_i f_i] + λ/2 αᵀKα with
 * f = Kα + b (b unpenalised), by Newton/IRLS steps with step halving. `k` is the m×m Gram of the training rows.
 */
export function fitKernelLogistic(
  k: Float64Array,
  m: number,
  y: ArrayLike<number>,
  lambda: number,
  init?: { alpha: Float64Array; bias: number },
  opts: { maxIterations?: number; tolerance?: number } = {},
): KernelLogisticFit {
  if (!(lambda > 0)) throw new ProbeInputError(`fitKernelLogistic: lambda must be > 0, got ${lambda}.`);
  const maxIt = opts.maxIterations ?? 100;
  const tol = opts.tolerance ?? 1e-9;
  let alpha = init ? Float64Array.from(init.alpha) : new Float64Array(m);
  let ybar = 0;
  for (let i = 0; i < m; i++) ybar += y[i]!;
  ybar = Math.min(Math.max(ybar / m, 1e-6), 1 - 1e-6);
  let bias = init ? init.bias : Math.log(ybar / (1 - ybar));
  const kmul = (v: Float64Array) => {
    const out = new Float64Array(m);
    for (let i = 0; i < m; i++) {
      let s = 0;
      const r = i * m;
      for (let j = 0; j < m; j++) s += k[r + j]! * v[j]!;
      out[i] = s;
    }
    return out;
  };
  let ka = kmul(alpha);
  const objective = (kav: Float64Array, a: Float64Array, b: number) => {
    let s = 0;
    for (let i = 0; i < m; i++) {
      const f = kav[i]! + b;
      s += softplus(f) - y[i]! * f;
    }
    return s + 0.5 * lambda * dot(a, kav);
  };
  let obj = objective(ka, alpha, bias);
  const a = new Float64Array(m * m);
  const sw = new Float64Array(m);
  const t = new Float64Array(m);
  let it = 0;
  for (; it < maxIt; it++) {
    for (let i = 0; i < m; i++) {
      const f = ka[i]! + bias;
      const p = sigmoid(f);
      const w = Math.max(p * (1 - p), 1e-12);
      sw[i] = Math.sqrt(w);
      const z = f - (p - y[i]!) / w; // IRLS working response
      t[i] = sw[i]! * z;
    }
    for (let i = 0; i < m; i++) {
      const r = i * m;
      for (let j = 0; j <= i; j++) a[r + j] = sw[i]! * k[r + j]! * sw[j]!;
      a[r + i]! += lambda;
    }
    choleskyInPlace(a, m);
    const u = choleskySolve(a, m, t);
    const v = choleskySolve(a, m, sw);
    const bNew = dot(sw, u) / dot(sw, v);
    const aNew = new Float64Array(m);
    for (let i = 0; i < m; i++) aNew[i] = sw[i]! * (u[i]! - bNew * v[i]!);
    const kaNew = kmul(aNew);
    // step halving on the exact objective (the objective is convex; the full step almost always decreases it)
    let step = 1;
    let accepted = false;
    let aTry = aNew;
    let kaTry = kaNew;
    let bTry = bNew;
    let objTry = objective(kaTry, aTry, bTry);
    for (let h = 0; h < 40; h++) {
      if (objTry <= obj + 1e-12 * Math.abs(obj)) {
        accepted = true;
        break;
      }
      step /= 2;
      aTry = new Float64Array(m);
      kaTry = new Float64Array(m);
      for (let i = 0; i < m; i++) {
        aTry[i] = alpha[i]! + step * (aNew[i]! - alpha[i]!);
        kaTry[i] = ka[i]! + step * (kaNew[i]! - ka[i]!);
      }
      bTry = bias + step * (bNew - bias);
      objTry = objective(kaTry, aTry, bTry);
    }
    if (!accepted) break;
    let maxDf = 0;
    for (let i = 0; i < m; i++) maxDf = Math.max(maxDf, Math.abs(kaTry[i]! + bTry - ka[i]! - bias));
    const dObj = obj - objTry;
    alpha = aTry;
    ka = kaTry;
    bias = bTry;
    obj = objTry;
    if (dObj <= tol * Math.max(1, Math.abs(obj)) || maxDf < 1e-7) {
      it++;
      break;
    }
  }
  return { alpha, bias, iterations: it, objective: obj };
}

/** Decision values f = K[test, train]·α + b. */
export function kernelDecision(k: Float64Array, n: number, trainIdx: ArrayLike<number>, testIdx: ArrayLike<number>, fit: KernelLogisticFit): Float64Array {
  const out = new Float64Array(testIdx.length);
  for (let i = 0; i < testIdx.length; i++) {
    const r = testIdx[i]! * n;
    let s = fit.bias;
    for (let j = 0; j < trainIdx.length; j++) s += k[r + trainIdx[j]!]! * fit.alpha[j]!;
    out[i] = s;
  }
  return out;
}

// ───────────────────────────── cross-validation ─────────────────────────────

/**
 * Stratified k-fold assignment (fold id per row): rows are stratified by (group, label), shuffled with the seed,
 * and dealt round-robin with a running offset so every fold gets the same class (and subset) balance ±1.
 */
export function stratifiedKFold(labels: ArrayLike<number>, k: number, seed: number, groups?: ArrayLike<number>, rows?: ArrayLike<number>): Int32Array {
  const idx = rows ? Array.from(rows) : Array.from({ length: labels.length }, (_, i) => i);
  const strata = new Map<string, number[]>();
  for (const i of idx) {
    const key = `${groups ? groups[i] : 0}|${labels[i]}`;
    (strata.get(key) ?? strata.set(key, []).get(key)!).push(i);
  }
  const fold = new Int32Array(labels.length).fill(-1);
  const rng = new Rng(seed);
  let offset = 0;
  for (const key of [...strata.keys()].sort()) {
    const members = rng.shuffle([...strata.get(key)!].sort((a, b) => a - b));
    members.forEach((i, p) => (fold[i] = (offset + p) % k));
    offset = (offset + members.length) % k;
  }
  return fold;
}

/** Default regularisation grid, relative to the mean squared norm of the standardised rows (mean diag K). */
export const DEFAULT_RELATIVE_LAMBDAS = [1e-4, 1e-3, 1e-2, 1e-1, 1, 10, 100];

export interface ProbeOptions {
  folds?: number;
  innerFolds?: number;
  seed?: number;
  /** λ values relative to mean(diag K) of the training rows (default DEFAULT_RELATIVE_LAMBDAS). */
  relativeLambdas?: number[];
  onProgress?: (stage: string, done: number, total: number) => void;
}

export interface ProbeCvResult {
  /** Mean held-out accuracy over the outer folds (fraction). */
  accuracy: number;
  /** Standard deviation (ddof 0) of the per-fold accuracies. */
  std: number;
  folds: number;
  n: number;
  d: number;
  foldAccuracies: number[];
  /** The relative λ chosen by the inner CV in each outer fold. */
  foldLambdas: number[];
  /** Pooled held-out accuracy per group id (when groups are given). */
  perGroup: { group: number; name: string; n: number; accuracy: number; std: number }[];
  /** Held-out probability of class 1 per row. */
  heldOutProbability: Float64Array;
}

function checkDataset(ds: ProbeDataset, folds: number): void {
  const { n, d, data } = ds.features;
  if (data.length !== n * d) throw new ProbeInputError(`features: expected ${n}×${d} = ${n * d} values, got ${data.length}.`);
  if (ds.labels.length !== n) throw new ProbeInputError(`labels: length ${ds.labels.length} does not match the ${n} feature rows.`);
  if (ds.groups && ds.groups.length !== n) throw new ProbeInputError(`groups: length ${ds.groups.length} does not match the ${n} feature rows.`);
  let ones = 0;
  for (let i = 0; i < n; i++) ones += ds.labels[i]!;
  const minority = Math.min(ones, n - ones);
  if (minority === 0) throw new ProbeInputError(`labels: expected two classes (0 and 1), got only class ${ones > 0 ? 1 : 0} in all ${n} rows.`);
  if (minority < folds)
    throw new ProbeInputError(`labels: the smaller class has ${minority} rows, fewer than the ${folds} folds stratified k-fold needs.`);
}

/** Choose λ (relative) by stratified inner CV on the given training rows; returns the best and the scores. */
function selectLambda(k: Float64Array, n: number, rows: number[], ds: ProbeDataset, rel: number[], innerFolds: number, seed: number): number {
  if (rel.length === 1) return rel[0]!;
  const fold = stratifiedKFold(ds.labels, innerFolds, seed, ds.groups, rows);
  const correct = new Float64Array(rel.length);
  const logloss = new Float64Array(rel.length);
  const order = rel.map((_, i) => i).sort((a, b) => rel[b]! - rel[a]!); // strong → weak regularisation (warm starts)
  for (let f = 0; f < innerFolds; f++) {
    const tr = rows.filter((i) => fold[i] !== f);
    const te = rows.filter((i) => fold[i] === f);
    const ktr = subBlock(k, n, tr, tr);
    const scale = meanDiag(ktr, tr.length);
    const y = tr.map((i) => ds.labels[i]!);
    let init: KernelLogisticFit | undefined;
    for (const li of order) {
      init = fitKernelLogistic(ktr, tr.length, y, rel[li]! * scale, init);
      const dec = kernelDecision(k, n, tr, te, init);
      te.forEach((i, j) => {
        const p = sigmoid(dec[j]!);
        if ((p >= 0.5 ? 1 : 0) === ds.labels[i]) correct[li]!++;
        logloss[li]! -= Math.log(Math.max(1e-15, ds.labels[i] ? p : 1 - p));
      });
    }
  }
  // highest accuracy; ties → lower log-loss, then stronger regularisation
  let best = order[0]!;
  for (const li of order) if (correct[li]! > correct[best]! || (correct[li] === correct[best] && logloss[li]! < logloss[best]! - 1e-9)) best = li;
  return rel[best]!;
}

function meanDiag(k: Float64Array, m: number): number {
  let s = 0;
  for (let i = 0; i < m; i++) s += k[i * m + i]!;
  return Math.max(s / m, 1e-12);
}

function meanStd(xs: number[]): [number, number] {
  const mu = xs.reduce((a, b) => a + b, 0) / xs.length;
  return [mu, Math.sqrt(xs.reduce((a, b) => a + (b - mu) ** 2, 0) / xs.length)];
}

/**
 * Stratified k-fold cross-validation of the probe on a precomputed standardised Gram matrix (see
 * `standardizedGram`), λ chosen by inner CV in each outer fold.
 */
export function crossValidateProbe(k: Float64Array, ds: ProbeDataset, opts: ProbeOptions = {}): ProbeCvResult {
  const folds = opts.folds ?? 5;
  const innerFolds = opts.innerFolds ?? 3;
  const seed = opts.seed ?? 0;
  const rel = opts.relativeLambdas ?? DEFAULT_RELATIVE_LAMBDAS;
  if (!(Number.isInteger(folds) && folds >= 2)) throw new ProbeInputError(`folds must be an integer ≥ 2, got ${folds}.`);
  if (!(Number.isInteger(innerFolds) && innerFolds >= 2)) throw new ProbeInputError(`innerFolds must be an integer ≥ 2, got ${innerFolds}.`);
  checkDataset(ds, folds);
  const n = ds.features.n;
  if (k.length !== n * n) throw new ProbeInputError(`gram: expected ${n}×${n}, got ${k.length} values.`);
  const fold = stratifiedKFold(ds.labels, folds, seed, ds.groups);
  const prob = new Float64Array(n);
  const foldAccuracies: number[] = [];
  const foldLambdas: number[] = [];
  const groupFold = new Map<number, number[][]>();
  for (let f = 0; f < folds; f++) {
    const tr: number[] = [];
    const te: number[] = [];
    for (let i = 0; i < n; i++) (fold[i] === f ? te : tr).push(i);
    const lam = selectLambda(k, n, tr, ds, rel, innerFolds, seed + 1000 * (f + 1));
    const ktr = subBlock(k, n, tr, tr);
    const fit = fitKernelLogistic(ktr, tr.length, tr.map((i) => ds.labels[i]!), lam * meanDiag(ktr, tr.length));
    const dec = kernelDecision(k, n, tr, te, fit);
    let correct = 0;
    te.forEach((i, j) => {
      prob[i] = sigmoid(dec[j]!);
      const ok = (prob[i]! >= 0.5 ? 1 : 0) === ds.labels[i] ? 1 : 0;
      correct += ok;
      if (ds.groups) {
        const g = ds.groups[i]!;
        const per = groupFold.get(g) ?? groupFold.set(g, Array.from({ length: folds }, () => [0, 0])).get(g)!;
        per[f]![0]! += ok;
        per[f]![1]!++;
      }
    });
    foldAccuracies.push(correct / te.length);
    foldLambdas.push(lam);
    opts.onProgress?.('cv', f + 1, folds);
  }
  const [accuracy, std] = meanStd(foldAccuracies);
  const perGroup = [...groupFold.entries()]
    .sort((a, b) => a[0] - b[0])
    .map(([g, per]) => {
      const nG = per.reduce((a, p) => a + p[1]!, 0);
      const okG = per.reduce((a, p) => a + p[0]!, 0);
      const [, s] = meanStd(per.filter((p) => p[1]! > 0).map((p) => p[0]! / p[1]!));
      return { group: g, name: ds.groupNames?.[g] ?? String(g), n: nG, accuracy: okG / nG, std: s };
    });
  return { accuracy, std, folds, n, d: ds.features.d, foldAccuracies, foldLambdas, perGroup, heldOutProbability: prob };
}

// ───────────────────────────── the saved probe ─────────────────────────────

/** A fitted linear probe in the original feature space: p(contact) = σ(w·((x − mean)/std) + b). */
export class LinearProbe {
  constructor(
    readonly weight: Float32Array,
    readonly bias: number,
    readonly mean: Float32Array,
    readonly std: Float32Array,
    readonly info: Record<string, string> = {},
  ) {
    if (mean.length !== weight.length || std.length !== weight.length)
      throw new ProbeInputError(`LinearProbe: weight, mean and std must have one length, got ${weight.length}, ${mean.length}, ${std.length}.`);
  }

  get dim(): number {
    return this.weight.length;
  }

  /** Decision values `[n]` of row-major features `[n, dim]`. */
  decision(x: FeatureMatrix): Float64Array {
    if (x.d !== this.dim) throw new ProbeInputError(`LinearProbe: features have ${x.d} dims, the probe expects ${this.dim}.`);
    // fold the standardisation into the weights: w' = w / std, b' = b − Σ w·mean/std
    const w = new Float64Array(this.dim);
    let b = this.bias;
    for (let j = 0; j < this.dim; j++) {
      w[j] = this.weight[j]! / this.std[j]!;
      b -= w[j]! * this.mean[j]!;
    }
    const out = new Float64Array(x.n);
    for (let i = 0; i < x.n; i++) {
      let s = b;
      const off = i * x.d;
      for (let j = 0; j < x.d; j++) s += w[j]! * x.data[off + j]!;
      out[i] = s;
    }
    return out;
  }

  /** Probability of class 1 (contact) per row. */
  predictProba(x: FeatureMatrix): Float64Array {
    return this.decision(x).map(sigmoid);
  }

  /** Save as safetensors: `weight [D]`, `bias []`, `mean [D]`, `std [D]` (F32) and the info as metadata. */
  save(path: string): void {
    writeSafetensors(
      path,
      {
        weight: { dtype: 'F32', shape: [this.dim], data: this.weight },
        bias: { dtype: 'F32', shape: [], data: Float32Array.of(this.bias) },
        mean: { dtype: 'F32', shape: [this.dim], data: this.mean },
        std: { dtype: 'F32', shape: [this.dim], data: this.std },
      },
      { metadata: { format: 'vrepa-linear-probe', ...this.info } },
    );
  }

  static load(path: string): LinearProbe {
    const f = SafetensorsFile.open(path);
    try {
      for (const key of ['weight', 'bias', 'mean', 'std'])
        if (!f.has(key)) throw new ProbeInputError(`${path}: not a saved probe (no tensor '${key}'; has ${f.keys().join(', ')}).`);
      const fl = (k: string) => Float32Array.from(f.read(k).data as Float32Array);
      const { format: _format, ...info } = f.metadata;
      return new LinearProbe(fl('weight'), fl('bias')[0]!, fl('mean'), fl('std'), info);
    } finally {
      f.close();
    }
  }
}

export interface TrainProbeResult {
  cv: ProbeCvResult;
  probe: LinearProbe;
  /** Relative λ chosen by CV on all rows for the final probe. */
  relativeLambda: number;
}

/**
 * The whole protocol: standardise, Gram matrix, stratified k-fold CV (inner CV for λ), then the final probe fitted
 * on all rows with λ chosen by CV on all rows, returned in primal form (w = X̃ᵀα) for saving.
 */
export async function trainProbe(ds: ProbeDataset, opts: ProbeOptions & { chunkElements?: number } = {}): Promise<TrainProbeResult> {
  const folds = opts.folds ?? 5;
  checkDataset(ds, folds);
  const { n, d, data } = ds.features;
  const stats = featureStats(ds.features);
  const k = await standardizedGram(ds.features, stats, {
    chunkElements: opts.chunkElements,
    onProgress: (done, total) => opts.onProgress?.('gram', done, total),
  });
  const cv = crossValidateProbe(k, ds, opts);
  const all = Array.from({ length: n }, (_, i) => i);
  const rel = selectLambda(k, n, all, ds, opts.relativeLambdas ?? DEFAULT_RELATIVE_LAMBDAS, opts.innerFolds ?? 3, (opts.seed ?? 0) + 7);
  const fit = fitKernelLogistic(k, n, Array.from(ds.labels), rel * meanDiag(k, n));
  const w = new Float64Array(d);
  for (let i = 0; i < n; i++) {
    const a = fit.alpha[i]!;
    if (a === 0) continue;
    const off = i * d;
    for (let j = 0; j < d; j++) w[j]! += a * ((data[off + j]! - stats.mean[j]!) / stats.std[j]!);
  }
  const probe = new LinearProbe(Float32Array.from(w), fit.bias, Float32Array.from(stats.mean), Float32Array.from(stats.std), {
    relative_lambda: String(rel),
    lambda: String(rel * meanDiag(k, n)),
    cv_accuracy: String(cv.accuracy),
    cv_std: String(cv.std),
    folds: String(folds),
    n: String(n),
  });
  return { cv, probe, relativeLambda: rel };
}

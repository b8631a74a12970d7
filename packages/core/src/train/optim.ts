/**
 * AdamW with PyTorch's semantics (decoupled weight decay; `torch.optim.AdamW`, non-amsgrad), the
 * diffusers LR schedules, and global-norm gradient clipping (`torch.nn.utils.clip_grad_norm_`).
 * The moments are plain tensors owned here, so a checkpoint can save and restore them exactly.
 */
import * as tf from '@tensorflow/tfjs';

export type LrSchedulerKind = 'constant' | 'constant_with_warmup' | 'linear' | 'cosine';

/**
 * The LR multiplier for optimizer step `k` (0-based: the k-th update), as diffusers' `get_scheduler`
 * LambdaLR gives it: the first update of a warmed-up run uses lr·0 (warmup counts from 0).
 */
export function lrLambda(kind: LrSchedulerKind, k: number, warmup: number, total: number): number {
  if (kind === 'constant') return 1;
  if (k < warmup) return k / Math.max(1, warmup);
  if (kind === 'constant_with_warmup') return 1;
  const progress = (k - warmup) / Math.max(1, total - warmup);
  if (kind === 'linear') return Math.max(0, (total - k) / Math.max(1, total - warmup));
  return Math.max(0, 0.5 * (1 + Math.cos(Math.PI * progress)));
}

export interface AdamWOptions {
  lr: number;
  beta1: number;
  beta2: number;
  eps: number;
  weightDecay: number;
  /** parameters in no-decay groups (e.g. biases, norms, position tables as the official MAE recipes): weight decay 0 for them */
  noDecay?: (name: string) => boolean;
  /** largest fused group in elements (default ADAMW_FUSE_MAX_ELEMENTS, or 0 when VREPA_ADAMW_FUSE=0; 0: every parameter alone) */
  fuseMaxElements?: number;
  /**
   * Use the native binding's one-call AdamW (`fusedAdamW`, core's native patch 30) when the backend is
   * tfjs-node with that patch (default: yes unless VREPA_ADAMW_NATIVE=0). It needs every parameter in a
   * group of its own, so it is only used when `fuseMaxElements` is left out.
   */
  native?: boolean;
}

/** The parts of tfjs-node's NodeJSKernelBackend (and core's binding patch 30) the native AdamW uses. */
interface NativeAdamWBackend {
  binding: {
    fusedAdamW(ids: Int32Array, decay: Uint8Array, scalars: Float32Array, replace?: Uint8Array): Int32Array;
    sumSquares?(ids: Int32Array): number;
    isUsingGpuDevice?(): boolean;
    TF_FLOAT: number;
  };
  tensorMap: { has(dataId: object): boolean; get(dataId: object): { refCount: number } | undefined };
  getInputTensorIds(tensors: tf.Tensor[]): number[];
  createOutputTensor(metadata: { id: number; shape: number[]; dtype: number }): tf.Tensor;
}

/**
 * The active backend when it can run the native AdamW: tfjs-node on the CPU, its binding built with
 * core's patch 30 (`vrepa backend install-native`). Undefined on wasm/cpu and on an unpatched binding.
 */
export function nativeAdamWBackend(): NativeAdamWBackend | undefined {
  if (tf.getBackend() !== 'tensorflow') return undefined;
  const b = tf.backend() as unknown as Partial<NativeAdamWBackend>;
  if (typeof b.binding?.fusedAdamW !== 'function' || typeof b.getInputTensorIds !== 'function' || typeof b.createOutputTensor !== 'function') return undefined;
  if (b.binding.isUsingGpuDevice?.()) return undefined;
  return b as NativeAdamWBackend;
}

/**
 * Official VideoMAE / MAE `utils.cosine_scheduler` value for iteration `i` (0-based): linear warm-up from
 * `warmupStart` to `base` over `warmup` iterations (`np.linspace`, both ends included), then
 * `final + ½(base − final)(1 + cos(π·j / (total − warmup)))` for j = i − warmup.
 */
export function cosineWarmupValue(i: number, o: { base: number; final: number; total: number; warmup: number; warmupStart?: number }): number {
  const { base, final, total, warmup } = o;
  const start = o.warmupStart ?? 0;
  if (i < warmup) return warmup === 1 ? start : start + ((base - start) * i) / (warmup - 1);
  const n = Math.max(1, total - warmup);
  const j = Math.min(i - warmup, n - 1);
  return final + 0.5 * (base - final) * (1 + Math.cos((Math.PI * j) / n));
}

/**
 * Largest number of elements updated as one fused buffer. Parameters are fused into groups of up to this
 * size (a larger parameter is a group of its own), so the transient concatenations of parameters and
 * gradients stay small next to the model while a small model's update is a handful of groups.
 */
export const ADAMW_FUSE_MAX_ELEMENTS = 1 << 22;

/**
 * Parameters larger than this are updated alone, as before fusing: their ops are long enough that the
 * per-op overhead does not matter, and a concatenation would only add memory traffic to a memory-bound
 * update (a large model's AdamW step stays what it was).
 */
export const ADAMW_FUSE_MAX_PARAM = 1 << 16;

/**
 * Parameters updated together: same rank, same trailing dimensions (so they concatenate along axis 0 and
 * split back into their shapes without any reshape), same weight-decay group. Their moments live as one
 * buffer [Σ rows, ...trailing] (in the parameter's shape for a lone parameter).
 */
interface FusedGroup {
  names: string[];
  /** each parameter's size along axis 0 */
  rows: number[];
  decay: boolean;
  m: tf.Tensor;
  v: tf.Tensor;
}

const fuse = (ts: tf.Tensor[]): tf.Tensor => (ts.length === 1 ? ts[0]! : tf.concat(ts, 0));

/**
 * AdamW over named variables; `step` counts completed updates (torch's `state['step']`).
 *
 * Multi-tensor: parameters of equal rank and trailing dimensions, up to ADAMW_FUSE_MAX_PARAM elements each, are
 * fused into groups (ADAMW_FUSE_MAX_ELEMENTS) and each group is updated with one chain of elementwise ops over its
 * concatenation: 3 ops per group (concatenate parameters and gradients, split back) plus 13, instead of 13
 * per parameter (the tiny preset: 72 parameters in 9 groups). Elementwise float32 ops give the same bits on
 * a concatenation as on its pieces, so the result is bit-identical to the per-tensor update (tested).
 * `m` and `v` (torch's exp_avg, exp_avg_sq) are per-parameter views made on demand, valid until the next
 * apply / load / dispose.
 */
export class AdamW {
  step = 0;
  private readonly groups: FusedGroup[] = [];
  /** every parameter is a group of its own and the native AdamW was asked for (see AdamWOptions.native) */
  private readonly nativeLayout: boolean;
  private views?: { m: Map<string, tf.Tensor>; v: Map<string, tf.Tensor>; owned: tf.Tensor[] };

  constructor(
    readonly params: Map<string, tf.Variable>,
    readonly opts: AdamWOptions,
  ) {
    // VREPA_ADAMW_FUSE=0: every parameter alone, the per-tensor op sequence (to compare in benchmarks)
    const env = typeof process !== 'undefined' ? process.env : {};
    const envOff = env?.VREPA_ADAMW_FUSE === '0';
    // the native AdamW (one binding call for all parameters) needs every parameter alone
    this.nativeLayout = opts.fuseMaxElements === undefined && (opts.native ?? env?.VREPA_ADAMW_NATIVE !== '0') && nativeAdamWBackend() !== undefined;
    const maxFuse = this.nativeLayout ? 0 : (opts.fuseMaxElements ?? (envOff ? 0 : ADAMW_FUSE_MAX_ELEMENTS));
    const open = new Map<string, { names: string[]; rows: number[]; decay: boolean; size: number }>();
    const closed: Array<{ names: string[]; rows: number[]; decay: boolean }> = [];
    for (const [n, p] of params) {
      const decay = !opts.noDecay?.(n);
      // rank-0 parameters cannot be concatenated, large ones gain nothing from it: alone
      const alone = p.rank === 0 || p.size > Math.min(maxFuse, ADAMW_FUSE_MAX_PARAM);
      const key = alone ? `alone:${n}` : `${decay}:${p.rank}:${p.shape.slice(1).join('x')}`;
      let g = open.get(key);
      if (g && g.size + p.size > maxFuse) {
        closed.push(g);
        g = undefined;
      }
      if (!g) {
        g = { names: [], rows: [], decay, size: 0 };
        open.set(key, g);
      }
      g.names.push(n);
      g.rows.push(p.rank === 0 ? 1 : p.shape[0]!);
      g.size += p.size;
    }
    for (const g of [...closed, ...open.values()]) {
      const first = params.get(g.names[0]!)!;
      const shape = g.names.length === 1 ? first.shape : [g.rows.reduce((a, b) => a + b, 0), ...first.shape.slice(1)];
      this.groups.push({ names: g.names, rows: g.rows, decay: g.decay, m: tf.zeros(shape), v: tf.zeros(shape) });
    }
  }

  /** First moments (exp_avg) by parameter name: views valid until the next apply / load / dispose. */
  get m(): Map<string, tf.Tensor> {
    return this.materialize().m;
  }

  /** Second moments (exp_avg_sq) by parameter name: views valid until the next apply / load / dispose. */
  get v(): Map<string, tf.Tensor> {
    return this.materialize().v;
  }

  private materialize(): { m: Map<string, tf.Tensor>; v: Map<string, tf.Tensor> } {
    if (this.views) return this.views;
    const views = { m: new Map<string, tf.Tensor>(), v: new Map<string, tf.Tensor>(), owned: [] as tf.Tensor[] };
    for (const g of this.groups) {
      for (const [key, flat] of [['m', g.m], ['v', g.v]] as const) {
        const parts = this.unflatten(g, flat);
        if (g.names.length > 1) views.owned.push(...parts);
        g.names.forEach((n, i) => views[key].set(n, parts[i]!));
      }
    }
    this.views = views;
    return views;
  }

  private dropViews(): void {
    if (this.views) tf.dispose(this.views.owned);
    this.views = undefined;
  }

  /** The group's buffer as per-parameter tensors (the buffer itself for a lone parameter). */
  private unflatten(g: FusedGroup, fused: tf.Tensor): tf.Tensor[] {
    return g.names.length === 1 ? [fused] : tf.split(fused, g.rows, 0);
  }

  /**
   * One update with the given gradients (same names as the params) at learning rate `lr`. `gradScale`
   * (gradient clipping's coefficient, see clipCoefficient) multiplies every gradient first, as
   * `tf.mul(g, gradScale)` would (the same float32 products), without making the scaled tensors.
   */
  apply(grads: Map<string, tf.Tensor>, lr: number, gradScale = 1): void {
    this.dropViews();
    const { beta1: b1, beta2: b2, eps, weightDecay } = this.opts;
    this.step += 1;
    const bc1 = 1 - b1 ** this.step;
    const bc2 = 1 - b2 ** this.step;
    const stepSize = lr / bc1;
    const sqrtBc2 = Math.sqrt(bc2);
    const scalars = [b1, 1 - b1, b2, 1 - b2, sqrtBc2, eps, stepSize, 1 - lr * weightDecay];
    if (gradScale !== 1) scalars.push(gradScale);
    if (this.nativeLayout && this.applyNative(grads, scalars, lr > 0 && weightDecay > 0)) return;
    if (gradScale !== 1) {
      const scaled = new Map([...grads].map(([n, g]) => [n, tf.mul(g, gradScale)] as const));
      try {
        this.step -= 1; // counted again by the call below
        this.apply(scaled, lr);
      } finally {
        tf.dispose([...scaled.values()]);
      }
      return;
    }
    // The step's scalars, made once and shared by every group (the float32 values a JS number operand
    // would be converted to, so the same bits; on the native backend each JS operand costs a tensor upload).
    const k = tf.tidy(() => {
      const f = (x: number) => tf.keep(tf.scalar(x, 'float32'));
      return { b1: f(b1), c1: f(1 - b1), b2: f(b2), c2: f(1 - b2), sqrtBc2: f(sqrtBc2), eps: f(eps), stepSize: f(stepSize), decay: f(1 - lr * weightDecay) };
    });
    // torch's update, elementwise (the same ops, in the same order, on one tensor or on a concatenation)
    const update = (p: tf.Tensor, g: tf.Tensor, m0: tf.Tensor, v0: tf.Tensor, wd: number) => {
      const decayed = wd > 0 && lr > 0 ? tf.mul(p, wd === weightDecay ? k.decay : 1 - lr * wd) : p;
      const m = tf.add(tf.mul(m0, k.b1), tf.mul(g, k.c1));
      const v = tf.add(tf.mul(v0, k.b2), tf.mul(tf.square(g), k.c2));
      const denom = tf.add(tf.div(tf.sqrt(v), k.sqrtBc2), k.eps);
      return [m, v, tf.sub(decayed, tf.mul(tf.div(m, denom), k.stepSize))] as const;
    };
    try {
      this.updateGroups(grads, update, weightDecay);
    } finally {
      tf.dispose(Object.values(k));
    }
  }

  /**
   * The whole update in one native call (binding patch 30): the same float32 arithmetic, in the same
   * order, as `update` in apply(), so the same bits. False (nothing done) when the backend cannot run it
   * or a tensor does not live on it; apply() then runs the op chain.
   *
   * The results are new buffers. A parameter or moment whose dataId only it holds (refCount 1: no clone,
   * view or other tensor shares it) keeps its dataId, which then names the new buffer (the binding swaps
   * the handle behind the id), so nothing has to be created, assigned or disposed in tfjs; one that is
   * shared gets a new tensor (assigned to the variable), and the sharers keep the old values.
   */
  private applyNative(grads: Map<string, tf.Tensor>, scalars: number[], decayOn: boolean): boolean {
    const nb = nativeAdamWBackend();
    if (!nb) return false;
    const work: Array<{ g: FusedGroup; p: tf.Variable; grad: tf.Tensor }> = [];
    for (const g of this.groups) {
      const grad = grads.get(g.names[0]!);
      if (!grad) continue; // torch skips a parameter whose p.grad is None
      work.push({ g, p: this.params.get(g.names[0]!)!, grad });
    }
    const inputs = work.flatMap(({ g, p, grad }) => [p, grad, g.m, g.v]);
    if (!inputs.every((t) => t.dtype === 'float32' && !t.isDisposed && nb.tensorMap.has(t.dataId))) return false;
    if (!work.every(({ p, grad }) => grad.size === p.size)) return false;
    const ids = Int32Array.from(nb.getInputTensorIds(inputs));
    const decay = Uint8Array.from(work, ({ g }) => (decayOn && g.decay ? 1 : 0));
    const sole = (t: tf.Tensor) => (nb.tensorMap.get(t.dataId)?.refCount === 1 ? 1 : 0);
    const replace = new Uint8Array(3 * work.length);
    work.forEach(({ g, p }, i) => {
      replace[3 * i] = sole(p);
      replace[3 * i + 1] = sole(g.m);
      replace[3 * i + 2] = sole(g.v);
    });
    const out = nb.binding.fusedAdamW(ids, decay, Float32Array.from(scalars), replace);
    const make = (id: number, shape: number[]) => tf.keep(nb.createOutputTensor({ id, shape, dtype: nb.binding.TF_FLOAT }));
    work.forEach(({ g, p }, i) => {
      if (!replace[3 * i]) {
        const next = make(out[3 * i]!, p.shape);
        p.assign(next);
        next.dispose();
      }
      if (!replace[3 * i + 1]) {
        g.m.dispose();
        g.m = make(out[3 * i + 1]!, p.shape);
      }
      if (!replace[3 * i + 2]) {
        g.v.dispose();
        g.v = make(out[3 * i + 2]!, p.shape);
      }
    });
    return true;
  }

  private updateGroups(
    grads: Map<string, tf.Tensor>,
    update: (p: tf.Tensor, g: tf.Tensor, m0: tf.Tensor, v0: tf.Tensor, wd: number) => readonly [tf.Tensor, tf.Tensor, tf.Tensor],
    weightDecay: number,
  ): void {
    for (const g of this.groups) {
      const wd = g.decay ? weightDecay : 0;
      const ps = g.names.map((n) => this.params.get(n)!);
      const gs = g.names.map((n) => grads.get(n));
      if (gs.every((x) => x !== undefined)) {
        const [m, v, nextParams] = tf.tidy(() => {
          const [m, v, next] = update(fuse(ps), fuse(gs as tf.Tensor[]), g.m, g.v, wd);
          return [m, v, this.unflatten(g, next)] as const;
        });
        tf.dispose([g.m, g.v]);
        g.m = m;
        g.v = v;
        ps.forEach((p, i) => p.assign(nextParams[i]!));
        tf.dispose(nextParams);
        continue;
      }
      if (gs.every((x) => x === undefined)) continue;
      // Some parameters of the group have no gradient: torch skips them (p.grad is None); per tensor.
      const [m, v] = tf.tidy(() => {
        const ms = this.unflatten(g, g.m);
        const vs = this.unflatten(g, g.v);
        gs.forEach((grad, i) => {
          if (!grad) return;
          const [mi, vi, next] = update(ps[i]!, grad, ms[i]!, vs[i]!, wd);
          ms[i] = mi;
          vs[i] = vi;
          ps[i]!.assign(next);
        });
        return [fuse(ms), fuse(vs)];
      });
      tf.dispose([g.m, g.v]);
      g.m = m;
      g.v = v;
    }
  }

  /** Replace the moments (from a checkpoint); the tensors are copied. */
  load(m: Map<string, tf.Tensor>, v: Map<string, tf.Tensor>, step: number): void {
    for (const [n, p] of this.params) {
      for (const [what, src] of [['exp_avg', m], ['exp_avg_sq', v]] as const) {
        const t = src.get(n);
        if (!t) throw new Error(`optimizer state: ${what} for parameter ${n} is missing`);
        if (t.shape.join() !== p.shape.join()) throw new Error(`optimizer state: ${what} for ${n} has shape [${t.shape}], expected [${p.shape}]`);
      }
    }
    // new buffers first: `m` and `v` may be this optimizer's own views (a round trip), dropped below
    const fresh = this.groups.map((g) =>
      tf.tidy(() => [m, v].map((src) => (g.names.length === 1 ? tf.clone(src.get(g.names[0]!)!) : fuse(g.names.map((n) => src.get(n)!))))),
    );
    this.dropViews();
    this.groups.forEach((g, i) => {
      tf.dispose([g.m, g.v]);
      [g.m, g.v] = fresh[i] as [tf.Tensor, tf.Tensor];
    });
    this.step = step;
  }

  dispose(): void {
    this.dropViews();
    for (const g of this.groups) tf.dispose([g.m, g.v]);
    this.groups.length = 0;
  }
}

/**
 * Global L2 norm of the gradients, as a JS number: on tfjs-node with core's binding patch 30 one native
 * call summing the squares in float64 (VREPA_ADAMW_NATIVE=0: off); elsewhere float32 per-tensor sums of
 * squares (as torch's foreach norm), summed and rooted in float32.
 */
export function globalNorm(grads: Iterable<tf.Tensor>): number {
  const list = [...grads];
  if (list.length === 0) return 0;
  const nb = typeof process !== 'undefined' && process.env?.VREPA_ADAMW_NATIVE === '0' ? undefined : nativeAdamWBackend();
  if (nb?.binding.sumSquares && list.every((t) => t.dtype === 'float32' && !t.isDisposed && nb.tensorMap.has(t.dataId))) {
    return Math.sqrt(nb.binding.sumSquares(Int32Array.from(nb.getInputTensorIds(list))));
  }
  return tf.tidy(() => tf.sqrt(tf.addN(list.map((g) => tf.sum(tf.square(g))))).dataSync()[0]!);
}

/**
 * torch.nn.utils.clip_grad_norm_'s coefficient: min(1, max_norm / (norm + 1e-6)) (1 when `maxNorm` is
 * not positive or the norm is not finite), and the pre-clip norm. Pass `coef` to AdamW.apply as its
 * gradScale: the same update as clipGradients, without the scaled gradient tensors.
 */
export function clipCoefficient(grads: Map<string, tf.Tensor>, maxNorm: number): { coef: number; norm: number } {
  const norm = globalNorm(grads.values());
  if (!(maxNorm > 0) || !Number.isFinite(norm)) return { coef: 1, norm };
  return { coef: Math.min(1, maxNorm / (norm + 1e-6)), norm };
}

/**
 * torch.nn.utils.clip_grad_norm_: scale all gradients by min(1, max_norm / (norm + 1e-6)). Returns the
 * new gradient map (the input tensors are disposed when scaled) and the pre-clip norm.
 */
export function clipGradients(grads: Map<string, tf.Tensor>, maxNorm: number): { grads: Map<string, tf.Tensor>; norm: number } {
  const { coef, norm } = clipCoefficient(grads, maxNorm);
  if (coef >= 1) return { grads, norm };
  const out = new Map<string, tf.Tensor>();
  for (const [n, g] of grads) {
    out.set(n, tf.mul(g, coef));
    g.dispose();
  }
  return { grads: out, norm };
}

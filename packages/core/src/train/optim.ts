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

/** AdamW over named variables; `step` counts completed updates (torch's `state['step']`). */
export class AdamW {
  readonly m = new Map<string, tf.Tensor>();
  readonly v = new Map<string, tf.Tensor>();
  step = 0;

  constructor(
    readonly params: Map<string, tf.Variable>,
    readonly opts: AdamWOptions,
  ) {
    for (const [n, p] of params) {
      this.m.set(n, tf.zerosLike(p));
      this.v.set(n, tf.zerosLike(p));
    }
  }

  /** One update with the given gradients (same names as the params) at learning rate `lr`. */
  apply(grads: Map<string, tf.Tensor>, lr: number): void {
    const { beta1: b1, beta2: b2, eps, weightDecay } = this.opts;
    this.step += 1;
    const bc1 = 1 - b1 ** this.step;
    const bc2 = 1 - b2 ** this.step;
    const stepSize = lr / bc1;
    const sqrtBc2 = Math.sqrt(bc2);
    for (const [n, p] of this.params) {
      const g = grads.get(n);
      if (!g) continue; // no gradient: torch skips the parameter (p.grad is None)
      const wd = this.opts.noDecay?.(n) ? 0 : weightDecay;
      const [m, v, next] = tf.tidy(() => {
        const decayed = wd > 0 && lr > 0 ? tf.mul(p, 1 - lr * wd) : p;
        const m = tf.add(tf.mul(this.m.get(n)!, b1), tf.mul(g, 1 - b1));
        const v = tf.add(tf.mul(this.v.get(n)!, b2), tf.mul(tf.square(g), 1 - b2));
        const denom = tf.add(tf.div(tf.sqrt(v), sqrtBc2), eps);
        return [m, v, tf.sub(decayed, tf.mul(tf.div(m, denom), stepSize))];
      });
      this.m.get(n)!.dispose();
      this.v.get(n)!.dispose();
      this.m.set(n, m);
      this.v.set(n, v);
      p.assign(next);
      next.dispose();
    }
  }

  /** Replace the moments (from a checkpoint); the tensors are copied. */
  load(m: Map<string, tf.Tensor>, v: Map<string, tf.Tensor>, step: number): void {
    for (const [n, p] of this.params) {
      for (const [what, src, dst] of [['exp_avg', m, this.m], ['exp_avg_sq', v, this.v]] as const) {
        const t = src.get(n);
        if (!t) throw new Error(`optimizer state: ${what} for parameter ${n} is missing`);
        if (t.shape.join() !== p.shape.join()) throw new Error(`optimizer state: ${what} for ${n} has shape [${t.shape}], expected [${p.shape}]`);
        dst.get(n)!.dispose();
        dst.set(n, tf.clone(t));
      }
    }
    this.step = step;
  }

  dispose(): void {
    for (const t of [...this.m.values(), ...this.v.values()]) t.dispose();
    this.m.clear();
    this.v.clear();
  }
}

/** Global L2 norm of the gradients (float32 sum of squares, as torch's foreach norm), as a JS number. */
export function globalNorm(grads: Iterable<tf.Tensor>): number {
  const list = [...grads];
  if (list.length === 0) return 0;
  return tf.tidy(() => tf.sqrt(tf.addN(list.map((g) => tf.sum(tf.square(g))))).dataSync()[0]!);
}

/**
 * torch.nn.utils.clip_grad_norm_: scale all gradients by min(1, max_norm / (norm + 1e-6)). Returns the
 * new gradient map (the input tensors are disposed when scaled) and the pre-clip norm.
 */
export function clipGradients(grads: Map<string, tf.Tensor>, maxNorm: number): { grads: Map<string, tf.Tensor>; norm: number } {
  const norm = globalNorm(grads.values());
  if (!(maxNorm > 0) || !Number.isFinite(norm)) return { grads, norm };
  const coef = maxNorm / (norm + 1e-6);
  if (coef >= 1) return { grads, norm };
  const out = new Map<string, tf.Tensor>();
  for (const [n, g] of grads) {
    out.set(n, tf.mul(g, coef));
    g.dispose();
  }
  return { grads: out, norm };
}

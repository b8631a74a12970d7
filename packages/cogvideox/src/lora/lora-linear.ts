/**
 * A Linear layer that can carry a LoRA adapter (PEFT semantics): y = x·W + b + (α/r)·(x·A)·B, with
 * `lora_A.weight` PyTorch `[r, in]` (kaiming-uniform a=√5 init, i.e. U(±1/√in)) and `lora_B.weight`
 * PyTorch `[out, r]` (zeros), so a fresh adapter leaves the output unchanged. The adapter's
 * parameters are children named `lora_A` / `lora_B`, so the module's dotted names are PEFT's names
 * without the adapter name (`…attn1.to_q.lora_A.weight`). `merge()` folds (α/r)·A·B into W and
 * `unmerge()` takes it out again.
 */
import * as tf from '@tensorflow/tfjs';
import { Linear, type LinearOptions, type Rng } from '@vrepa/core';

export class LoraLinear extends Linear {
  private loraA: Linear | null = null;
  private loraB: Linear | null = null;
  private _rank = 0;
  private _alpha = 0;
  private _merged = false;
  /** When false the adapter is skipped (not merged and not added). */
  enabled = true;

  constructor(inFeatures: number, outFeatures: number, opts: LinearOptions = {}) {
    super(inFeatures, outFeatures, opts);
  }

  get hasLora(): boolean {
    return this.loraA !== null;
  }
  get rank(): number {
    return this._rank;
  }
  get alpha(): number {
    return this._alpha;
  }
  get merged(): boolean {
    return this._merged;
  }
  /** α / r (PEFT's `scaling`). */
  get scaling(): number {
    return this._rank ? this._alpha / this._rank : 0;
  }
  /** The adapter's A (stored `[in, r]`) and B (stored `[r, out]`) linears. */
  get lora(): { A: Linear; B: Linear } | null {
    return this.loraA && this.loraB ? { A: this.loraA, B: this.loraB } : null;
  }

  /** Attach an adapter of rank `rank` and scale `alpha / rank` (A random, B zero). Once per layer. */
  addLora(rank: number, alpha: number, opts: { rng?: Rng } = {}): void {
    if (this.loraA) throw new Error(`LoraLinear.addLora: this layer already has a LoRA adapter (rank ${this._rank})`);
    if (!Number.isInteger(rank) || rank < 1) throw new Error(`LoraLinear.addLora: rank must be a positive integer, got ${rank}`);
    if (!Number.isFinite(alpha) || alpha <= 0) throw new Error(`LoraLinear.addLora: alpha must be > 0, got ${alpha}`);
    this.loraA = this.module('lora_A', new Linear(this.inFeatures, rank, { bias: false, rng: opts.rng }));
    this.loraB = this.module('lora_B', new Linear(rank, this.outFeatures, { bias: false, init: 'zeros' }));
    this._rank = rank;
    this._alpha = alpha;
  }

  /** Change α (the scale α/r) of an attached, unmerged adapter. */
  setAlpha(alpha: number): void {
    if (this._merged) throw new Error('LoraLinear.setAlpha: unmerge the adapter first');
    if (!Number.isFinite(alpha) || alpha <= 0) throw new Error(`LoraLinear.setAlpha: alpha must be > 0, got ${alpha}`);
    this._alpha = alpha;
  }

  override forward(x: tf.Tensor): tf.Tensor {
    const base = super.forward(x);
    if (!this.loraA || !this.loraB || this._merged || !this.enabled) return base;
    return tf.tidy(() => {
      const delta = this.loraB!.forward(this.loraA!.forward(x));
      return tf.add(base, tf.mul(delta, this.scaling));
    });
  }

  /** The low-rank update (α/r)·A·B in the stored `[in, out]` layout. */
  private delta(): tf.Tensor {
    return tf.tidy(() => tf.mul(tf.matMul(this.loraA!.weight.value, this.loraB!.weight.value), this.scaling));
  }

  /** W ← W + (α/r)·A·B; the forward then skips the adapter. */
  merge(): void {
    if (!this.loraA || this._merged) return;
    tf.tidy(() => this.weight.value.assign(tf.add(this.weight.value, this.delta())));
    this._merged = true;
  }

  /** W ← W − (α/r)·A·B (inverse of merge, up to float32 rounding). */
  unmerge(): void {
    if (!this.loraA || !this._merged) return;
    tf.tidy(() => this.weight.value.assign(tf.sub(this.weight.value, this.delta())));
    this._merged = false;
  }
}

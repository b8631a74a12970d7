import * as tf from '@tensorflow/tfjs';
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { Rng, tensorLeakAcross } from '@vrepa/core';
import { tinyConfig } from './transformer/test-config.js';
import {
  COGVIDEOX_2B_SCHEDULER,
  COGVIDEOX_5B_SCHEDULER,
  CogVideoXDDIMScheduler,
  CogVideoXTransformer3DModel,
  addLora,
  diffusionLoss,
  sampleTimesteps,
  trainingLoss,
} from './index.js';

const sched2b = new CogVideoXDDIMScheduler(COGVIDEOX_2B_SCHEDULER);
const sched5b = new CogVideoXDDIMScheduler(COGVIDEOX_5B_SCHEDULER);

describe('diffusionLoss', () => {
  it('is 0 when the model predicts the true velocity (any t, both schedules)', () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 999 }), fc.integer({ min: 0, max: 999 }), fc.boolean(), fc.integer({ min: 0, max: 1e6 }), (t0, t1, five, seed) => {
        const s = five ? sched5b : sched2b;
        const r = Rng.fromSeed(seed);
        const ts = [t0, t1];
        return tf.tidy(() => {
          const x0 = r.randomTensor([2, 2, 4, 4, 3], 'normal');
          const eps = r.randomTensor([2, 2, 4, 4, 3], 'normal');
          const xt = s.addNoise(x0, eps, ts);
          const v = s.getVelocity(x0, eps, ts); // v = √ᾱ·ε − √(1−ᾱ)·x₀
          const l = diffusionLoss(v, xt, x0, ts, s).dataSync()[0]!;
          // float32 rounding of x̂₀ (≈1e-7) times the weight 1/(1−ᾱ) (≤ ~1200 at t = 0)
          return Math.abs(l) < 1e-6 * (1 / (1 - s.alphasCumprod[Math.min(t0, t1)]!));
        });
      }),
      { numRuns: 25 },
    );
  });

  it('matches the hand-derived per-sample weighted mean', () => {
    // two samples of 3 values; sample 2 has zero error, so loss = w₁·mean(e₁²)/2
    const ts = [10, 700];
    const x0 = [0.5, -1, 2, 0.25, 0.75, -0.5];
    const xt = [1, 0.5, -0.25, 0.3, -0.2, 0.9];
    const a = ts.map((t) => sched2b.alphasCumprod[t]!);
    // choose v so that x̂₀ = √ᾱ·x_t − √(1−ᾱ)·v is x₀ + δ with δ = [0.1, −0.2, 0.3] for sample 1, 0 for sample 2
    const delta = [0.1, -0.2, 0.3, 0, 0, 0];
    const v = x0.map((x, i) => {
      const b = i < 3 ? 0 : 1;
      return (Math.sqrt(a[b]!) * xt[i]! - (x + delta[i]!)) / Math.sqrt(1 - a[b]!);
    });
    const want = ((1 / (1 - a[0]!)) * (0.01 + 0.04 + 0.09)) / 3 / 2;
    const got = tf.tidy(() => diffusionLoss(tf.tensor(v, [2, 3]), tf.tensor(xt, [2, 3]), tf.tensor(x0, [2, 3]), ts, sched2b).dataSync()[0]!);
    expect(Math.abs(got - want) / want).toBeLessThan(2e-4);
  });

  it('refuses mismatched shapes and out-of-range timesteps', () => {
    tf.tidy(() => {
      const z = tf.zeros([2, 3]);
      expect(() => diffusionLoss(z, tf.zeros([2, 4]), z, [1, 2], sched2b)).toThrow(/noisyLatents shape \[2,4\] does not match the model output \[2,3\]/);
      expect(() => diffusionLoss(z, z, z, [1], sched2b)).toThrow(/1 timesteps for a batch of 2/);
      expect(() => diffusionLoss(z, z, z, [1, 1000], sched2b)).toThrow(/timestep 1000 is outside \[0, 1000\)/);
    });
  });
});

describe('sampleTimesteps', () => {
  it('draws integers uniformly in [0, T), reproducibly', () => {
    const a = sampleTimesteps(4000, 1000, Rng.fromSeed(3));
    expect(a).toEqual(sampleTimesteps(4000, 1000, Rng.fromSeed(3)));
    expect(a.every((t) => Number.isInteger(t) && t >= 0 && t < 1000)).toBe(true);
    const mean = a.reduce((s, t) => s + t, 0) / a.length;
    // uniform on 0..999: mean 499.5, sd of the mean ≈ 288.7/√4000 ≈ 4.6
    expect(Math.abs(mean - 499.5)).toBeLessThan(25);
    expect(new Set(a).size).toBeGreaterThan(950);
  });
});

describe('trainingLoss', () => {
  const cfg = tinyConfig({ sample_width: 12, sample_height: 12, sample_frames: 9 });
  // latents 3 frames of 12×12 → student grid 3×6×6; official path: drop frame 0, ×2 in time, conv /3 → 4×2×2
  const teacherGrid = { frames: 4, height: 2, width: 2 };

  it('total = diffusion + λ·alignment; gradients reach LoRA, projector and downsampler only', () => {
    const model = new CogVideoXTransformer3DModel(cfg, { rng: Rng.fromSeed(1), align: { align_layer: 1, align_dims: [8], projector_dim: 16 } });
    const r = Rng.fromSeed(2);
    const latents = r.randomTensor([1, 3, 12, 12, 4], 'normal');
    const text = r.randomTensor([1, 5, 12], 'normal');
    const teacher = r.randomTensor([1, 16, 8], 'normal');
    const noise = r.randomTensor([1, 3, 12, 12, 4], 'normal');
    try {
      addLora(model, { rank: 2, alpha: 1 }, { rng: Rng.fromSeed(4) });
      for (const lambda of [0.5, 0.25]) {
        const l = trainingLoss(model, sched2b, { latents, textEmbeddings: text, teacher, teacherGrid, timesteps: [321], noise, lambda });
        const [t, d, a] = [l.total, l.diffusion, l.alignment!].map((x) => x.dataSync()[0]!);
        expect(a).toBeGreaterThan(0);
        expect(Math.abs(t - (d + lambda * a))).toBeLessThan(1e-6 * Math.max(1, Math.abs(t)));
        tf.dispose([l.total, l.diffusion, l.alignment!]);
      }
      // default λ is the official 0.5
      const l0 = trainingLoss(model, sched2b, { latents, textEmbeddings: text, teacher, teacherGrid, timesteps: [321], noise });
      expect(l0.total.dataSync()[0]!).toBeCloseTo(l0.diffusion.dataSync()[0]! + 0.5 * l0.alignment!.dataSync()[0]!, 5);
      tf.dispose([l0.total, l0.diffusion, l0.alignment!]);
      const byVar = new Map(model.namedParameters().map(([n, p]) => [p.value.name, n]));
      const g = tf.variableGrads(() => trainingLoss(model, sched2b, { latents, textEmbeddings: text, teacher, teacherGrid, rng: Rng.fromSeed(5) }).total);
      const names = Object.keys(g.grads).map((k) => byVar.get(k)!);
      expect(names.some((n) => n.startsWith('downsampler_cogvideo_output.'))).toBe(true);
      expect(names.some((n) => n.startsWith('projectors.0.'))).toBe(true);
      expect(names.filter((n) => n.includes('.lora_')).length).toBe(16);
      expect(names.every((n) => n.includes('.lora_') || n.startsWith('projectors.') || n.startsWith('downsampler_cogvideo_output.'))).toBe(true);
      tf.dispose([g.value, ...Object.values(g.grads)]);
    } finally {
      model.dispose();
      tf.dispose([latents, text, teacher, noise]);
    }
  });

  it('without a teacher it is the diffusion loss; refuses missing inputs; leaks nothing', async () => {
    const model = new CogVideoXTransformer3DModel(cfg, { rng: Rng.fromSeed(1) });
    const r = Rng.fromSeed(2);
    const latents = r.randomTensor([2, 2, 12, 12, 4], 'normal');
    const text = r.randomTensor([2, 5, 12], 'normal');
    try {
      const l = trainingLoss(model, sched5b, { latents, textEmbeddings: text, rng: Rng.fromSeed(9) });
      expect(l.alignment).toBeNull();
      expect(l.total.dataSync()[0]).toBe(l.diffusion.dataSync()[0]);
      expect(l.timesteps).toEqual(sampleTimesteps(2, 1000, Rng.fromSeed(9)));
      tf.dispose([l.total, l.diffusion]);
      expect(() => trainingLoss(model, sched5b, { latents, textEmbeddings: text })).toThrow(/pass rng/);
      expect(() => trainingLoss(model, sched5b, { latents, textEmbeddings: text, rng: Rng.fromSeed(1), teacher: latents, teacherGrid })).toThrow(/no projector/);
      expect(await tensorLeakAcross(() => {
        const x = trainingLoss(model, sched5b, { latents, textEmbeddings: text, rng: Rng.fromSeed(9) });
        return [x.total, x.diffusion];
      })).toBe(0);
    } finally {
      model.dispose();
      tf.dispose([latents, text]);
    }
  });
});

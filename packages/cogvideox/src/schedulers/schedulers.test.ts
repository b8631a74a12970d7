import * as tf from '@tensorflow/tfjs';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { runHandlersOnFixtures, tensorLeakAcross } from '@vrepa/core';
import { conformanceHandlers } from '../conformance.js';
import {
  COGVIDEOX_2B_SCHEDULER,
  COGVIDEOX_5B_SCHEDULER,
  CogVideoXDDIMScheduler,
  CogVideoXDPMScheduler,
  inferenceTimesteps,
  resolveSchedulerConfig,
  torchLinspace,
} from '../index.js';

describe('schedulers conformance', () => {
  it('reproduces every schedulers sub-case of the shared fixtures', async () => {
    const { results, failures, table } = await runHandlersOnFixtures(conformanceHandlers, ['schedulers']);
    expect(failures, table).toEqual([]);
    expect(results.length).toBeGreaterThan(0);
  });
});

describe('schedule properties', () => {
  const s2b = new CogVideoXDDIMScheduler(COGVIDEOX_2B_SCHEDULER);
  it('ᾱ is strictly decreasing, in (0, 1], with zero terminal SNR', () => {
    const ac = s2b.alphasCumprod;
    expect(ac[ac.length - 1]).toBe(0);
    for (let i = 1; i < ac.length; i++) expect(ac[i]!).toBeLessThan(ac[i - 1]!);
    expect(ac[0]!).toBeLessThanOrEqual(1);
  });

  it('torchLinspace hits both ends exactly and is evenly spaced', () => {
    fc.assert(
      fc.property(fc.double({ min: -5, max: 5, noNaN: true }), fc.double({ min: -5, max: 5, noNaN: true }), fc.integer({ min: 2, max: 300 }), (a, b, n) => {
        const l = torchLinspace(a, b, n);
        expect(l[0] === a).toBe(true);
        expect(l[n - 1] === b).toBe(true);
        const step = (b - a) / (n - 1);
        for (let i = 1; i < n; i++) expect(Math.abs(l[i]! - l[i - 1]! - step)).toBeLessThan(1e-12 * (1 + Math.abs(a) + Math.abs(b)));
      }),
    );
  });

  it('timesteps are strictly decreasing and inside [0, T) for every spacing and step count', () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 250 }), fc.constantFrom('trailing', 'leading', 'linspace'), (n, spacing) => {
        const cfg = resolveSchedulerConfig({ ...COGVIDEOX_2B_SCHEDULER, timestep_spacing: spacing });
        let ts = inferenceTimesteps(cfg, n);
        // numpy's float arange (the official 'trailing' path) can produce one extra value, −1, when T/n is inexact.
        if (spacing === 'trailing' && ts.length === n + 1) {
          expect(ts[n]).toBe(-1);
          ts = ts.slice(0, n);
        }
        expect(ts.length).toBe(n);
        if (spacing === 'trailing' || (spacing === 'linspace' && n > 1)) expect(ts[0]).toBe(999);
        for (let i = 0; i < ts.length; i++) {
          expect(ts[i]!).toBeGreaterThanOrEqual(0);
          expect(ts[i]!).toBeLessThan(1000);
          if (i) expect(ts[i]!).toBeLessThan(ts[i - 1]!);
        }
      }),
    );
  });

  it('addNoise is inverted exactly by x0 = √ᾱ·x_t − √(1−ᾱ)·v, with v = getVelocity(x0, ε, t)', () => {
    fc.assert(
      fc.property(fc.array(fc.integer({ min: 0, max: 998 }), { minLength: 1, maxLength: 3 }), fc.integer({ min: 0, max: 1000 }), (ts, seed) => {
        const s = new CogVideoXDDIMScheduler(COGVIDEOX_5B_SCHEDULER);
        tf.tidy(() => {
          const x0 = tf.randomNormal([ts.length, 2, 3, 4], 0, 1, 'float32', seed);
          const eps = tf.randomNormal([ts.length, 2, 3, 4], 0, 1, 'float32', seed + 1);
          const xt = s.addNoise(x0, eps, ts);
          const v = s.getVelocity(x0, eps, ts);
          // v-prediction identity x0 = √ᾱ·x_t − √(1−ᾱ)·v is exactly the trainer's getVelocity(v, x_t, t).
          const rec = s.getVelocity(v, xt, ts);
          expect(tf.max(tf.abs(tf.sub(rec, x0))).dataSync()[0]!).toBeLessThan(1e-5);
        });
      }),
      { numRuns: 20 },
    );
  });

  it('a DDIM step given the true velocity lands on the forward-noised sample of the previous timestep', () => {
    const s = new CogVideoXDDIMScheduler(COGVIDEOX_2B_SCHEDULER);
    const ts = s.setTimesteps(10);
    tf.tidy(() => {
      const x0 = tf.randomNormal([1, 3, 4], 0, 1, 'float32', 3);
      const eps = tf.randomNormal([1, 3, 4], 0, 1, 'float32', 4);
      const t = ts[3]!;
      const xt = s.addNoise(x0, eps, [t]);
      const v = s.getVelocity(x0, eps, [t]);
      const { prevSample, predOriginalSample } = s.step(v, t, xt);
      const want = s.addNoise(x0, eps, [t - 100]);
      expect(tf.max(tf.abs(tf.sub(predOriginalSample, x0))).dataSync()[0]!).toBeLessThan(1e-5);
      expect(tf.max(tf.abs(tf.sub(prevSample, want))).dataSync()[0]!).toBeLessThan(1e-5);
    });
  });

  it('leaks no tensors across steps', async () => {
    const s = new CogVideoXDPMScheduler(COGVIDEOX_2B_SCHEDULER);
    const ts = s.setTimesteps(5);
    const x = tf.ones([1, 2, 2]);
    const leaked = await tensorLeakAcross(() => {
      const a = s.step(x, null, ts[0]!, null, x, { noise: (sh) => tf.zeros(sh) });
      const b = s.step(x, a.predOriginalSample, ts[1]!, ts[0]!, a.prevSample, { noise: (sh) => tf.zeros(sh) });
      tf.dispose([a.prevSample, a.predOriginalSample]);
      return [b.prevSample, b.predOriginalSample, s.addNoise(x, x, [10]), s.getVelocity(x, x, [10])];
    });
    expect(leaked).toBe(0);
    x.dispose();
  });
});

describe('bad input', () => {
  it('names unknown config keys and unsupported values', () => {
    expect(() => new CogVideoXDDIMScheduler({ beta_shedule: 'linear' })).toThrow(/unknown key 'beta_shedule'/);
    expect(() => new CogVideoXDDIMScheduler({ prediction_type: 'flow' })).toThrow(/prediction_type="flow" is not supported/);
    expect(() => new CogVideoXDDIMScheduler({ timestep_spacing: 'karras' })).toThrow(/timestep_spacing/);
  });
  it('rejects steps < 1, steps > T, and stepping before setTimesteps', () => {
    const s = new CogVideoXDDIMScheduler(COGVIDEOX_2B_SCHEDULER);
    expect(() => s.setTimesteps(0)).toThrow(/≥ 1/);
    expect(() => s.setTimesteps(1001)).toThrow(/cannot be larger/);
    const x = tf.zeros([1, 2]);
    expect(() => s.step(x, 999, x)).toThrow(/setTimesteps/);
    expect(() => s.addNoise(x, x, [1000])).toThrow(/outside \[0, 1000\)/);
    expect(() => s.addNoise(x, x, [1, 2])).toThrow(/2 timesteps for a batch of 1/);
    x.dispose();
  });
});

describe('precomputed noise coefficients', () => {
  it('addNoiseWith / getVelocityWith from noiseCoefficients equal addNoise / getVelocity bit for bit (both schedulers)', () => {
    for (const s of [new CogVideoXDDIMScheduler(COGVIDEOX_2B_SCHEDULER), new CogVideoXDPMScheduler(COGVIDEOX_5B_SCHEDULER)]) {
      tf.tidy(() => {
        const ts = [0, 1, 499, 998, 999];
        const x = tf.randomNormal([5, 2, 3, 4], 0, 1, 'float32', 7);
        const e = tf.randomNormal([5, 2, 3, 4], 0, 1, 'float32', 8);
        const c = s.noiseCoefficients(ts, x.rank);
        expect(c.map((t) => t.shape)).toEqual([
          [5, 1, 1, 1],
          [5, 1, 1, 1],
        ]);
        expect(c[0].dataSync()).toEqual(Float32Array.from(ts, (t) => Math.fround(Math.sqrt(Math.fround(s.alphasCumprod[t]!)))));
        expect(s.addNoiseWith(x, e, c).dataSync()).toEqual(s.addNoise(x, e, ts).dataSync());
        expect(s.getVelocityWith(x, e, c).dataSync()).toEqual(s.getVelocity(x, e, ts).dataSync());
      });
    }
  });

  it('validates timesteps (same errors) and coefficient shapes; leaks nothing', async () => {
    const s = new CogVideoXDDIMScheduler(COGVIDEOX_2B_SCHEDULER);
    const x = tf.zeros([2, 3]);
    expect(() => s.noiseCoefficients([1, 1000], 2, 'addNoise')).toThrow(/^addNoise: timestep 1000 is outside \[0, 1000\)$/);
    expect(() => s.noiseCoefficients([1], 2, 'getVelocity', 2)).toThrow(/^getVelocity: 1 timesteps for a batch of 2$/);
    const c = s.noiseCoefficients([1, 2], 2);
    const bad = s.noiseCoefficients([1, 2], 3);
    expect(() => s.addNoiseWith(x, x, bad)).toThrow(/^addNoise: coefficient sqrtAlpha must be \[2,1\]/);
    const wide = tf.zeros([2, 4]);
    expect(() => s.getVelocityWith(x, wide, c)).toThrow(/^getVelocity: noise shape \[2,4\] does not match sample shape \[2,3\]/);
    expect(await tensorLeakAcross(() => [s.addNoiseWith(x, x, c), s.getVelocityWith(x, x, c)])).toBe(0);
    tf.dispose([x, wide, c, bad]);
  });
});

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
  diffusionLossFrom,
  sampleTimesteps,
  timestepTensors,
  trainingLoss,
  type TrainingLossOptions,
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

describe('timestepTensors (every timestep-dependent tensor made before the step)', () => {
  const cfg = tinyConfig({ sample_width: 12, sample_height: 12, sample_frames: 9 });
  const teacherGrid = { frames: 4, height: 2, width: 2 };
  const align = { align_layer: 1, align_dims: [8], projector_dim: 16 };
  const cases = [
    { name: '2B sincos, DDIM 2B', cfg, sched: sched2b, checkpointing: false },
    { name: '5B rotary, DDIM 5B, gradient checkpointing', cfg: tinyConfig({ sample_width: 12, sample_height: 12, sample_frames: 9, use_rotary_positional_embeddings: true }), sched: sched5b, checkpointing: true },
  ];

  /** loss parts and every gradient, as plain arrays */
  function run(model: CogVideoXTransformer3DModel, sched: CogVideoXDDIMScheduler, opts: TrainingLossOptions) {
    let parts: Float32Array[] = [];
    const g = tf.variableGrads(() => {
      const l = trainingLoss(model, sched, opts);
      const kept = [l.diffusion, ...(l.alignment ? [l.alignment] : [])];
      parts = kept.map((x) => x.dataSync() as Float32Array);
      tf.dispose(kept.filter((x) => x !== l.total)); // kept out of variableGrads' tidy: the caller's
      return l.total;
    });
    const out = { total: g.value.dataSync() as Float32Array, parts, grads: Object.fromEntries(Object.entries(g.grads).map(([k, v]) => [k, v.dataSync() as Float32Array])) };
    tf.dispose([g.value, ...Object.values(g.grads)]);
    return out;
  }

  for (const c of cases) {
    it(`trainingLoss with precomputed tensors is bit-identical to the timesteps path, with and without a teacher (${c.name})`, () => {
      const model = new CogVideoXTransformer3DModel(c.cfg, { rng: Rng.fromSeed(1), align });
      model.gradientCheckpointing = c.checkpointing;
      const r = Rng.fromSeed(2);
      const latents = r.randomTensor([2, 3, 12, 12, 4], 'normal');
      const text = r.randomTensor([2, 5, 12], 'normal');
      const teacher = r.randomTensor([2, 16, 8], 'normal');
      const noise = r.randomTensor([2, 3, 12, 12, 4], 'normal');
      const ts = [7, 873];
      const steps = timestepTensors(model, c.sched, ts, latents.shape);
      try {
        expect(steps.timesteps).toEqual(ts);
        expect(steps.noiseCoefficients!.map((x) => x.shape)).toEqual([
          [2, 1, 1, 1, 1],
          [2, 1, 1, 1, 1],
        ]);
        expect(steps.lossWeights.shape).toEqual([2, 1]);
        expect(steps.timeProjection.shape).toEqual([2, model.innerDim]);
        for (const withTeacher of [false, true]) {
          const base = { latents, textEmbeddings: text, noise, ...(withTeacher ? { teacher, teacherGrid } : {}) };
          const a = run(model, c.sched, { ...base, timesteps: ts });
          const b = run(model, c.sched, { ...base, timestepTensors: steps });
          const both = run(model, c.sched, { ...base, timesteps: ts, timestepTensors: steps });
          expect(a.parts.length).toBe(withTeacher ? 2 : 1);
          for (const x of [b, both]) {
            expect(x.total).toEqual(a.total);
            expect(x.parts).toEqual(a.parts);
            expect(Object.keys(x.grads)).toEqual(Object.keys(a.grads));
            for (const k of Object.keys(a.grads)) expect(x.grads[k]).toEqual(a.grads[k]);
          }
          expect(Object.keys(a.grads).length).toBeGreaterThan(10);
        }
        // the pieces alone: forward with { timeProjection }, diffusionLossFrom
        tf.tidy(() => {
          const x = c.sched.addNoise(latents, noise, ts);
          const o1 = model.forward(x, text, ts, { alignLayer: 0 }).sample;
          const o2 = model.forward(x, text, { timeProjection: steps.timeProjection }, { alignLayer: 0 }).sample;
          expect(o2.dataSync()).toEqual(o1.dataSync());
          const h1 = model.hiddenStates(x, text, ts, { layer: 1 }).tokens;
          const h2 = model.hiddenStates(x, text, { timeProjection: steps.timeProjection }, { layer: 1 }).tokens;
          expect(h2.dataSync()).toEqual(h1.dataSync());
          expect(diffusionLossFrom(o1, x, latents, steps, c.sched).dataSync()).toEqual(diffusionLoss(o1, x, latents, ts, c.sched).dataSync());
        });
      } finally {
        model.dispose();
        tf.dispose([latents, text, teacher, noise, steps]);
      }
    });
  }

  /**
   * What fn does with JS values — forward and backward: every tensor it makes from JS values
   * (tf.engine().makeTensor: tf.tensor, tf.scalar, tf.zeros, number operands, …) as its values, in order,
   * and how many times it reads tensor data back (engine read / readSync: dataSync, data, arraySync, …).
   */
  function jsTensorsDuring(fn: () => void): { made: number[][]; reads: number } {
    const engine = tf.engine();
    const made: number[][] = [];
    let reads = 0;
    const { makeTensor, readSync, read } = engine;
    engine.makeTensor = function (this: typeof engine, values, shape, dtype, backend) {
      made.push(Array.from(values as ArrayLike<number>));
      return makeTensor.call(this, values, shape, dtype, backend);
    } as typeof engine.makeTensor;
    engine.readSync = function (this: typeof engine, ...a: unknown[]) {
      reads++;
      return readSync.apply(this, a as [object]);
    } as typeof readSync;
    engine.read = function (this: typeof engine, ...a: unknown[]) {
      reads++;
      return read.apply(this, a as [object]);
    } as typeof read;
    try {
      fn();
    } finally {
      Object.assign(engine, { makeTensor, readSync, read });
    }
    return { made, reads };
  }

  it('with precomputed tensors, no tensor made from JS inside the step depends on the timesteps or the noise', () => {
    // @vrepa/relations' chunked trdLoss cuts rows by reading them back to JS (cutRows) on every backend but
    // the native one, so with a teacher the check holds on the native backend only (the one to trace on).
    const withTeacher = tf.getBackend() === 'tensorflow';
    const model = new CogVideoXTransformer3DModel(cfg, { rng: Rng.fromSeed(1), align });
    const r = Rng.fromSeed(3);
    const latents = r.randomTensor([2, 3, 12, 12, 4], 'normal');
    const text = r.randomTensor([2, 5, 12], 'normal');
    const teacher = r.randomTensor([2, 16, 8], 'normal');
    const draws = [
      { ts: [5, 640], noise: r.randomTensor([2, 3, 12, 12, 4], 'normal') },
      { ts: [999, 12], noise: r.randomTensor([2, 3, 12, 12, 4], 'normal') },
    ].map((d) => ({ ...d, steps: timestepTensors(model, sched2b, d.ts, latents.shape) }));
    const step = (opts: Partial<TrainingLossOptions>) => () => {
      const g = tf.variableGrads(() => trainingLoss(model, sched2b, { latents, textEmbeddings: text, ...(withTeacher ? { teacher, teacherGrid } : {}), ...opts }).total);
      tf.dispose([g.value, ...Object.values(g.grads)]);
    };
    try {
      step({ timestepTensors: draws[0]!.steps, noise: draws[0]!.noise })(); // warm-up: cached position tables
      const [s0, s1] = draws.map((d) => jsTensorsDuring(step({ timestepTensors: d.steps, noise: d.noise })));
      expect(s0!.made.length).toBeGreaterThan(0);
      expect(s1!.made).toEqual(s0!.made);
      expect([s0!.reads, s1!.reads]).toEqual([0, 0]);
      // the check has teeth: from timesteps, the step makes tensors whose values differ between the draws
      const [t0, t1] = draws.map((d) => jsTensorsDuring(step({ timesteps: d.ts, noise: d.noise })));
      expect(t1!.made).not.toEqual(t0!.made);
      expect(t0!.made.length).toBeGreaterThan(s0!.made.length);
    } finally {
      model.dispose();
      tf.dispose([latents, text, teacher, ...draws.flatMap((d) => [d.noise, d.steps])]);
    }
  });

  it('leaks nothing across calls (precomputed or made inside), on errors neither', async () => {
    const model = new CogVideoXTransformer3DModel(cfg, { rng: Rng.fromSeed(1), align });
    const r = Rng.fromSeed(4);
    const latents = r.randomTensor([1, 3, 12, 12, 4], 'normal');
    const text = r.randomTensor([1, 5, 12], 'normal');
    const teacher = r.randomTensor([1, 16, 8], 'normal');
    const noise = r.randomTensor([1, 3, 12, 12, 4], 'normal');
    const steps = timestepTensors(model, sched2b, [400], latents.shape);
    const base = { latents, textEmbeddings: text, teacher, teacherGrid, noise };
    try {
      expect(await tensorLeakAcross(() => {
        const l = trainingLoss(model, sched2b, { ...base, timestepTensors: steps });
        return [l.total, l.diffusion, l.alignment];
      })).toBe(0);
      expect(await tensorLeakAcross(() => {
        let kept: tf.Tensor[] = [];
        const g = tf.variableGrads(() => {
          const l = trainingLoss(model, sched2b, { ...base, timestepTensors: steps });
          kept = [l.diffusion, l.alignment!];
          return l.total;
        });
        return [g.value, g.grads, kept];
      })).toBe(0);
      expect(await tensorLeakAcross(() => tf.dispose(timestepTensors(model, sched2b, [3], latents.shape)))).toBe(0);
      const before = tf.memory().numTensors;
      expect(() => timestepTensors(model, sched2b, [1000], latents.shape)).toThrow(/outside/);
      expect(() => trainingLoss(model, sched2b, { ...base, timesteps: [-1] })).toThrow(/outside/);
      expect(tf.memory().numTensors).toBe(before);
    } finally {
      model.dispose();
      tf.dispose([latents, text, teacher, noise, steps]);
    }
  });

  it('validates timesteps and the tensors as before (same errors)', () => {
    const model = new CogVideoXTransformer3DModel(cfg, { rng: Rng.fromSeed(1) });
    const r = Rng.fromSeed(5);
    const latents = r.randomTensor([2, 2, 12, 12, 4], 'normal');
    const text = r.randomTensor([2, 5, 12], 'normal');
    const noise = r.randomTensor([2, 2, 12, 12, 4], 'normal');
    const steps = timestepTensors(model, sched5b, [1, 2], latents.shape);
    const base = { latents, textEmbeddings: text, noise };
    try {
      // the timesteps path, as before
      expect(() => trainingLoss(model, sched5b, { ...base, timesteps: [1, 1000] })).toThrow(/^addNoise: timestep 1000 is outside \[0, 1000\)$/);
      expect(() => trainingLoss(model, sched5b, { ...base, timesteps: [1, 2.5] })).toThrow(/^addNoise: timestep 2.5 is outside \[0, 1000\)$/);
      expect(() => trainingLoss(model, sched5b, { ...base, timesteps: [1] })).toThrow(/^trainingLoss: 1 timesteps for a batch of 2$/);
      expect(() => trainingLoss(model, sched5b, { latents, textEmbeddings: text })).toThrow(/pass rng/);
      // timestepTensors: the same validation
      expect(() => timestepTensors(model, sched5b, [1, 1000], latents.shape)).toThrow(/^addNoise: timestep 1000 is outside \[0, 1000\)$/);
      expect(() => timestepTensors(model, sched5b, [-3, 0], latents.shape)).toThrow(/^addNoise: timestep -3 is outside \[0, 1000\)$/);
      expect(() => timestepTensors(model, sched5b, [1], latents.shape)).toThrow(/^timestepTensors: 1 timesteps for a batch of 2$/);
      // precomputed tensors: consistent with the step, shapes checked
      expect(() => trainingLoss(model, sched5b, { ...base, timestepTensors: steps, timesteps: [1, 3] })).toThrow(/timesteps \[1,3\] differ from those of timestepTensors \[1,2\]/);
      const l = trainingLoss(model, sched5b, { ...base, timestepTensors: steps }); // no rng needed
      expect(l.timesteps).toEqual([1, 2]);
      tf.dispose([l.total, l.diffusion]);
      const one = tf.slice(latents, [0], [1]);
      expect(() => trainingLoss(model, sched5b, { latents: one, textEmbeddings: tf.slice(text, [0], [1]), noise: tf.slice(noise, [0], [1]), timestepTensors: steps })).toThrow(/^trainingLoss: 2 timesteps for a batch of 1$/);
      tf.dispose(one);
      tf.tidy(() => {
        expect(() => model.forward(latents, text, { timeProjection: tf.zeros([2, 5]) })).toThrow(/^timeProjection: expected \[2, 32\] \(batch of the latents, inner_dim; model.timeProjection\(timesteps\)\), got \[2, 5\]$/);
        expect(() => model.forward(latents, text, { timeProjection: tf.zeros([1, 32]) })).toThrow(/timeProjection: expected \[2, 32\]/);
        expect(() => model.forward(latents, text, [1])).toThrow(/^timesteps: expected 2 values \(one per batch item\), got 1$/);
        expect(() => sched5b.addNoiseWith(latents, noise, [tf.zeros([2, 1]), tf.zeros([2, 1])])).toThrow(/^addNoise: coefficient sqrtAlpha must be \[2,1,1,1,1\]/);
        expect(() => diffusionLossFrom(latents, latents, latents, { ...steps, lossWeights: tf.zeros([2]) as unknown as tf.Tensor2D }, sched5b)).toThrow(/lossWeights must be \[2, 1\]/);
        expect(() => diffusionLossFrom(latents, latents, latents, { ...steps, timesteps: [1] }, sched5b)).toThrow(/^diffusionLoss: 1 timesteps for a batch of 2$/);
      });
    } finally {
      model.dispose();
      tf.dispose([latents, text, noise, steps]);
    }
  });

  it('a schedule without coefficient members still works (timesteps path, same numbers)', () => {
    const model = new CogVideoXTransformer3DModel(cfg, { rng: Rng.fromSeed(1) });
    const r = Rng.fromSeed(6);
    const latents = r.randomTensor([1, 2, 12, 12, 4], 'normal');
    const text = r.randomTensor([1, 5, 12], 'normal');
    const noise = r.randomTensor([1, 2, 12, 12, 4], 'normal');
    const plain = {
      alphasCumprod: sched2b.alphasCumprod,
      addNoise: (o: tf.Tensor, n: tf.Tensor, t: number[]) => sched2b.addNoise(o, n, t),
      getVelocity: (s: tf.Tensor, n: tf.Tensor, t: number[]) => sched2b.getVelocity(s, n, t),
    };
    try {
      const steps = timestepTensors(model, plain, [250], latents.shape);
      expect(steps.noiseCoefficients).toBeUndefined();
      const a = trainingLoss(model, plain, { latents, textEmbeddings: text, noise, timestepTensors: steps });
      const b = trainingLoss(model, sched2b, { latents, textEmbeddings: text, noise, timesteps: [250] });
      expect(a.total.dataSync()).toEqual(b.total.dataSync());
      tf.dispose([a.total, a.diffusion, b.total, b.diffusion, steps]);
    } finally {
      model.dispose();
      tf.dispose([latents, text, noise]);
    }
  });
});

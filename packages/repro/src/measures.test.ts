import fs from 'node:fs';
import path from 'node:path';
import { createRequire } from 'node:module';
import { pathToFileURL } from 'node:url';
import * as tf from '@tensorflow/tfjs';
import { describe, expect, it } from 'vitest';
import { CogVideoXTransformer3DModel, CogVideoXDDIMScheduler, COGVIDEOX_2B_SCHEDULER, compiledForward, diffusionLoss } from '@vrepa/cogvideox';
import { Rng, graphFunctionsAvailable, runInChild } from '@vrepa/core';
import { generateSplit, clipPixels, type DataConfig } from './data.js';
import { heldOutDiffusionLoss, probeAccuracy, sampleLatents, scoreClip, heldOutTrd, studentAlignTokens } from './measures.js';

const TINY = { num_attention_heads: 2, attention_head_dim: 8, num_layers: 2, in_channels: 8, out_channels: 8, text_embed_dim: 8, time_embed_dim: 8, sample_height: 4, sample_width: 4, sample_frames: 9, max_text_seq_length: 3 };
const ALIGN = { align_layer: 1, align_dims: [8], projector_dim: 8 };
const tiny = () => new CogVideoXTransformer3DModel(TINY, { rng: Rng.fromSeed(0), align: ALIGN });
const graphs = (() => {
  try {
    return graphFunctionsAvailable();
  } catch {
    return false;
  }
})();

describe('measures', () => {
  it('continuations keep the context latents exactly (replacement method), and sampling leaks no tensors', () => {
    const model = tiny();
    const known = tf.randomNormal([2, 3, 4, 4, 8]);
    const text = tf.randomNormal([2, 3, 8]);
    // the first call builds the model's cached position tables (owned by the model)
    sampleLatents(model, text, [2, 3, 4, 4, 8], { steps: 3, seed: 1, contextFrames: 2 }, known).dispose();
    const before = tf.memory().numTensors;
    const out = sampleLatents(model, text, [2, 3, 4, 4, 8], { steps: 3, seed: 1, contextFrames: 2 }, known);
    const d = tf.tidy(() => tf.max(tf.abs(tf.sub(tf.slice(out, [0, 0], [2, 2]), tf.slice(known, [0, 0], [2, 2])))).dataSync()[0]);
    expect(d).toBe(0);
    // the generated frame differs from the known one (it was sampled, not copied)
    expect(tf.tidy(() => tf.max(tf.abs(tf.sub(tf.slice(out, [0, 2], [2, 1]), tf.slice(known, [0, 2], [2, 1])))).dataSync()[0])).toBeGreaterThan(0.01);
    out.dispose();
    expect(tf.memory().numTensors).toBe(before);
    tf.dispose([known, text]);
    model.dispose();
  });

  it('held-out TRD: near 0 against the student\'s own relations, unchanged by orthogonal maps and row scales of the teacher', () => {
    const model = tiny();
    const lat = tf.randomNormal([1, 3, 4, 4, 8]);
    const text = tf.randomNormal([1, 3, 8]);
    const st = studentAlignTokens(model, lat, text, 200, 3, 1);
    // teacher = the student's own tokens after dropping latent frame 0 and doubling time (nearest copies keep relations)
    const teacher = tf.tidy(() => {
      const t = tf.reshape(st.tokens, [1, 3, 4, 16]); // inner dim 2 heads × 8
      const rest = tf.slice(t, [0, 1], [1, 2]);
      return tf.reshape(tf.stack([rest, rest], 2), [1, 16, 16]) as tf.Tensor3D;
    });
    const grid = { frames: 4, height: 2, width: 2 };
    const r = heldOutTrd(model, st, { tokens: teacher, grid }, { margin: 0.1, gridMatch: 'teacher-interpolated' });
    // trilinear ×2 of 2 frames mixes neighbours, so relations move only a little
    expect(r.raw).toBeLessThan(0.05);
    // invariance: an orthogonal map of the teacher's features (signed permutation) and positive row scales leave relations unchanged
    const rotated = tf.tidy(() => {
      const perm = tf.gather(teacher, tf.tensor1d(Array.from({ length: 16 }, (_, i) => (i * 5) % 16), 'int32'), 2);
      return tf.mul(tf.mul(perm, tf.tensor1d(Array.from({ length: 16 }, (_, i) => (i % 3 ? 1 : -1)))), tf.randomUniform([1, 16, 1], 0.5, 2)) as tf.Tensor3D;
    });
    const r2 = heldOutTrd(model, st, { tokens: rotated, grid }, { margin: 0.1, gridMatch: 'teacher-interpolated' });
    expect(r2.raw).toBeCloseTo(r.raw, 5);
    expect(r2.projected).toBeCloseTo(r.projected, 5);
    tf.dispose([lat, text, st.tokens, teacher, rotated]);
    model.dispose();
  });

  it("per-clip held-out diffusion loss equals cogvideox' diffusionLoss on each clip alone (same noise)", () => {
    const model = tiny();
    const lat = tf.randomNormal([2, 3, 4, 4, 8]);
    const text = tf.randomNormal([2, 3, 8]);
    const got = heldOutDiffusionLoss(model, lat, text, [300], 5);
    const schedule = new CogVideoXDDIMScheduler(COGVIDEOX_2B_SCHEDULER);
    const noise = Rng.fromSeed(5, 100).randomTensor(lat.shape, 'normal');
    for (let i = 0; i < 2; i++) {
      const want = tf.tidy(() => {
        const x = tf.slice(lat, [i], [1]);
        const noisy = schedule.addNoise(x, tf.slice(noise, [i], [1]), [300]);
        const out = model.forward(noisy, tf.slice(text, [i], [1]), [300], { alignLayer: 0 });
        return diffusionLoss(out.sample, noisy, x, [300], schedule).dataSync()[0]!;
      });
      expect(got[i]).toBeCloseTo(want, 4);
    }
    tf.dispose([lat, text, noise]);
    model.dispose();
  });

  it('the probe separates separable features and not random ones', async () => {
    const n = 40;
    const labels = Uint8Array.from({ length: n }, (_, i) => i % 2);
    const groups = new Int32Array(n);
    const rng = Rng.fromSeed(4);
    const sep = { data: Float32Array.from({ length: n * 5 }, (_, k) => (k % 5 === 0 ? (labels[Math.floor(k / 5)] ? 2 : -2) : 0) + rng.normal(0, 0.3)), n, d: 5 };
    const rnd = { data: Float32Array.from({ length: n * 5 }, () => rng.normal()), n, d: 5 };
    expect((await probeAccuracy(sep, labels, groups, 4, 0)).accuracy).toBeGreaterThan(0.95);
    expect((await probeAccuracy(rnd, labels, groups, 4, 0)).accuracy).toBeLessThan(0.8);
  });

  it("the scorer on the simulator's own clips: small position error, contact predicted as it happened", async () => {
    const cfg: DataConfig = { subsets: ['collide'], perSubset: { train: 1, val: 1, test: 4 }, seed: 3, frames: 17, width: 72, height: 48, fps: 6, context: 9 };
    const d = await generateSplit(cfg, 'test');
    for (let i = 0; i < d.n; i++) {
      const s = scoreClip(clipPixels(d, i), d.width, d.height, d.states[i]!);
      expect(s.positionErrorPx).toBeLessThan(1.5);
      expect(s.predictedContact).toBe(d.labels[i]);
      expect(s.missingFrames).toBe(0);
    }
  }, 60_000);
  it.skipIf(!graphs)('with compiled forwards (one per option set, shared across calls) the measures agree with the eager ones within rounding, run as graphs and leak nothing; a forward compiled with other options is refused', () => {
    const model = tiny();
    const lat = tf.randomNormal([2, 3, 4, 4, 8], 0, 1, 'float32', 1);
    const text = tf.randomNormal([2, 3, 8], 0, 1, 'float32', 2);
    const align = compiledForward(model, { alignLayer: 1, projectAligned: false });
    const plain = compiledForward(model, { alignLayer: 0 });
    const close = (a: ArrayLike<number>, b: ArrayLike<number>) => {
      expect(a.length).toBe(b.length);
      for (let i = 0; i < a.length; i++) expect(Math.abs(a[i]! - b[i]!)).toBeLessThanOrEqual(1e-5 * Math.max(1, Math.abs(b[i]!)));
    };
    const round = (k: number) => {
      const e = studentAlignTokens(model, lat, text, 200, 3 + k, 1);
      const c = studentAlignTokens(model, lat, text, 200, 3 + k, 1, align);
      expect(c.grid).toEqual(e.grid);
      close(c.tokens.dataSync(), e.tokens.dataSync());
      tf.dispose([e.tokens, c.tokens]);
      close(heldOutDiffusionLoss(model, lat, text, [300, 700], 5 + k, plain), heldOutDiffusionLoss(model, lat, text, [300, 700], 5 + k));
      const ge = sampleLatents(model, text, [2, 3, 4, 4, 8], { steps: 3, seed: 1 + k, contextFrames: 2 }, lat);
      const gc = sampleLatents(model, text, [2, 3, 4, 4, 8], { steps: 3, seed: 1 + k, contextFrames: 2, compiled: plain }, lat);
      // the sampler's rounding differences grow through its steps a little
      const a = gc.dataSync();
      const b = ge.dataSync();
      for (let i = 0; i < a.length; i++) expect(Math.abs(a[i]! - b[i]!)).toBeLessThanOrEqual(1e-4 * Math.max(1, Math.abs(b[i]!)));
      tf.dispose([ge, gc]);
    };
    round(0);
    round(1); // studentAlignTokens runs one forward: its second trace
    expect(align.mode()).toBe('graph');
    expect(plain.mode()).toBe('graph');
    const before = tf.memory().numTensors;
    round(2);
    round(3);
    expect(tf.memory().numTensors).toBe(before);
    expect(align.reason).toBeUndefined();
    expect(plain.reason).toBeUndefined();
    expect(() => heldOutDiffusionLoss(model, lat, text, [300], 5, align)).toThrow(/needs a forward compiled with \{ alignLayer: 0 \}/);
    expect(() => studentAlignTokens(model, lat, text, 200, 3, 1, plain)).toThrow(/alignLayer: 1, projectAligned: false/);
    const other = tiny();
    expect(() => sampleLatents(other, text, [2, 3, 4, 4, 8], { steps: 2, seed: 1, contextFrames: 0, compiled: plain })).toThrow(/another model's/);
    other.dispose();
    align.dispose();
    plain.dispose();
    tf.dispose([lat, text]);
    model.dispose();
  });

  it.skipIf(!graphs)('with oneDNN off the measures give the same bits with compiled forwards as eagerly', async () => {
    const measuresUrl = new URL('./measures.ts', import.meta.url).href;
    const req = createRequire(import.meta.url);
    const tfUrl = pathToFileURL(req.resolve('@tensorflow/tfjs')).href;
    // the ESM build measures.ts itself imports (the same module instance)
    const cogUrl = pathToFileURL(path.join(path.dirname(req.resolve('@vrepa/cogvideox/package.json')), 'dist', 'index.js')).href;
    expect(fs.existsSync(new URL(cogUrl))).toBe(true);
    const body = `await core.initBackend({ quiet: true, oneDnn: false });
const tfm = await import(${JSON.stringify(tfUrl)}); const tf = tfm.default ?? tfm;
const { CogVideoXTransformer3DModel, compiledForward } = await import(${JSON.stringify(cogUrl)});
const { studentAlignTokens, heldOutDiffusionLoss, sampleLatents } = await import(${JSON.stringify(measuresUrl)});
const model = new CogVideoXTransformer3DModel(${JSON.stringify(TINY)}, { align: ${JSON.stringify(ALIGN)} });
const align = compiledForward(model, { alignLayer: 1, projectAligned: false }); const plain = compiledForward(model, { alignLayer: 0 });
const lat = tf.randomNormal([2, 3, 4, 4, 8], 0, 1, 'float32', 1); const text = tf.randomNormal([2, 3, 8], 0, 1, 'float32', 2);
const eq = (u, v) => u.length === v.length && Array.from(u).every((z, i) => Object.is(z, v[i]));
const same = [];
for (let k = 0; k < 3; k++) {
  const e = studentAlignTokens(model, lat, text, 200 + 100 * k, 3 + k, 1); const c = studentAlignTokens(model, lat, text, 200 + 100 * k, 3 + k, 1, align);
  const tokens = eq(e.tokens.dataSync(), c.tokens.dataSync()); tf.dispose([e.tokens, c.tokens]);
  const loss = eq(heldOutDiffusionLoss(model, lat, text, [100, 500, 900], 5 + k), heldOutDiffusionLoss(model, lat, text, [100, 500, 900], 5 + k, plain));
  const ge = sampleLatents(model, text, [2, 3, 4, 4, 8], { steps: 4, seed: 1 + k, contextFrames: 2 }, lat);
  const gc = sampleLatents(model, text, [2, 3, 4, 4, 8], { steps: 4, seed: 1 + k, contextFrames: 2, compiled: plain }, lat);
  const samples = eq(ge.dataSync(), gc.dataSync()); tf.dispose([ge, gc]);
  same.push({ tokens, loss, samples });
}
emit({ same, modes: [align.mode(), plain.mode()], oneDnn: process.env.TF_ENABLE_ONEDNN_OPTS });`;
    const r = await runInChild<{ same: { tokens: boolean; loss: boolean; samples: boolean }[]; modes: string[]; oneDnn: string }>(body, { TF_ENABLE_ONEDNN_OPTS: '0', VREPA_TF_GRAPH: '' }, 300_000);
    expect(r.error).toBeUndefined();
    expect(r.value!.oneDnn).toBe('0');
    expect(r.value!.modes).toEqual(['graph', 'graph']);
    expect(r.value!.same).toEqual(new Array(3).fill({ tokens: true, loss: true, samples: true }));
  });
});

describe('graph functions availability (binding patch 34)', () => {
  it('are there wherever the patched binding runs (VREPA_REQUIRE_NATIVE=1 from test-all), so the compiled-forward tests above cannot skip silently', () => {
    if (process.env.VREPA_REQUIRE_NATIVE === '1' && tf.getBackend() === 'tensorflow') expect(graphs, 'graph functions unavailable: rebuild with `vrepa backend install-native` (or VREPA_TF_GRAPH=0 is set)').toBe(true);
  });
});

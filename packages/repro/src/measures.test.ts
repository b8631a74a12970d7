import * as tf from '@tensorflow/tfjs';
import { describe, expect, it } from 'vitest';
import { CogVideoXTransformer3DModel, CogVideoXDDIMScheduler, COGVIDEOX_2B_SCHEDULER, diffusionLoss } from '@vrepa/cogvideox';
import { Rng } from '@vrepa/core';
import { generateSplit, clipPixels, type DataConfig } from './data.js';
import { heldOutDiffusionLoss, probeAccuracy, sampleLatents, scoreClip, heldOutTrd, studentAlignTokens } from './measures.js';

const tiny = () =>
  new CogVideoXTransformer3DModel(
    { num_attention_heads: 2, attention_head_dim: 8, num_layers: 2, in_channels: 8, out_channels: 8, text_embed_dim: 8, time_embed_dim: 8, sample_height: 4, sample_width: 4, sample_frames: 9, max_text_seq_length: 3 },
    { rng: Rng.fromSeed(0), align: { align_layer: 1, align_dims: [8], projector_dim: 8 } },
  );

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
});

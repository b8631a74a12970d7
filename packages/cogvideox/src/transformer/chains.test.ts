/** The block's AdaLN chains through core's modulate / gatedResidual (default) vs tf.mul / tf.add with autodiff (VREPA_FUSED_CHAINS=0). */
import * as tf from '@tensorflow/tfjs';
import { describe, expect, it } from 'vitest';
import { Rng, profileOps } from '@vrepa/core';
import { tinyConfig } from './test-config.js';
import { CogVideoXTransformer3DModel } from '../index.js';

function withChains<T>(on: boolean, f: () => T): T {
  const prev = process.env.VREPA_FUSED_CHAINS;
  process.env.VREPA_FUSED_CHAINS = on ? '1' : '0';
  try {
    return f();
  } finally {
    if (prev === undefined) delete process.env.VREPA_FUSED_CHAINS;
    else process.env.VREPA_FUSED_CHAINS = prev;
  }
}

describe('CogVideoX block chains (modulate / gatedResidual)', () => {
  it('output and every parameter gradient equal the tf.mul / tf.add version (bit for bit here; within float32 tolerance required), with fewer kernels', () => {
    const model = new CogVideoXTransformer3DModel(tinyConfig({ use_rotary_positional_embeddings: true }), { rng: Rng.fromSeed(3) });
    const rng = Rng.fromSeed(9);
    const latents = rng.randomTensor([2, 2, 4, 6, model.config.in_channels], 'normal');
    const text = rng.randomTensor([2, 5, model.config.text_embed_dim], 'normal');
    const ts = [17, 640];
    const w = rng.randomTensor([2, 2, 4, 6, model.config.in_channels], 'normal');
    const lossFn = () => tf.tidy(() => tf.sum(tf.mul(model.forward(latents, text, ts).sample, w)) as tf.Scalar);
    try {
      const run = (on: boolean) =>
        withChains(on, () => {
          const p = profileOps(() => tf.variableGrads(lossFn));
          return { ...p.result, kernels: p.kernels.reduce((n, k) => n + k.count, 0) };
        });
      const fused = run(true);
      const plain = run(false);
      expect(Object.keys(fused.grads).sort()).toEqual(Object.keys(plain.grads).sort());
      let identical = true;
      for (const n of Object.keys(plain.grads)) {
        const a = fused.grads[n]!.dataSync();
        const b = plain.grads[n]!.dataSync();
        let scale = 0;
        let e = 0;
        for (let i = 0; i < a.length; i++) {
          scale = Math.max(scale, Math.abs(b[i]!));
          e = Math.max(e, Math.abs(a[i]! - b[i]!));
          if (a[i] !== b[i]) identical = false;
        }
        expect(e, n).toBeLessThanOrEqual(2e-6 * Math.max(scale, 1e-3));
      }
      expect(Math.abs(fused.value.dataSync()[0]! - plain.value.dataSync()[0]!)).toBeLessThanOrEqual(1e-6 * Math.abs(plain.value.dataSync()[0]!));
      // per block: 4 modulations × 5 kernels and 4 gated residuals × 3 kernels fewer (the scopes aside)
      expect(plain.kernels - fused.kernels).toBeGreaterThanOrEqual(model.config.num_layers * 20);
      expect(identical).toBe(true);
      tf.dispose([fused.value, plain.value, ...Object.values(fused.grads), ...Object.values(plain.grads)]);
    } finally {
      tf.dispose([latents, text, w]);
      model.dispose();
    }
  });
});

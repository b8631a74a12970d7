import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { Rng, SafetensorsFile, tensorLeakAcross, writeSafetensors } from '@vrepa/core';
import { tinyConfig } from '../transformer/test-config.js';
import { CogVideoXTransformer3DModel, LoraLinear, addLora, loadLora, loraModules, loraStateDict, mergeLora, saveLora, unmergeLora } from '../index.js';

const cfg = (over: Record<string, unknown> = {}) => tinyConfig({ use_rotary_positional_embeddings: true, ...over });
const align = { align_layer: 1, align_dims: [8], projector_dim: 16 };

function make(seed: number, over: Record<string, unknown> = {}) {
  return new CogVideoXTransformer3DModel(cfg(over), { rng: Rng.fromSeed(seed), align });
}
function data(seed: number, B = 1) {
  const r = Rng.fromSeed(seed);
  return { x: r.randomTensor([B, 2, 4, 6, 4], 'normal'), t: r.randomTensor([B, 5, 12], 'normal'), ts: Array.from({ length: B }, (_, i) => 100 + 300 * i) };
}
function run(m: CogVideoXTransformer3DModel, d: ReturnType<typeof data>): Float32Array[] {
  const o = m.forward(d.x, d.t, d.ts);
  const r = [o.sample.dataSync() as Float32Array, o.aligned!.dataSync() as Float32Array];
  tf.dispose([o.sample, o.aligned!, o.alignHidden!]);
  return r;
}
function maxDiff(a: Float32Array[], b: Float32Array[]): number {
  let e = 0;
  a.forEach((x, j) => x.forEach((v, i) => (e = Math.max(e, Math.abs(v - b[j]![i]!)))));
  return e;
}
/** Give every adapter's B random values (a trained-looking adapter). */
function randomiseB(m: CogVideoXTransformer3DModel, seed: number) {
  const r = Rng.fromSeed(seed);
  for (const l of loraModules(m).values()) l.lora!.B.weight.value.assign(tf.mul(r.randomTensor(l.lora!.B.weight.shape, 'normal'), 0.05));
}

describe('LoRA', () => {
  it('LoraLinear computes x·W + b + (α/r)·(x·A)·B with PEFT orientations (hand-derived)', () => {
    const lin = new LoraLinear(2, 2);
    lin.addLora(1, 4); // scaling α/r = 4
    // PyTorch layouts: W [out,in] = [[1,2],[3,4]], b = [0.5,-0.5]; lora_A [r,in] = [[1,-1]]; lora_B [out,r] = [[2],[3]]
    const sd = new Map<string, tf.Tensor>([
      ['weight', tf.tensor2d([[1, 2], [3, 4]])],
      ['bias', tf.tensor1d([0.5, -0.5])],
      ['lora_A.weight', tf.tensor2d([[1, -1]])],
      ['lora_B.weight', tf.tensor2d([[2], [3]])],
    ]);
    lin.loadStateDict(sd);
    tf.dispose([...sd.values()]);
    // x = [1, 2]: x·Wᵀ + b = [1+4+0.5, 3+8−0.5] = [5.5, 10.5]; x·Aᵀ = −1; ·Bᵀ = [−2, −3]; ·4 = [−8, −12]
    const y = tf.tidy(() => lin.forward(tf.tensor2d([[1, 2]])));
    expect(Array.from(y.dataSync())).toEqual([-2.5, -1.5]);
    lin.merge();
    const merged = lin.stateDict();
    expect(Array.from(merged.get('weight')!.dataSync())).toEqual([1 + 8, 2 - 8, 3 + 12, 4 - 12]);
    tf.dispose([y, ...merged.values()]);
    lin.dispose();
  });

  it('adapters with B = 0 leave the outputs unchanged; only LoRA + align parts stay trainable', () => {
    const m = make(1);
    const d = data(2);
    try {
      const before = run(m, d);
      const mods = addLora(m, { rank: 4, alpha: 2 }, { rng: Rng.fromSeed(3) });
      expect(mods).toHaveLength(2 * 4);
      expect(mods).toContain('transformer_blocks.1.attn1.to_out.0');
      expect(maxDiff(before, run(m, d))).toBe(0);
      const trainable = m.namedParameters().filter(([, p]) => p.trainable).map(([n]) => n);
      expect(trainable.every((n) => /\.lora_[AB]\.weight$/.test(n) || n.startsWith('projectors.') || n.startsWith('downsampler_cogvideo_output.'))).toBe(true);
      expect(trainable.filter((n) => n.includes('lora_')).length).toBe(16);
      // gradients reach exactly the adapters and the projector (the downsampler is off this path)
      randomiseB(m, 4);
      const g = tf.variableGrads(() => tf.tidy(() => {
        const o = m.forward(d.x, d.t, d.ts);
        return tf.add(tf.mean(tf.square(o.sample)), tf.mean(tf.square(o.aligned!))) as tf.Scalar;
      }));
      const byVar = new Map(m.namedParameters().map(([n, p]) => [p.value.name, n]));
      const got = Object.keys(g.grads).map((k) => byVar.get(k)!).sort();
      expect(got).toEqual(trainable.filter((n) => !n.startsWith('downsampler')).sort());
      tf.dispose([g.value, ...Object.values(g.grads)]);
    } finally {
      m.dispose();
      tf.dispose([d.x, d.t]);
    }
  });

  it('merged forward = unmerged forward; unmerge restores the base weights (property)', () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 8 }), fc.integer({ min: 1, max: 64 }), fc.integer({ min: 0, max: 1e6 }), (rank, alpha, seed) => {
        const m = make(seed % 97);
        const d = data(seed);
        try {
          addLora(m, { rank, alpha }, { rng: Rng.fromSeed(seed) });
          randomiseB(m, seed + 1);
          const w0 = m.transformer_blocks.at(0).attn1.to_q.weight.value.dataSync().slice();
          const unmerged = run(m, d);
          mergeLora(m);
          const merged = run(m, d);
          unmergeLora(m);
          const back = m.transformer_blocks.at(0).attn1.to_q.weight.value.dataSync();
          let wErr = 0;
          w0.forEach((v, i) => (wErr = Math.max(wErr, Math.abs(v - back[i]!))));
          const scale = Math.max(1, ...unmerged[0]!.map(Math.abs));
          return maxDiff(unmerged, merged) <= 1e-4 * scale && wErr < 1e-5 && maxDiff(unmerged, run(m, d)) <= 1e-4 * scale;
        } finally {
          m.dispose();
          tf.dispose([d.x, d.t]);
        }
      }),
      { numRuns: 5 },
    );
  });

  it('save → load round trip is bit-exact, in the diffusers/PEFT key format with alpha in the metadata', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'vrepa-lora-'));
    const a = make(5);
    const b = make(5); // same base weights
    const d = data(6);
    try {
      addLora(a, { rank: 3, alpha: 6 }, { rng: Rng.fromSeed(7) });
      randomiseB(a, 8);
      const file = saveLora(a, dir);
      expect(path.basename(file)).toBe('pytorch_lora_weights.safetensors');
      const st = SafetensorsFile.open(file);
      try {
        expect(st.info('transformer.transformer_blocks.0.attn1.to_q.lora_A.weight').shape).toEqual([3, 32]);
        expect(st.info('transformer.transformer_blocks.1.attn1.to_out.0.lora_B.weight').shape).toEqual([32, 3]);
        expect(st.keys()).toHaveLength(16);
        const meta = JSON.parse(st.metadata.lora_adapter_metadata!);
        expect(meta['transformer.r']).toBe(3);
        expect(meta['transformer.lora_alpha']).toBe(6);
        expect(meta['transformer.target_modules'].sort()).toEqual(['to_k', 'to_out.0', 'to_q', 'to_v']);
        expect(st.metadata.format).toBe('pt');
      } finally {
        st.close();
      }
      const res = loadLora(b, file);
      expect(res).toMatchObject({ rank: 3, alpha: 6 });
      const sa = loraStateDict(a);
      const sb = loraStateDict(b);
      for (const [k, t] of sa) expect(Array.from(sb.get(k)!.dataSync())).toEqual(Array.from(t.dataSync()));
      tf.dispose([...sa.values(), ...sb.values()]);
      expect(maxDiff(run(a, d), run(b, d))).toBe(0);
      // loading into a model that already has adapters overwrites them exactly
      randomiseB(b, 9);
      loadLora(b, file);
      expect(maxDiff(run(a, d), run(b, d))).toBe(0);
    } finally {
      a.dispose();
      b.dispose();
      tf.dispose([d.x, d.t]);
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it('a file without metadata takes alpha from the option, else alpha = rank (diffusers convention)', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'vrepa-lora-'));
    const a = make(5);
    try {
      addLora(a, { rank: 2, alpha: 1 }, { rng: Rng.fromSeed(1) });
      const sd = loraStateDict(a);
      const file = path.join(dir, 'bare.safetensors');
      writeSafetensors(file, sd);
      tf.dispose([...sd.values()]);
      const b = make(5);
      const c = make(5);
      try {
        expect(loadLora(b, file).alpha).toBe(2);
        expect(loadLora(c, file, { alpha: 64 }).alpha).toBe(64);
      } finally {
        b.dispose();
        c.dispose();
      }
    } finally {
      a.dispose();
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it('refuses a LoRA file made for another model, listing what does not fit', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'vrepa-lora-'));
    const big = make(1, { num_layers: 3 });
    const wide = make(1, { attention_head_dim: 24 });
    const m = make(1);
    try {
      addLora(big, { rank: 2, alpha: 2 });
      addLora(wide, { rank: 2, alpha: 2 });
      const f1 = saveLora(big, path.join(dir, 'big.safetensors'));
      const f2 = saveLora(wide, path.join(dir, 'wide.safetensors'));
      expect(() => loadLora(m, f1)).toThrow(/does not fit this transformer: transformer_blocks\.2\.attn1\.to_q \(no such adaptable linear/);
      expect(() => loadLora(m, f2)).toThrow(/lora_A \[2,32\] \/ lora_B \[48,2\] do not fit a 32→32 linear|do not fit a 32→32 linear/);
      expect(loraModules(m).size).toBe(0); // nothing changed
      const junk = path.join(dir, 'junk.safetensors');
      writeSafetensors(junk, { 'unet.down.0.weight': tf.zeros([2, 2]) });
      expect(() => loadLora(m, junk)).toThrow(/not a transformer\.….lora_A\/B\.weight key/);
    } finally {
      big.dispose();
      wide.dispose();
      m.dispose();
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it('leaks no tensors (LoRA forward, merge/unmerge)', async () => {
    const m = make(3);
    const d = data(4);
    try {
      addLora(m, { rank: 2, alpha: 4 });
      expect(await tensorLeakAcross(() => m.forward(d.x, d.t, d.ts))).toBe(0);
      expect(await tensorLeakAcross(() => { mergeLora(m); unmergeLora(m); })).toBe(0);
    } finally {
      m.dispose();
      tf.dispose([d.x, d.t]);
    }
  });
});

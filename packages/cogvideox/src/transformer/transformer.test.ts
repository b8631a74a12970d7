import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { Rng, SafetensorsFile, fixturesDir, tensorLeakAcross, writeSafetensors } from '@vrepa/core';
import { tinyConfig } from './test-config.js';
import { CogVideoXTransformer3DModel, fromPretrained, loadTransformerWeights, resolveTransformerConfig, savePretrained } from '../index.js';

function inputs(model: CogVideoXTransformer3DModel, B: number, seed: number, F = 2, H = 4, W = 6, L = 5) {
  const rng = Rng.fromSeed(seed);
  return {
    latents: rng.randomTensor([B, F, H, W, model.config.in_channels], 'normal'),
    text: rng.randomTensor([B, L, model.config.text_embed_dim], 'normal'),
    ts: Array.from({ length: B }, (_, i) => (seed * 37 + i * 211) % 1000),
  };
}

describe('dropout (training mode)', () => {
  const cfg = tinyConfig({ dropout: 0.25 });
  const sumOut = (model: CogVideoXTransformer3DModel, x: ReturnType<typeof inputs>, seed?: number) =>
    tf.tidy(() => {
      const o = model.forward(x.latents, x.text, x.ts, seed === undefined ? {} : { dropoutRng: Rng.fromSeed(seed) });
      return tf.sum(tf.mul(o.sample, o.sample));
    });

  it('is off without a dropout stream (inference), on with one, and reproducible per seed', () => {
    const model = new CogVideoXTransformer3DModel(cfg, { rng: Rng.fromSeed(4), align: false });
    const ref = new CogVideoXTransformer3DModel(tinyConfig({ dropout: 0 }), { rng: Rng.fromSeed(4), align: false });
    const x = inputs(model, 2, 3);
    try {
      const inf = model.forward(x.latents, x.text, x.ts).sample;
      const noDrop = ref.forward(x.latents, x.text, x.ts, { dropoutRng: Rng.fromSeed(1) }).sample; // p = 0: stream unused
      expect(tf.max(tf.abs(tf.sub(inf, noDrop))).dataSync()[0]).toBe(0);
      const a = model.forward(x.latents, x.text, x.ts, { dropoutRng: Rng.fromSeed(11) }).sample;
      const b = model.forward(x.latents, x.text, x.ts, { dropoutRng: Rng.fromSeed(11) }).sample;
      const c = model.forward(x.latents, x.text, x.ts, { dropoutRng: Rng.fromSeed(12) }).sample;
      expect(Array.from(a.dataSync())).toEqual(Array.from(b.dataSync()));
      expect(tf.max(tf.abs(tf.sub(a, inf))).dataSync()[0]).toBeGreaterThan(1e-3);
      expect(tf.max(tf.abs(tf.sub(a, c))).dataSync()[0]).toBeGreaterThan(1e-3);
      tf.dispose([inf, noDrop, a, b, c]);
    } finally {
      tf.dispose([x.latents, x.text]);
      model.dispose();
      ref.dispose();
    }
  });

  it('gradient checkpointing replays the same masks: equal gradients with and without it', () => {
    const model = new CogVideoXTransformer3DModel(cfg, { rng: Rng.fromSeed(6), align: false });
    const x = inputs(model, 1, 8);
    try {
      const vars = model.trainableParameters();
      const grads = (ckpt: boolean) => {
        model.gradientCheckpointing = ckpt;
        const { grads: g } = tf.variableGrads(() => sumOut(model, x, 5) as tf.Scalar, vars as tf.Variable[]);
        return g;
      };
      const plain = grads(false);
      const ck = grads(true);
      model.gradientCheckpointing = false;
      for (const [k, g] of Object.entries(plain)) {
        const scale = Math.max(1e-6, tf.max(tf.abs(g)).dataSync()[0]!);
        expect(tf.max(tf.abs(tf.sub(g, ck[k]!))).dataSync()[0]! / scale).toBeLessThan(1e-4);
      }
      tf.dispose([...Object.values(plain), ...Object.values(ck)]);
    } finally {
      tf.dispose([x.latents, x.text]);
      model.dispose();
    }
  });
});

describe('CogVideoXTransformer3DModel', () => {
  it('the sharded diffusers checkpoint loads and reproduces the fixture outputs', async () => {
    const fx = fixturesDir()!;
    const { model, report } = fromPretrained(path.join(fx, 'checkpoints', 'transformer_sharded'), { alignLayer: 2 });
    try {
      expect(report.missing).toEqual([]);
      expect(report.unexpected).toEqual([]);
      expect(report.align?.align_layer).toBe(2);
      const f = SafetensorsFile.open(path.join(fx, 'cogvideox_transformer', 'cogvideox2b_style_sincos.safetensors'));
      const w = SafetensorsFile.open(path.join(fx, 'cogvideox_transformer', 'cogvideox2b_style_sincos.weights.safetensors'));
      try {
        // the same weights as the fixture's weights file
        const sd = model.stateDict();
        for (const [k, t] of sd) expect(Array.from(t.dataSync())).toEqual(Array.from(w.read(k).data as Float32Array));
        tf.dispose([...sd.values()]);
        const latents = tf.transpose(f.tensor('hidden_states'), [0, 1, 3, 4, 2]);
        const text = f.tensor('encoder_hidden_states');
        const out = model.forward(latents, text, Array.from(f.tensor('timestep').dataSync()));
        const want = f.read('output').data as Float32Array;
        const got = tf.transpose(out.sample, [0, 1, 4, 2, 3]).dataSync();
        let err = 0;
        for (let i = 0; i < want.length; i++) err = Math.max(err, Math.abs(got[i]! - want[i]!));
        expect(err).toBeLessThan(1e-4 * 4);
        const wantA = f.read('aligns0').data as Float32Array;
        const gotA = out.aligned!.dataSync();
        let errA = 0;
        for (let i = 0; i < wantA.length; i++) errA = Math.max(errA, Math.abs(gotA[i]! - wantA[i]!));
        expect(errA).toBeLessThan(1e-4);
        tf.dispose([latents, text, out.sample, out.aligned!, out.alignHidden!]);
      } finally {
        f.close();
        w.close();
      }
    } finally {
      model.dispose();
    }
  });

  it('loads F16 / BF16 weights widened to float32, streaming (peak ≈ model + a few tensors)', async () => {
    const fx = fixturesDir()!;
    const src = path.join(fx, 'checkpoints', 'transformer_sharded');
    const w = SafetensorsFile.open(path.join(fx, 'cogvideox_transformer', 'cogvideox2b_style_sincos.weights.safetensors'));
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'vrepa-cvx-'));
    try {
      const all = new Map(w.keys().map((k) => [k, w.read(k)] as const));
      let largest = 0;
      for (const t of all.values()) largest = Math.max(largest, t.data.length * 4);
      for (const dtype of ['F16', 'BF16'] as const) {
        fs.copyFileSync(path.join(src, 'config.json'), path.join(dir, 'config.json'));
        writeSafetensors(path.join(dir, `diffusion_pytorch_model.${dtype.toLowerCase()}.safetensors`), all, { dtype });
        const before = tf.memory().numBytes;
        let model: CogVideoXTransformer3DModel | undefined;
        const prof = await tf.profile(() => {
          model = fromPretrained(dir, { variant: dtype.toLowerCase(), alignLayer: 2 }).model;
          return [] as unknown as tf.Tensor;
        });
        const modelBytes = model!.numParameters() * 4;
        expect(tf.memory().numBytes - before).toBe(modelBytes); // nothing else retained
        expect(prof.peakBytes - before).toBeLessThanOrEqual(modelBytes + 3 * largest);
        const sd = model!.stateDict();
        const rel = dtype === 'F16' ? 2 ** -11 : 2 ** -8;
        let worst = 0;
        for (const [k, t] of sd) {
          const want = all.get(k)!.data as Float32Array;
          const got = t.dataSync();
          for (let i = 0; i < want.length; i++) worst = Math.max(worst, Math.abs(got[i]! - want[i]!) / (rel * Math.abs(want[i]!) + 1e-7));
        }
        expect(worst).toBeLessThanOrEqual(1);
        expect(worst).toBeGreaterThan(0); // really rounded
        tf.dispose([...sd.values()]);
        model!.dispose();
      }
    } finally {
      w.close();
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it('learned positional embeddings (5B-I2V style): a zero table equals rotary-only, a table is added, sizes are checked', () => {
    const base = tinyConfig({ use_rotary_positional_embeddings: true });
    const learned = new CogVideoXTransformer3DModel({ ...base, use_learned_positional_embeddings: true }, { rng: Rng.fromSeed(4) });
    const plain = new CogVideoXTransformer3DModel(base, { init: 'zeros' });
    try {
      const sd = learned.stateDict();
      expect(sd.get('patch_embed.pos_embedding')!.shape).toEqual([1, 5 + 2 * 3 * 2, 32]);
      const noPos = new Map([...sd].filter(([k]) => k !== 'patch_embed.pos_embedding'));
      plain.loadStateDict(noPos);
      const { latents, text, ts } = inputs(learned, 1, 1, 2, 4, 6, 5);
      const a = learned.forward(latents, text, ts).sample;
      const b = plain.forward(latents, text, ts).sample;
      expect(tf.max(tf.abs(tf.sub(a, b))).dataSync()[0]).toBe(0);
      learned.loadStateDict(new Map([['patch_embed.pos_embedding', Rng.fromSeed(8).randomTensor([1, 17, 32], 'normal')]]), { strict: false }); // (a constant table would vanish in the LayerNorms)
      const c = learned.forward(latents, text, ts).sample;
      expect(tf.max(tf.abs(tf.sub(c, b))).dataSync()[0]).toBeGreaterThan(1e-3);
      const big = tf.zeros([1, 2, 6, 6, 4]);
      expect(() => learned.forward(big, text, ts)).toThrow(/learned positional embeddings need the sample size 4×6/);
      expect(() => learned.forward(latents, tf.slice(text, [0, 0, 0], [1, 4, 12]), ts)).toThrow(/need text length max_text_seq_length 5/);
      tf.dispose([a, b, c, big, latents, text, ...sd.values()]);
    } finally {
      learned.dispose();
      plain.dispose();
    }
  });

  it('fromPretrained with `align` on a folder without align weights adds fresh align parts (no missing-key error)', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'vrepa-cvx-noalign-'));
    const plain = new CogVideoXTransformer3DModel(tinyConfig({}), { rng: Rng.fromSeed(5), align: false });
    try {
      savePretrained(plain, dir);
      const { model, report } = fromPretrained(dir, { align: { align_layer: 2, align_dims: [8], projector_dim: 16 } });
      try {
        expect(report.align).toBeNull();
        const names = model.namedParameters().map(([n]) => n);
        expect(names.filter((n) => n.startsWith('projectors.0.')).length).toBe(6);
        expect(names.some((n) => n.startsWith('downsampler_cogvideo_output.'))).toBe(true);
        // the transformer weights are the saved ones
        const want = plain.stateDict();
        const got = model.stateDict();
        for (const [k, t] of want) expect(Array.from(got.get(k)!.dataSync())).toEqual(Array.from(t.dataSync()));
        tf.dispose([...want.values(), ...got.values()]);
      } finally {
        model.dispose();
      }
    } finally {
      plain.dispose();
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it('savePretrained → fromPretrained round trip is bit-exact (single file and shards)', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'vrepa-cvx-save-'));
    const model = new CogVideoXTransformer3DModel(tinyConfig({ use_rotary_positional_embeddings: true }), { rng: Rng.fromSeed(21), align: { align_layer: 2, align_dims: [8], projector_dim: 16 } });
    try {
      const sd = model.stateDict();
      const { latents, text, ts } = inputs(model, 1, 2);
      const want = model.forward(latents, text, ts);
      for (const [sub, maxShardBytes] of [['one', undefined], ['sharded', 20_000]] as const) {
        const files = savePretrained(model, path.join(dir, sub), { maxShardBytes });
        if (sub === 'sharded') {
          expect(files.some((f) => f.endsWith('diffusion_pytorch_model.safetensors.index.json'))).toBe(true);
          expect(files.filter((f) => /-\d{5}-of-\d{5}\.safetensors$/.test(f)).length).toBeGreaterThan(2);
        } else expect(files.map((f) => path.basename(f))).toEqual(['config.json', 'diffusion_pytorch_model.safetensors']);
        const { model: back, report } = fromPretrained(path.join(dir, sub));
        try {
          expect(report.align).toEqual({ align_layer: 2, align_dims: [8], projector_dim: 16 });
          const sd2 = back.stateDict();
          expect([...sd2.keys()]).toEqual([...sd.keys()]);
          for (const [k, t] of sd) expect(Array.from(sd2.get(k)!.dataSync())).toEqual(Array.from(t.dataSync()));
          tf.dispose([...sd2.values()]);
          const got = back.forward(latents, text, ts);
          expect(tf.max(tf.abs(tf.sub(got.sample, want.sample))).dataSync()[0]).toBe(0);
          expect(tf.max(tf.abs(tf.sub(got.aligned!, want.aligned!))).dataSync()[0]).toBe(0);
          tf.dispose([got.sample, got.aligned!, got.alignHidden!]);
        } finally {
          back.dispose();
        }
      }
      tf.dispose([...sd.values(), latents, text, want.sample, want.aligned!, want.alignHidden!]);
    } finally {
      model.dispose();
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it('reports every missing and unexpected key at once (strict), loads with strict: false', () => {
    const fx = fixturesDir()!;
    const w = SafetensorsFile.open(path.join(fx, 'cogvideox_transformer', 'cogvideox2b_style_sincos.weights.safetensors'));
    const model = new CogVideoXTransformer3DModel(tinyConfig({ num_layers: 3, attention_head_dim: 16, text_embed_dim: 32, time_embed_dim: 32, max_text_seq_length: 7 }), { init: 'zeros' });
    try {
      const keys = w.keys().filter((k) => k !== 'proj_out.bias' && k !== 'norm_final.weight');
      const src = { keys: () => [...keys, 'transformer_blocks.9.ff.net.2.weight'], shape: (k: string) => (k.includes('.9.') ? [32, 128] : w.info(k).shape), read: (k: string) => w.read(k) };
      expect(() => loadTransformerWeights(model, src)).toThrow(/no align parts/);
      model.createAlignParts({ align_layer: 1, align_dims: [16], projector_dim: 24 }, { init: 'zeros' });
      expect(() => loadTransformerWeights(model, src)).toThrow(/2 missing key\(s\): (norm_final\.weight, proj_out\.bias|proj_out\.bias, norm_final\.weight).*1 unexpected key\(s\): transformer_blocks\.9\.ff\.net\.2\.weight/s);
      const rep = loadTransformerWeights(model, src, { strict: false });
      expect(rep.missing.sort()).toEqual(['norm_final.weight', 'proj_out.bias']);
      expect(rep.unexpected.filter((k) => !k.startsWith('projectors.') && !k.startsWith('downsampler'))).toEqual(['transformer_blocks.9.ff.net.2.weight']);
    } finally {
      model.dispose();
      w.close();
    }
  });

  it('refuses bad configs, naming the field', () => {
    expect(() => resolveTransformerConfig({ ...tinyConfig(), num_layers: undefined } as never)).toThrow(/num_layers/);
    const noHeads = tinyConfig();
    delete noHeads.num_attention_heads;
    expect(() => resolveTransformerConfig(noHeads)).toThrow(/required field 'num_attention_heads' is missing/);
    expect(() => resolveTransformerConfig(tinyConfig({ patch_size_t: 2 }))).toThrow(/'patch_size_t'.*not supported/);
    expect(() => resolveTransformerConfig(tinyConfig({ ofs_embed_dim: 512 }))).toThrow(/'ofs_embed_dim'/);
    expect(() => resolveTransformerConfig(tinyConfig({ activation_fn: 'relu' }))).toThrow(/'activation_fn'/);
    expect(() => resolveTransformerConfig(tinyConfig({ wibble: 1 }))).toThrow(/unknown field 'wibble'/);
    expect(() => resolveTransformerConfig(tinyConfig({ dropout: 1 }))).toThrow(/'dropout' = 1 must be in \[0, 1\)/);
    expect(resolveTransformerConfig(tinyConfig({ dropout: 0.1 })).config.dropout).toBe(0.1);
    expect(() => resolveTransformerConfig(tinyConfig({ patch_size: 0 }))).toThrow(/'patch_size' must be a positive integer/);
    expect(() => resolveTransformerConfig(tinyConfig({ use_learned_positional_embeddings: true }))).toThrow(/use_learned_positional_embeddings/);
    expect(resolveTransformerConfig({ ...tinyConfig(), _class_name: 'CogVideoXTransformer3DModel', _diffusers_version: '0.30' }).config.num_layers).toBe(2);
  });

  it('refuses bad inputs with one clear sentence', () => {
    const model = new CogVideoXTransformer3DModel(tinyConfig(), { rng: Rng.fromSeed(1), align: { align_layer: 1, align_dims: [8], projector_dim: 16 } });
    try {
      const { latents, text, ts } = inputs(model, 1, 3);
      const run = (l: tf.Tensor, t: tf.Tensor, s: number[], o = {}) => () => model.forward(l, t, s, o);
      tf.tidy(() => {
        expect(run(tf.zeros([1, 2, 5, 6, 4]), text, ts)).toThrow(/height 5 and width 6 must be multiples of patch_size 2/);
        expect(run(tf.zeros([1, 2, 4, 6, 3]), text, ts)).toThrow(/channel axis \(last\) is 3, config in_channels is 4/);
        expect(run(tf.zeros([2, 4, 6, 4]), text, ts)).toThrow(/expected \[batch, frames, height, width, 4\]/);
        expect(run(latents, tf.zeros([1, 6, 12]), ts)).toThrow(/text length 6 is over max_text_seq_length 5/);
        expect(run(latents, tf.zeros([1, 5, 7]), ts)).toThrow(/textEmbeddings: expected \[1, text_len, 12\]/);
        expect(run(latents, text, [1, 2])).toThrow(/timesteps: expected 1 values/);
        expect(run(latents, text, ts, { alignLayer: 3 })).toThrow(/alignLayer 3 is out of range \(1-based block index 1\.\.2/);
      });
      tf.dispose([latents, text]);
    } finally {
      model.dispose();
    }
  });

  it('batch items are independent (2B sincos and 5B rotary)', () => {
    for (const rotary of [false, true]) {
      const model = new CogVideoXTransformer3DModel(tinyConfig({ use_rotary_positional_embeddings: rotary }), { rng: Rng.fromSeed(7), align: { align_layer: 2, align_dims: [8], projector_dim: 16 } });
      try {
        fc.assert(
          fc.property(fc.integer({ min: 0, max: 1000 }), (seed) => {
            const { latents, text, ts } = inputs(model, 2, seed);
            const both = model.forward(latents, text, ts);
            const l1 = tf.slice(latents, [1], [1]);
            const t1 = tf.slice(text, [1], [1]);
            const one = model.forward(l1, t1, [ts[1]!]);
            tf.dispose([l1, t1]);
            const a = tf.slice(both.sample, [1], [1]).dataSync();
            const b = one.sample.dataSync();
            const a2 = tf.slice(both.aligned!, [1], [1]).dataSync();
            const b2 = one.aligned!.dataSync();
            let e = 0;
            for (let i = 0; i < a.length; i++) e = Math.max(e, Math.abs(a[i]! - b[i]!));
            for (let i = 0; i < a2.length; i++) e = Math.max(e, Math.abs(a2[i]! - b2[i]!));
            tf.dispose([latents, text, both.sample, both.aligned!, both.alignHidden!, one.sample, one.aligned!, one.alignHidden!]);
            return e < 1e-5;
          }),
          { numRuns: 4 },
        );
      } finally {
        model.dispose();
      }
    }
  });

  it('hiddenStates(layer k) equals the align forward\'s hidden state after block k', () => {
    const model = new CogVideoXTransformer3DModel(tinyConfig({ use_rotary_positional_embeddings: true, num_layers: 3 }), { rng: Rng.fromSeed(3), align: { align_layer: 2, align_dims: [8], projector_dim: 16 } });
    try {
      const { latents, text, ts } = inputs(model, 2, 4);
      const full = model.forward(latents, text, ts);
      const { tokens, grid } = model.hiddenStates(latents, text, ts, { layer: 2 });
      expect(grid).toEqual({ frames: 2, height: 2, width: 3 });
      expect(tokens.shape).toEqual([2, 12, 32]);
      expect(tf.max(tf.abs(tf.sub(tokens, full.alignHidden!))).dataSync()[0]).toBe(0);
      expect(() => model.hiddenStates(latents, text, ts, { layer: 0 })).toThrow(/layer 0 is out of range \(1-based block index 1\.\.3\)/);
      tf.dispose([latents, text, tokens, full.sample, full.aligned!, full.alignHidden!]);
    } finally {
      model.dispose();
    }
  });

  it('gradient checkpointing gives the same gradients, and only trainable parameters get them', () => {
    const model = new CogVideoXTransformer3DModel(tinyConfig({ use_rotary_positional_embeddings: true }), { rng: Rng.fromSeed(11), align: { align_layer: 1, align_dims: [8], projector_dim: 16 } });
    try {
      const { latents, text, ts } = inputs(model, 2, 5);
      model.requiresGrad(false);
      model.setTrainable((n) => n.startsWith('transformer_blocks.0.attn1.') || n.startsWith('proj_out.') || n.startsWith('projectors.'), true);
      // trainable: block 0's attention, proj_out, and the align parts (the downsampler is not on this path)
      const down = new Set(model.namedParameters().filter(([n]) => n.startsWith('downsampler')).map(([, p]) => p.value));
      const vars = model.trainableParameters().filter((v) => !down.has(v));
      expect(vars.length).toBe(12 + 2 + 6);
      const lossFn = () =>
        tf.tidy(() => {
          const o = model.forward(latents, text, ts);
          return tf.add(tf.mean(tf.square(o.sample)), tf.mean(tf.square(o.aligned!))) as tf.Scalar;
        });
      const g1 = tf.variableGrads(lossFn);
      model.gradientCheckpointing = true;
      const g2 = tf.variableGrads(lossFn);
      model.gradientCheckpointing = false;
      const names1 = Object.keys(g1.grads).sort();
      expect(names1).toEqual(vars.map((v) => v.name).sort());
      expect(Object.keys(g2.grads).sort()).toEqual(names1);
      expect(Math.abs(g1.value.dataSync()[0]! - g2.value.dataSync()[0]!)).toBeLessThan(1e-6);
      for (const n of names1) {
        const a = g1.grads[n]!.dataSync();
        const b = g2.grads[n]!.dataSync();
        let scale = 0;
        let e = 0;
        for (let i = 0; i < a.length; i++) {
          scale = Math.max(scale, Math.abs(a[i]!));
          e = Math.max(e, Math.abs(a[i]! - b[i]!));
        }
        expect(e, n).toBeLessThanOrEqual(1e-5 * Math.max(scale, 1e-3));
      }
      // frozen parameters are not in the gradient map
      expect(names1.some((n) => n.includes('transformer_blocks.1'))).toBe(false);
      tf.dispose([latents, text, g1.value, g2.value, ...Object.values(g1.grads), ...Object.values(g2.grads)]);
    } finally {
      model.dispose();
    }
  });

  it('leaks no tensors (forward, checkpointed gradients)', async () => {
    const model = new CogVideoXTransformer3DModel(tinyConfig({ use_rotary_positional_embeddings: true }), { rng: Rng.fromSeed(2), align: { align_layer: 2, align_dims: [8], projector_dim: 16 } });
    try {
      const { latents, text, ts } = inputs(model, 1, 9);
      expect(await tensorLeakAcross(() => model.forward(latents, text, ts, { returnBlocks: true, returnEmbeddings: true }))).toBe(0);
      model.gradientCheckpointing = true;
      expect(
        await tensorLeakAcross(() => {
          const g = tf.variableGrads(() => tf.tidy(() => tf.mean(model.forward(latents, text, ts).sample) as tf.Scalar));
          return [g.value, ...Object.values(g.grads)];
        }),
      ).toBe(0);
      tf.dispose([latents, text]);
    } finally {
      model.dispose();
    }
  });
});

import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { afterAll, describe, expect, it } from 'vitest';
import { Rng, SafetensorsFile, fixturesDir, openCheckpoint } from '@vrepa/core';
import { tinyConfig } from './test-config.js';
import { CogVideoXTransformer3DModel, exportCommand, exportForInference, fromPretrained, resolveTransformerConfig, savePretrained } from '../index.js';

/**
 * The parameters of stock diffusers' `CogVideoXTransformer3DModel.__init__` — the config fields it
 * accepts without the "config attributes … were passed … but are not expected and will be ignored"
 * warning (ConfigMixin skips `_`-prefixed keys). Copied by hand from the diffusers bundled with the
 * official code: aHapBean/VideoREPA@80026871659c262df12285fff3a2fb7ae696229e,
 * finetune/diffusers/src/diffusers/models/transformers/cogvideox_transformer_3d.py, lines 221–251.
 */
const DIFFUSERS_INIT_ARGS = [
  'num_attention_heads', 'attention_head_dim', 'in_channels', 'out_channels', 'flip_sin_to_cos', 'freq_shift',
  'time_embed_dim', 'ofs_embed_dim', 'text_embed_dim', 'num_layers', 'dropout', 'attention_bias', 'sample_width',
  'sample_height', 'sample_frames', 'patch_size', 'patch_size_t', 'temporal_compression_ratio', 'max_text_seq_length',
  'activation_fn', 'timestep_activation_fn', 'norm_elementwise_affine', 'norm_eps', 'spatial_interpolation_scale',
  'temporal_interpolation_scale', 'use_rotary_positional_embeddings', 'use_learned_positional_embeddings', 'patch_bias',
];
const ALIGN_RE = /^(projectors\.|downsampler_cogvideo_output\.)/;

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'vrepa-export-'));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

const readConfig = (dir: string) => JSON.parse(fs.readFileSync(path.join(dir, 'config.json'), 'utf8')) as Record<string, unknown>;

/** name → { dtype, stored values } of a diffusers folder's weights */
function weightsOf(dir: string): Map<string, { dtype: string; data: number[] }> {
  const files = fs.readdirSync(dir).filter((f) => f.endsWith('.safetensors.index.json'));
  const ck = openCheckpoint(path.join(dir, files[0] ?? fs.readdirSync(dir).find((f) => f.endsWith('.safetensors'))!));
  try {
    return new Map([...ck.tensors].map(([k, t]) => [k, { dtype: t.dtype, data: Array.from(t.read().data as Float32Array) }]));
  } finally {
    ck.close();
  }
}

/** The full export (align parts in) of a tiny model with non-trivial align weights. */
function fullExport(name: string, dtype?: 'F32' | 'BF16'): { dir: string; model: CogVideoXTransformer3DModel } {
  const { config } = resolveTransformerConfig(tinyConfig());
  const model = new CogVideoXTransformer3DModel(config, { rng: Rng.fromSeed(3), align: { align_layer: 1, align_dims: [8], projector_dim: 12 } });
  const dir = path.join(tmp, name);
  savePretrained(model, dir, { dtype });
  return { dir, model };
}

describe('export for inference (no align parts)', () => {
  it('loads back strictly with no align keys; config fields are diffusers\' own; shared weights equal the full export\'s', () => {
    const { dir: full, model } = fullExport('full');
    const inf = path.join(tmp, 'inference');
    try {
      const fullCfg = readConfig(full);
      expect(fullCfg).toMatchObject({ align_layer: 1, align_dims: [8], projector_dim: 12 }); // the full export is unchanged
      const r = exportForInference(full, inf);
      expect(r.dropped.config.sort()).toEqual(['align_dims', 'align_layer', 'projector_dim']);

      const cfg = readConfig(inf);
      const extra = Object.keys(cfg).filter((k) => !k.startsWith('_') && !DIFFUSERS_INIT_ARGS.includes(k));
      expect(extra).toEqual([]);
      for (const [k, v] of Object.entries(cfg)) expect([k, v]).toEqual([k, fullCfg[k]]);

      const a = weightsOf(full);
      const b = weightsOf(inf);
      const alignKeys = [...a.keys()].filter((k) => ALIGN_RE.test(k));
      expect(alignKeys.length).toBeGreaterThan(0);
      expect(r.dropped.weights.sort()).toEqual(alignKeys.sort());
      expect([...b.keys()].filter((k) => ALIGN_RE.test(k))).toEqual([]);
      expect([...b.keys()].sort()).toEqual([...a.keys()].filter((k) => !ALIGN_RE.test(k)).sort());
      for (const [k, t] of b) expect(t.data).toEqual(a.get(k)!.data);

      // strict load: no missing, no unexpected keys, no align parts built; the weight names are exactly
      // those of a transformer built without align parts
      const { model: back, report } = fromPretrained(inf);
      try {
        expect([report.missing, report.unexpected, report.align, back.projector]).toEqual([[], [], null, null]);
        const plain = new CogVideoXTransformer3DModel(back.config, { init: 'zeros', align: false });
        expect([...b.keys()].sort()).toEqual([...plain.namedParameters()].map(([n]) => n).concat([...plain.namedBuffers()].filter(([, x]) => x.persistent).map(([n]) => n)).sort());
        plain.dispose();
      } finally {
        back.dispose();
      }

      // savePretrained({ forInference }) writes the same folder straight from the model, leaking nothing
      const direct = path.join(tmp, 'inference-direct');
      const before = tf.memory().numTensors;
      savePretrained(model, direct, { forInference: true });
      expect(tf.memory().numTensors).toBe(before);
      expect(readConfig(direct)).toEqual(cfg);
      const c = weightsOf(direct);
      expect([...c.keys()]).toEqual([...b.keys()]);
      for (const [k, t] of c) expect(t.data).toEqual(b.get(k)!.data);
    } finally {
      model.dispose();
    }
  });

  it('keeps the stored dtype (BF16 copied exactly); dtype / sharding on request', () => {
    const { dir: full, model } = fullExport('full-bf16', 'BF16');
    model.dispose();
    const out = path.join(tmp, 'inf-bf16');
    exportForInference(full, out);
    const a = weightsOf(full);
    const b = weightsOf(out);
    for (const [k, t] of b) expect([k, t.dtype, t.data]).toEqual([k, 'BF16', a.get(k)!.data]);
    const sharded = path.join(tmp, 'inf-sharded');
    const r = exportForInference(full, sharded, { dtype: 'F32', maxShardBytes: 4096 });
    expect(r.files.some((f) => f.endsWith('diffusion_pytorch_model.safetensors.index.json'))).toBe(true);
    const s = weightsOf(sharded);
    for (const [k, t] of s) expect([k, t.dtype, t.data]).toEqual([k, 'F32', a.get(k)!.data]); // BF16 → F32 widening is exact
  });

  it('the official VideoREPA checkpoint (sharded, align parts in) exports to its diffusers part, value for value', () => {
    const src = path.join(fixturesDir()!, 'checkpoints', 'transformer_sharded');
    const out = path.join(tmp, 'official-inf');
    exportForInference(src, out);
    const a = weightsOf(src);
    const b = weightsOf(out);
    expect([...a.keys()].some((k) => ALIGN_RE.test(k))).toBe(true);
    expect([...b.keys()].sort()).toEqual([...a.keys()].filter((k) => !ALIGN_RE.test(k)).sort());
    for (const [k, t] of b) expect([k, t.dtype, t.data]).toEqual([k, a.get(k)!.dtype, a.get(k)!.data]);
    const { model, report } = fromPretrained(out);
    expect([report.missing, report.unexpected, report.align]).toEqual([[], [], null]);
    model.dispose();
  });

  it('bad input: no config, a pipeline folder, output = input, a non-empty output (kept) unless overwrite', () => {
    const { dir: full, model } = fullExport('full-bad');
    model.dispose();
    expect(() => exportForInference(path.join(tmp, 'nowhere'), path.join(tmp, 'x'))).toThrow(/nowhere\/config.json does not exist/);
    const pipe = path.join(tmp, 'pipe');
    fs.mkdirSync(path.join(pipe, 'transformer'), { recursive: true });
    fs.copyFileSync(path.join(full, 'config.json'), path.join(pipe, 'transformer', 'config.json'));
    expect(() => exportForInference(pipe, path.join(tmp, 'x'))).toThrow(/a pipeline folder\? pass .*pipe\/transformer/);
    expect(() => exportForInference(full, full + '/')).toThrow(/is the input folder/);
    const busy = path.join(tmp, 'busy');
    fs.mkdirSync(busy);
    fs.writeFileSync(path.join(busy, 'keep.txt'), 'mine');
    expect(() => exportForInference(full, busy)).toThrow(/busy exists and is not empty \(pass overwrite/);
    expect(fs.readdirSync(busy)).toEqual(['keep.txt']);
    exportForInference(full, busy, { overwrite: true });
    expect(fs.readdirSync(busy).sort()).toEqual(['config.json', 'diffusion_pytorch_model.safetensors']);
    expect(fs.readdirSync(tmp).filter((f) => /\.(tmp|old)-/.test(f))).toEqual([]);
  });

  it('vrepa export --for-inference <in> --out <dir>', async () => {
    const { dir: full, model } = fullExport('full-cli');
    model.dispose();
    const out = path.join(tmp, 'cli-out');
    const errs: string[] = [];
    const origErr = process.stderr.write.bind(process.stderr);
    const origOut = process.stdout.write.bind(process.stdout);
    const outs: string[] = [];
    (process.stderr as unknown as { write: unknown }).write = (s: string) => (errs.push(String(s)), true);
    (process.stdout as unknown as { write: unknown }).write = (s: string) => (outs.push(String(s)), true);
    try {
      expect(await exportCommand.run(['--for-inference', full, '--out', out])).toBe(0);
      expect(outs.join('')).toMatch(/left out config align_layer, config align_dims, config projector_dim, 8 align weights/);
      const st = SafetensorsFile.open(path.join(out, 'diffusion_pytorch_model.safetensors'));
      expect(st.keys().filter((k) => ALIGN_RE.test(k))).toEqual([]);
      st.close();
      expect(await exportCommand.run(['--for-inference', full, '--out', out])).toBe(1);
      expect(errs.join('')).toMatch(/vrepa export: .*cli-out exists and is not empty/);
      expect(await exportCommand.run(['--for-inference', full])).toBe(2);
      expect(await exportCommand.run(['--for-inference', full, '--out', out, '--dtype', 'f8'])).toBe(2);
      expect(errs.join('')).toMatch(/--out is required[\s\S]*--dtype must be f32, f16 or bf16, got 'f8'/);
    } finally {
      (process.stderr as unknown as { write: unknown }).write = origErr;
      (process.stdout as unknown as { write: unknown }).write = origOut;
    }
  });
});

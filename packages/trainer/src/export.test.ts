import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it, vi } from 'vitest';
import { SafetensorsFile, openCheckpoint } from '@vrepa/core';
import { LORA_ADAPTER_METADATA_KEY, fromPretrained } from '@vrepa/cogvideox';
import { configHash, presetConfig } from './config.js';
import { Trainer } from './trainer.js';
import { trainCommand } from './commands.js';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'vrepa-trainer-export-'));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));
const ALIGN_RE = /^(projectors\.|downsampler_cogvideo_output\.)/;

function weights(dir: string): Map<string, number[]> {
  const ck = openCheckpoint(path.join(dir, 'diffusion_pytorch_model.safetensors'));
  try {
    return new Map([...ck.tensors].map(([k, t]) => [k, Array.from(t.read().data as Float32Array)]));
  } finally {
    ck.close();
  }
}

describe('final export for inference', () => {
  it('full finetune: final/transformer keeps the align parts, final/inference/transformer has none and loads strictly', () => {
    const c = presetConfig('tiny', { train: { export_for_inference: true } });
    expect(configHash(c)).toBe(configHash(presetConfig('tiny'))); // an export choice, not part of the run's identity
    const t = new Trainer(c, { out: path.join(tmp, 'full'), progress: false, log: () => {} });
    try {
      expect(t.trainStep().skipped).toBe(false);
      const full = t.exportFinal(path.join(tmp, 'full', 'final'));
      const inf = path.join(tmp, 'full', 'final', 'inference', 'transformer');
      const a = weights(full);
      const b = weights(inf);
      expect([...a.keys()].some((k) => ALIGN_RE.test(k))).toBe(true);
      expect([...b.keys()].sort()).toEqual([...a.keys()].filter((k) => !ALIGN_RE.test(k)).sort());
      for (const [k, v] of b) expect(v).toEqual(a.get(k));
      const cfg = JSON.parse(fs.readFileSync(path.join(inf, 'config.json'), 'utf8')) as Record<string, unknown>;
      expect(['align_layer', 'align_dims', 'projector_dim'].filter((k) => k in cfg)).toEqual([]);
      const { model, report } = fromPretrained(inf);
      expect([report.missing, report.unexpected, report.align]).toEqual([[], [], null]);
      model.dispose();
    } finally {
      t.dispose();
    }
  });

  it('LoRA: final/inference/pytorch_lora_weights.safetensors has α/r in lora_B and lora_alpha = r', () => {
    const c = presetConfig('tiny-lora', { optim: { lr_warmup_steps: 0, learning_rate: 1e-3 } });
    const t = new Trainer(c, { out: path.join(tmp, 'lora'), progress: false, log: () => {}, exportForInference: true });
    try {
      expect(t.trainStep().skipped).toBe(false);
      const file = t.exportFinal(path.join(tmp, 'lora', 'final'));
      const p = SafetensorsFile.open(file);
      const b = SafetensorsFile.open(path.join(tmp, 'lora', 'final', 'inference', 'pytorch_lora_weights.safetensors'));
      try {
        const { lora_rank: r, lora_alpha: alpha } = c.model;
        expect(JSON.parse(b.metadata[LORA_ADAPTER_METADATA_KEY]!)['transformer.lora_alpha']).toBe(r);
        expect(JSON.parse(p.metadata[LORA_ADAPTER_METADATA_KEY]!)['transformer.lora_alpha']).toBe(alpha);
        expect(b.keys()).toEqual(p.keys());
        let nonZeroB = 0;
        for (const k of p.keys()) {
          const x = Array.from(p.read(k).data as Float32Array);
          const y = Array.from(b.read(k).data as Float32Array);
          const want = k.endsWith('.lora_B.weight') ? x.map((v) => Math.fround(v * (alpha / r))) : x;
          if (k.endsWith('.lora_B.weight')) nonZeroB += x.filter((v) => v !== 0).length;
          expect(y.every((v, i) => Math.abs(v - want[i]!) <= 1e-7 * Math.abs(want[i]!))).toBe(true);
        }
        expect(nonZeroB).toBeGreaterThan(0); // one step moved B off zero: the scale matters
      } finally {
        p.close();
        b.close();
      }
    } finally {
      t.dispose();
    }
  });

  it('vrepa train --export-for-inference writes final/inference; without it, none', async () => {
    const err = vi.spyOn(process.stderr, 'write').mockImplementation(() => true);
    try {
      for (const [name, flag] of [['with', ['--export-for-inference']], ['without', []]] as const) {
        const out = path.join(tmp, `cli-${name}`);
        expect(await trainCommand.run(['--preset', 'tiny', '--out', out, '--max-steps', '1', '--no-progress', ...flag])).toBe(0);
        expect(fs.existsSync(path.join(out, 'final', 'transformer', 'config.json'))).toBe(true);
        expect(fs.existsSync(path.join(out, 'final', 'inference', 'transformer', 'config.json'))).toBe(name === 'with');
      }
    } finally {
      err.mockRestore();
    }
  });
});

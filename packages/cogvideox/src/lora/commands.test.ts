import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { describe, expect, it, vi } from 'vitest';
import { Rng } from '@vrepa/core';
import { CogVideoXTransformer3DModel, addLora, commands, fromPretrained, loraModules, saveLora, savePretrained } from '../index.js';
import { tinyConfig } from '../transformer/test-config.js';

describe('vrepa lora merge', () => {
  it('folds a LoRA file into a transformer folder; the merged model reproduces the adapted one', async () => {
    const cmd = commands.find((c) => c.name === 'lora merge')!;
    expect(cmd).toBeTruthy();
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'vrepa-merge-'));
    const out = vi.spyOn(process.stdout, 'write').mockImplementation(() => true);
    const err = vi.spyOn(process.stderr, 'write').mockImplementation(() => true);
    const model = new CogVideoXTransformer3DModel(tinyConfig(), { rng: Rng.fromSeed(1) });
    try {
      savePretrained(model, path.join(dir, 'base'));
      addLora(model, { rank: 2, alpha: 3 }, { rng: Rng.fromSeed(2) });
      const r = Rng.fromSeed(3);
      for (const l of loraModules(model).values()) l.lora!.B.weight.value.assign(tf.mul(r.randomTensor(l.lora!.B.weight.shape), 0.1));
      const loraFile = saveLora(model, path.join(dir, 'lora'));
      expect(() => savePretrained(model, path.join(dir, 'z'))).toThrow(/8 LoRA adapter\(s\) are not merged/);
      expect(await cmd.run(['--help'])).toBe(0);
      expect(await cmd.run(['--transformer', path.join(dir, 'base')])).toBe(2);
      expect(await cmd.run(['--transformer', path.join(dir, 'base'), '--lora', loraFile, '--out', path.join(dir, 'x'), '--dtype', 'f8'])).toBe(2);
      expect(await cmd.run(['--transformer', path.join(dir, 'base'), '--lora', loraFile, '--out', path.join(dir, 'merged')])).toBe(0);
      const { model: merged } = fromPretrained(path.join(dir, 'merged'));
      try {
        const x = r.randomTensor([1, 2, 4, 6, 4]);
        const t = r.randomTensor([1, 5, 12]);
        const a = model.forward(x, t, [300]).sample;
        const b = merged.forward(x, t, [300]).sample;
        const scale = tf.max(tf.abs(a)).dataSync()[0]!;
        expect(tf.max(tf.abs(tf.sub(a, b))).dataSync()[0]!).toBeLessThan(1e-5 * Math.max(1, scale));
        tf.dispose([x, t, a, b]);
      } finally {
        merged.dispose();
      }
      expect(await cmd.run(['--transformer', path.join(dir, 'nope'), '--lora', loraFile, '--out', path.join(dir, 'y')])).toBe(1);
      expect(String(err.mock.calls.at(-1)?.[0])).toMatch(/config\.json/);
    } finally {
      out.mockRestore();
      err.mockRestore();
      model.dispose();
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});

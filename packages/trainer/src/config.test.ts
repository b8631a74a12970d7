import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { ConfigError, PRESETS, configHash, loadConfigFile, oneDnnFor, parseConfig, presetConfig } from './config.js';
import { lrLambda } from '@vrepa/core';

const errorOf = (f: () => unknown): ConfigError => {
  try {
    f();
  } catch (e) {
    if (e instanceof ConfigError) return e;
    throw e;
  }
  throw new Error('no error');
};

describe('config', () => {
  it('every preset validates; the official recipes carry the paper values', () => {
    for (const name of Object.keys(PRESETS)) {
      // tiny-folder needs the user's folders
      const paths = name === 'tiny-folder' ? { model: { pipeline: 'p' }, data: { dataset_dir: 'd', cache_dir: 'c' } } : {};
      expect(() => presetConfig(name, paths)).not.toThrow();
    }
    expect(() => presetConfig('tiny-folder')).toThrow(/data\.dataset_dir: required.*data\.cache_dir: required.*model\.pipeline: required/);
    const sft = presetConfig('videorepa-2b-sft');
    expect(sft.optim.learning_rate).toBe(2e-6);
    expect(sft.optim.batch_size).toBe(4);
    expect(sft.train.num_epochs).toBe(4);
    expect(sft.train.checkpointing_steps).toBe(800);
    expect(sft.align).toMatchObject({ align_layer: 18, align_dims: [768], proj_coeff: 0.5, margin: 0.1, loss: 'trd' });
    expect(sft.model.training_type).toBe('full');
    const lora = presetConfig('videorepa-5b-lora');
    expect(lora.model).toMatchObject({ training_type: 'lora', lora_rank: 128, lora_alpha: 64 });
    expect(lora.optim.learning_rate).toBe(1e-4);
  });

  it('errors name the key path: unknown keys, wrong types, out of range, cross-field', () => {
    const base = { preset: 'tiny' };
    expect(errorOf(() => parseConfig({ ...base, optim: { learning_rat: 1 } })).message).toMatch(/optim\.learning_rat: unknown key/);
    expect(errorOf(() => parseConfig({ ...base, bogus: 1 })).message).toMatch(/bogus: unknown key/);
    expect(errorOf(() => parseConfig({ ...base, optim: { learning_rate: 'fast' } })).message).toMatch(/optim\.learning_rate: Expected number, received string/);
    expect(errorOf(() => parseConfig({ ...base, optim: { beta2: 1 } })).message).toMatch(/optim\.beta2:/);
    expect(errorOf(() => parseConfig({ ...base, align: { align_dims: [8, -1] } })).message).toMatch(/align\.align_dims\[1\]:/);
    expect(errorOf(() => parseConfig({ ...base, data: { source: 'folder' } })).message).toMatch(/data\.dataset_dir: required when data\.source is 'folder'/);
    expect(errorOf(() => parseConfig({ preset: 'nope' })).message).toMatch(/preset "nope" is not known/);
    expect(errorOf(() => parseConfig({ align: {} })).message).toMatch(/model: Required/);
    expect(errorOf(() => parseConfig([])).message).toMatch(/expected a JSON object/);
  });

  it('a config file overrides its preset and resolves relative paths', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'vrepa-cfg-'));
    const f = path.join(dir, 'c.json');
    fs.writeFileSync(f, JSON.stringify({ preset: 'tiny', data: { cache_dir: 'cache' }, optim: { learning_rate: 5e-4 } }));
    const c = loadConfigFile(f);
    expect(c.optim.learning_rate).toBe(5e-4);
    expect(c.optim.batch_size).toBe(presetConfig('tiny').optim.batch_size);
    expect(c.data.cache_dir).toBe(path.join(dir, 'cache'));
    fs.writeFileSync(f, '{ "preset": "tiny", ');
    expect(() => loadConfigFile(f)).toThrow(/is not valid JSON/);
  });

  it('the config hash ignores what a resume may change and nothing else', () => {
    const a = presetConfig('tiny');
    expect(configHash(presetConfig('tiny', { train: { max_steps: 99, checkpointing_steps: 7, keep_last: 9 } }))).toBe(configHash(a));
    expect(configHash(presetConfig('tiny', { train: { seed: 1 } }))).not.toBe(configHash(a));
    expect(configHash(presetConfig('tiny', { optim: { learning_rate: 2e-3 } }))).not.toBe(configHash(a));
  });
});

describe('LR schedule (diffusers get_scheduler semantics)', () => {
  it('warmup ramps k/warmup from 0, then holds / decays to 0 within [0, 1]', () => {
    expect(lrLambda('constant_with_warmup', 0, 4, 10)).toBe(0);
    expect(lrLambda('constant_with_warmup', 2, 4, 10)).toBe(0.5);
    expect(lrLambda('constant_with_warmup', 7, 4, 10)).toBe(1);
    expect(lrLambda('linear', 10, 4, 10)).toBe(0);
    expect(lrLambda('cosine', 4, 4, 10)).toBe(1);
    expect(lrLambda('cosine', 7, 4, 10)).toBeCloseTo(0.5, 12);
    fc.assert(
      fc.property(fc.constantFrom('constant', 'constant_with_warmup', 'linear', 'cosine' as const), fc.nat(50), fc.nat(20), fc.integer({ min: 1, max: 100 }), (kind, k, w, total) => {
        const v = lrLambda(kind, k, w, Math.max(total, w + 1));
        return v >= 0 && v <= 1;
      }),
    );
  });
});

describe('oneDnnFor', () => {
  it('turns oneDNN off for the tiny preset, leaves real weights to the default, on for a wide config', () => {
    expect(oneDnnFor(presetConfig('tiny'))).toBe(false);
    expect(oneDnnFor(presetConfig('videorepa-2b-sft'))).toBeUndefined();
    expect(oneDnnFor(presetConfig('tiny', { model: { transformer: { num_attention_heads: 8, attention_head_dim: 64 } } }))).toBe(true);
  });
});

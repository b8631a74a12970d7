import { describe, expect, it } from 'vitest';
import { parseConfig, presetConfig } from './config.js';
import { buildDataset, buildModel } from './trainer.js';

describe('trainer hooks for in-code studies (@vrepa/repro)', () => {
  it("align.loss takes the TRD ablations and align.grid_match a Table 5 strategy; unknown values are errors naming the key", () => {
    for (const loss of ['trd', 'trd-spatial', 'trd-temporal', 'trd-paper', 'repa'] as const) expect(presetConfig('tiny', { align: { loss } }).align.loss).toBe(loss);
    expect(presetConfig('tiny').align.grid_match).toBe('teacher-space-teacher-time');
    expect(presetConfig('tiny', { align: { grid_match: 'teacher-interpolated' } }).align.grid_match).toBe('teacher-interpolated');
    expect(() => presetConfig('tiny', { align: { loss: 'trd-diagonal' } })).toThrow(/align\.loss/);
    expect(() => presetConfig('tiny', { align: { grid_match: 'sideways' } })).toThrow(/align\.grid_match/);
  });

  it("data.source 'memory' needs the dataset in code: building it from the config alone is one clear error", () => {
    const c = parseConfig({ preset: 'tiny', data: { source: 'memory' } });
    const model = buildModel(c);
    try {
      expect(() => buildDataset(c, model)).toThrow(/data\.source 'memory' needs the dataset passed in code/);
    } finally {
      model.dispose();
    }
  });
});

import { describe, expect, it } from 'vitest';
import { fixturesDir, registerConformanceHandler, runConformance } from '@vrepa/core';
import { t5EncoderHandler } from './conformance.js';

const dir = fixturesDir();

describe.runIf(dir)('t5_encoder conformance (shared fixtures)', () => {
  it('every sub-case passes (models, pipeline call at 226 tokens, tokenizer)', async () => {
    registerConformanceHandler('t5_encoder', t5EncoderHandler);
    const report = await runConformance(dir!, { cases: ['t5_encoder'] });
    const rows = report.results.map((r) => `${r.subcase}: ${r.pass ? 'pass' : `FAIL ${r.error ?? r.comparisons.filter((c) => !c.pass).map((c) => `${c.tensor} ${c.maxError}`).join(', ')}`}`);
    expect(report.results.length).toBeGreaterThanOrEqual(4);
    for (const r of report.results) expect(r.pass, rows.join('\n')).toBe(true);
  }, 60_000);
});

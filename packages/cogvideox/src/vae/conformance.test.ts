import { describe, expect, it } from 'vitest';
import { fixturesDir, registerConformanceHandler, runConformance } from '@vrepa/core';
import { cogvideoxVaeHandler } from './conformance.js';

const dir = fixturesDir();

describe.runIf(dir)('cogvideox_vae conformance (shared fixtures)', () => {
  it('every sub-case passes (posterior, sample, scaled latents, decode)', async () => {
    registerConformanceHandler('cogvideox_vae', cogvideoxVaeHandler);
    const report = await runConformance(dir!, { cases: ['cogvideox_vae'] });
    const rows = report.results.map(
      (r) => `${r.subcase}: ${r.pass ? 'pass' : `FAIL ${r.error ?? ''}`} ${r.comparisons.map((c) => `${c.tensor} ${c.maxError.toExponential(2)} (${c.ratio.toFixed(2)})`).join(', ')}`,
    );
    expect(report.results.length).toBeGreaterThanOrEqual(1);
    for (const r of report.results) expect(r.pass, rows.join('\n')).toBe(true);
    expect(report.results.every((r) => r.tensors >= 6), rows.join('\n')).toBe(true);
  }, 60_000);
});

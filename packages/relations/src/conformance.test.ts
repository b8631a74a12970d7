import { describe, expect, it } from 'vitest';
import { fixturesDir, registerConformanceHandler, runConformance } from '@vrepa/core';
import { conformanceHandlers, raggedChunk } from './conformance.js';

describe('trd_loss conformance (shared fixtures)', () => {
  it('every sub-case passes: relations, all forms (chunked, ragged chunks, naive), paper identity, REPA', async () => {
    const dir = fixturesDir();
    expect(dir, 'shared fixtures directory not found (set VREPA_FIXTURES)').toBeTruthy();
    for (const [name, h] of Object.entries(conformanceHandlers)) registerConformanceHandler(name, h);
    const report = await runConformance(dir!, { cases: ['trd_loss'] });
    const bad = report.results.filter((r) => !r.pass);
    const detail = bad.map((r) => `${r.subcase}: ${r.error ?? r.comparisons.filter((c) => !c.pass).map((c) => `${c.tensor} ratio ${c.ratio}`).join('; ')}`);
    expect(detail).toEqual([]);
    expect(report.results.length).toBeGreaterThan(0);
    for (const r of report.results) expect(r.tensors).toBeGreaterThanOrEqual(3);
  });

  it('raggedChunk gives a block size that does not divide N where one exists', () => {
    for (const n of [2, 3, 8, 18, 40, 60, 1200, 3600]) {
      const c = raggedChunk(n);
      expect(c).toBeGreaterThanOrEqual(1);
      expect(c).toBeLessThanOrEqual(n);
      if (n > 2) expect(n % c).not.toBe(0);
    }
  });
});

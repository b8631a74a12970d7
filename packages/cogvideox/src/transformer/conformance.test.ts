import { describe, expect, it } from 'vitest';
import { fixturesDir, registerConformanceHandler, runConformance } from '@vrepa/core';
import { conformanceHandlers } from '../index.js';

describe('cogvideox_transformer conformance', () => {
  it('every sub-case of the shared fixture set passes', async () => {
    const dir = fixturesDir();
    expect(dir, 'shared fixtures not found (set VREPA_FIXTURES)').toBeTruthy();
    registerConformanceHandler('cogvideox_transformer', conformanceHandlers.cogvideox_transformer!);
    const report = await runConformance(dir!, { cases: ['cogvideox_transformer'] });
    const bad = report.results.filter((r) => !r.pass).map((r) => `${r.subcase}: ${r.error ?? ''} ${r.comparisons.filter((c) => !c.pass).map((c) => `${c.tensor} err ${c.maxError} ratio ${c.ratio}`).join('; ')}`);
    expect(bad).toEqual([]);
    expect(report.results.length).toBeGreaterThanOrEqual(4);
    for (const r of report.results) expect(r.tensors).toBeGreaterThanOrEqual(8);
  });
});

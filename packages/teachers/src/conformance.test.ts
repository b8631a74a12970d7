import { describe, expect, it } from 'vitest';
import { fixturesDir, registerConformanceHandler, runConformance } from '@vrepa/core';
import { conformanceHandlers } from './index.js';

const dir = fixturesDir();

describe('conformance (shared fixtures)', () => {
  for (const [name, h] of Object.entries(conformanceHandlers)) registerConformanceHandler(name, h);
  for (const caseName of Object.keys(conformanceHandlers)) {
    it(`${caseName}: every sub-case passes`, async () => {
      expect(dir, 'shared fixtures directory').toBeTruthy();
      const report = await runConformance(dir!, { cases: [caseName] });
      const bad = report.results.filter((r) => !r.pass);
      if (process.env.VREPA_VERBOSE) console.log(report.results.map((r) => `${r.case}/${r.subcase}: ${r.pass} ${r.tensors} worst ${r.worst_ratio} ${r.worst_tensor}`).join("\n"));
      const summary = report.results.map((r) => `${r.subcase}: ${r.pass ? 'ok' : 'FAIL'} ${r.tensors} tensors, worst ${r.worst_ratio?.toExponential(2)} (${r.worst_tensor}) ${r.error ?? ''}`);
      expect(bad.map((r) => `${r.subcase} ${r.error ?? ''} ${r.comparisons.filter((c) => !c.pass).map((c) => `${c.tensor} ratio ${c.ratio} ${c.detail ?? ''}`).join('; ')}`), summary.join('\n')).toEqual([]);
      expect(report.results.length).toBeGreaterThan(0);
      expect(report.results.every((r) => r.tensors > 0)).toBe(true);
    });
  }
});

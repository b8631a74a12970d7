import { describe, expect, it } from 'vitest';
import { runHandlersOnFixtures } from '@vrepa/core';
import { conformanceHandlers } from './index.js';

describe('conformance (shared fixtures)', () => {
  for (const caseName of Object.keys(conformanceHandlers)) {
    it(`${caseName}: every sub-case passes`, async () => {
      const { results, failures, table } = await runHandlersOnFixtures(conformanceHandlers, [caseName]);
      if (process.env.VREPA_VERBOSE) console.log(table);
      expect(failures, table).toEqual([]);
      expect(results.length).toBeGreaterThan(0);
      expect(results.every((r) => r.tensors > 0)).toBe(true);
    });
  }
});

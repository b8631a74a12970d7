import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { fixturesDir, runHandlersOnFixtures } from '@vrepa/core';
import { conformanceHandlers } from './index.js';

// videomae_pretrain lives in its own set next to the main one (../shared/fixtures-pretrain)
const PRETRAIN_CASES = new Set(['videomae_pretrain']);
const pretrainDir = () => process.env.VREPA_FIXTURES_PRETRAIN ?? path.join(path.dirname(fixturesDir() ?? ''), 'fixtures-pretrain');

describe('conformance (shared fixtures)', () => {
  for (const caseName of Object.keys(conformanceHandlers)) {
    it(`${caseName}: every sub-case passes`, async () => {
      const dir = PRETRAIN_CASES.has(caseName) ? pretrainDir() : undefined;
      const { results, failures, table } = await runHandlersOnFixtures(conformanceHandlers, [caseName], dir);
      if (process.env.VREPA_VERBOSE) console.log(table);
      expect(failures, table).toEqual([]);
      expect(results.length).toBeGreaterThan(0);
      expect(results.every((r) => r.tensors > 0)).toBe(true);
    });
  }
});

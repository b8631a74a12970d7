import { describe, expect, it } from 'vitest';
import { runHandlersOnFixtures } from '@vrepa/core';
import { conformanceHandlers, raggedChunk } from './conformance.js';

describe('trd_loss conformance (shared fixtures)', () => {
  it('every sub-case passes: relations, all forms (chunked, ragged chunks, naive), paper identity, REPA', async () => {
    const { results, failures, table } = await runHandlersOnFixtures(conformanceHandlers, ['trd_loss']);
    expect(failures, table).toEqual([]);
    expect(results.length).toBeGreaterThan(0);
    for (const r of results) expect(r.tensors).toBeGreaterThanOrEqual(3);
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

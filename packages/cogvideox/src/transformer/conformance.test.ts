import { describe, expect, it } from 'vitest';
import { runHandlersOnFixtures } from '@vrepa/core';
import { conformanceHandlers } from '../index.js';

describe('cogvideox_transformer conformance', () => {
  it('every sub-case of the shared fixture set passes', async () => {
    const { results, failures, table } = await runHandlersOnFixtures({ cogvideox_transformer: conformanceHandlers.cogvideox_transformer! }, ['cogvideox_transformer']);
    expect(failures, table).toEqual([]);
    expect(results.length).toBeGreaterThanOrEqual(4);
    for (const r of results) expect(r.tensors).toBeGreaterThanOrEqual(8);
  });
});

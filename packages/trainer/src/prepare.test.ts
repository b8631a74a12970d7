import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { presetConfig } from './config.js';
import { prepareCaches, verifyCaches } from './prepare.js';

const root = fs.mkdtempSync(path.join(os.tmpdir(), 'vrepa-prepare-'));
afterAll(() => fs.rmSync(root, { recursive: true, force: true }));

describe('sharded prepare of a synthetic cache', () => {
  it('two shards fill the cache; verify lists missing and corrupt samples', async () => {
    const c = presetConfig('tiny', { data: { cache_dir: path.join(root, 'cache') } }); // 4 samples
    const s0 = await prepareCaches(c, { progress: false, shard: { index: 0, count: 2 } });
    expect([s0.written, s0.cached]).toEqual([2, 0]);
    expect(verifyCaches(c)).toMatchObject({ rows: 4, ok: 2, missing: [1, 3], corrupt: [] });
    const s1 = await prepareCaches(c, { progress: false, shard: { index: 1, count: 2 } });
    expect([s1.written, s1.cached]).toEqual([2, 0]);
    expect(verifyCaches(c)).toMatchObject({ ok: 4, missing: [], corrupt: [] });
    // an unsharded run finds everything cached
    expect(await prepareCaches(c, { progress: false })).toMatchObject({ written: 0, cached: 4 });
    fs.writeFileSync(path.join(c.data.cache_dir!, 'sample-2.safetensors'), 'garbage');
    fs.rmSync(path.join(c.data.cache_dir!, 'sample-0.safetensors'));
    const v = verifyCaches(c);
    expect([v.ok, v.missing, v.corrupt.map((x) => x.row)]).toEqual([2, [0], [2]]);
  });
});

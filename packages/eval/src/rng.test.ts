import { describe, expect, it } from 'vitest';
import { Rng } from './rng.js';

describe('eval Rng on core xoshiro128**', () => {
  it('draws the same streams as the standalone generator that made the existing datasets', () => {
    // First draws of eval's previous self-contained xoshiro128** (splitmix32 seeding), recorded before it moved onto core's.
    const golden: Record<number, number[]> = {
      0: [1292791899, 1284423797, 2013314966, 862, 0.8639268053229898, -0.017566211314612765],
      1: [2466671647, 704075991, 1425070668, 550, 0.22266446216963232, 0.21570586528443167],
      12345: [2407269127, 3079606827, 3141342157, 409, 0.9063692681957036, 1.2910278036843192],
      2147483655: [2569552498, 1020836421, 3705622772, 969, 0.3772368407808244, 2.570612249922655],
    };
    for (const [seed, want] of Object.entries(golden)) {
      const r = new Rng(Number(seed));
      expect([r.nextU32(), r.nextU32(), r.nextU32(), r.int(1000), r.next(), r.normal()]).toEqual(want);
    }
  });

  it('shuffle is a permutation and pick stays in range', () => {
    const r = new Rng(7);
    const a = r.shuffle([...Array(50).keys()]);
    expect([...a].sort((x, y) => x - y)).toEqual([...Array(50).keys()]);
    for (let i = 0; i < 100; i++) expect(['a', 'b', 'c']).toContain(r.pick(['a', 'b', 'c']));
  });
});

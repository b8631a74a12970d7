import * as tf from '@tensorflow/tfjs';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { Rng, randomTensor, tensorLeakAcross } from './index.js';

const draw = (r: Rng, n: number) => Array.from({ length: n }, () => r.nextUint32());

describe('Rng (xoshiro128**)', () => {
  it('matches the reference algorithm on state [1, 2, 3, 4] (hand-derived first outputs)', () => {
    // s1 = 2 → rotl(10, 7)·9 = 11520; then s1 = 0 → 0; then s1 = 1029 → rotl(5145, 7)·9 = 5927040
    const r = Rng.fromState({ algorithm: 'xoshiro128**', s: [1, 2, 3, 4], spare: null });
    expect(draw(r, 3)).toEqual([11520, 0, 5927040]);
  });

  it('same seed gives the same stream; other seeds and streams differ', () => {
    fc.assert(
      fc.property(fc.nat(), fc.nat(1000), (seed, stream) => {
        const a = draw(Rng.fromSeed(seed, stream), 16);
        expect(draw(Rng.fromSeed(seed, stream), 16)).toEqual(a);
        expect(draw(Rng.fromSeed(seed + 1, stream), 16)).not.toEqual(a);
        expect(draw(Rng.fromSeed(seed, stream + 1), 16)).not.toEqual(a);
      }),
      { numRuns: 50 },
    );
  });

  it('saving the state to JSON and restoring continues bit-exactly (uniform, normal with a pending spare, randint)', () => {
    fc.assert(
      fc.property(fc.nat(), fc.nat(7), (seed, pre) => {
        const r = Rng.fromSeed(seed);
        for (let i = 0; i < pre; i++) r.normal(); // odd counts leave a spare pending
        const saved = JSON.stringify(r.state());
        const seq = () => [r.uniform(), r.normal(), r.normal(), r.normal(), r.randint(0, 1000), ...r.permutation(5)];
        const a = seq();
        const back = Rng.fromState(JSON.parse(saved));
        const r2 = back;
        const b = [r2.uniform(), r2.normal(), r2.normal(), r2.normal(), r2.randint(0, 1000), ...r2.permutation(5)];
        expect(b).toEqual(a);
      }),
      { numRuns: 50 },
    );
  });

  it('setState rewinds in place; clone is independent', () => {
    const r = Rng.fromSeed(7);
    r.normal();
    const s = r.state();
    const a = [r.normal(), r.uniform()];
    const c = r.clone();
    r.setState(s);
    expect([r.normal(), r.uniform()]).toEqual(a);
    expect(c.uniform()).not.toEqual(a[1]);
  });

  it('uniform, normal and randint have the right moments (n = 200000, 5-sigma bounds)', () => {
    const r = Rng.fromSeed(12345);
    const n = 200_000;
    let su = 0;
    let su2 = 0;
    let sn = 0;
    let sn2 = 0;
    let sn3 = 0;
    let sn4 = 0;
    let minU = 1;
    let maxU = 0;
    const counts = new Array(7).fill(0);
    for (let i = 0; i < n; i++) {
      const u = r.uniform();
      su += u;
      su2 += u * u;
      minU = Math.min(minU, u);
      maxU = Math.max(maxU, u);
      const z = r.normal();
      sn += z;
      sn2 += z * z;
      sn3 += z ** 3;
      sn4 += z ** 4;
      counts[r.randint(0, 7)]++;
    }
    expect(minU).toBeGreaterThanOrEqual(0);
    expect(maxU).toBeLessThan(1);
    // uniform: mean 1/2 (sd of mean √(1/12/n)), E[u²] = 1/3
    expect(Math.abs(su / n - 0.5)).toBeLessThan(5 * Math.sqrt(1 / 12 / n));
    expect(Math.abs(su2 / n - 1 / 3)).toBeLessThan(5 * Math.sqrt(4 / 45 / n));
    // normal: mean 0, variance 1, skew 0, kurtosis 3 (sds √(1/n), √(2/n), √(15/n), √(96/n))
    expect(Math.abs(sn / n)).toBeLessThan(5 * Math.sqrt(1 / n));
    expect(Math.abs(sn2 / n - 1)).toBeLessThan(5 * Math.sqrt(2 / n));
    expect(Math.abs(sn3 / n)).toBeLessThan(5 * Math.sqrt(15 / n));
    expect(Math.abs(sn4 / n - 3)).toBeLessThan(5 * Math.sqrt(96 / n));
    // randint: each of 7 values with p = 1/7
    for (const c of counts) expect(Math.abs(c / n - 1 / 7)).toBeLessThan(5 * Math.sqrt((1 / 7) * (6 / 7) / n));
  });

  it('randint stays in range; permutation is a permutation; shuffle keeps the multiset', () => {
    fc.assert(
      fc.property(fc.nat(), fc.integer({ min: -1000, max: 1000 }), fc.integer({ min: 1, max: 2 ** 32 }), fc.nat(200), (seed, lo, span, n) => {
        const r = Rng.fromSeed(seed);
        for (let i = 0; i < 20; i++) {
          const x = r.randint(lo, lo + span);
          expect(Number.isInteger(x) && x >= lo && x < lo + span).toBe(true);
        }
        const p = Array.from(r.permutation(n)).sort((a, b) => a - b);
        expect(p).toEqual(Array.from({ length: n }, (_, i) => i));
        const arr = ['a', 'b', 'c', 'd', 'e'];
        expect([...r.shuffle([...arr])].sort()).toEqual(arr);
      }),
      { numRuns: 100 },
    );
  });

  it('rejects bad seeds and states with a clear error', () => {
    expect(() => Rng.fromSeed(-1)).toThrow(/seed must be a non-negative safe integer, got -1/);
    expect(() => Rng.fromSeed(1.5)).toThrow(/seed/);
    expect(() => Rng.fromState({ algorithm: 'pcg' } as any)).toThrow(/expected algorithm 'xoshiro128\*\*'/);
    expect(() => Rng.fromState({ algorithm: 'xoshiro128**', s: [0, 0, 0, 0], spare: null })).toThrow(/all zeros/);
    expect(() => Rng.fromState({ algorithm: 'xoshiro128**', s: [1, 2, 3], spare: null } as any)).toThrow(/four unsigned 32-bit/);
    expect(() => Rng.fromSeed(1).randint(3, 3)).toThrow(/low < high/);
  });

  it('the fast fill loops give exactly the values (and end state) of one-at-a-time calls', () => {
    fc.assert(
      fc.property(fc.nat(), fc.nat(3), fc.integer({ min: 0, max: 300 }), (seed, pre, n) => {
        const a = Rng.fromSeed(seed);
        const b = Rng.fromSeed(seed);
        for (let i = 0; i < pre; i++) a.normal(), b.normal(); // maybe a pending spare
        expect(Array.from(a.fillNormal(new Float32Array(n), 1, 2))).toEqual(Array.from({ length: n }, () => Math.fround(1 + 2 * b.normal())));
        expect(a.state()).toEqual(b.state());
        expect(Array.from(a.fillUint32(new Uint32Array(n)))).toEqual(Array.from({ length: n }, () => b.nextUint32()));
        const u = a.fillUniform(new Float32Array(n), -1, 3);
        const c = b.clone();
        const raw = Array.from({ length: n }, () => c.nextUint32());
        expect(Array.from(u)).toEqual(raw.map((r) => Math.fround(-1 + 4 * ((r >>> 8) / 16777216))));
        expect(u.every((x) => x >= -1 && x < 3)).toBe(true);
      }),
      { numRuns: 60 },
    );
  });

  it('fork gives a reproducible independent stream', () => {
    const a = Rng.fromSeed(3);
    const b = Rng.fromSeed(3);
    expect(draw(a.fork(), 8)).toEqual(draw(b.fork(), 8));
    expect(draw(a, 8)).toEqual(draw(b, 8));
  });
});

describe('randomTensor', () => {
  it('is the rng stream in C order, same on re-seed, with the requested moments', async () => {
    const t = Rng.fromSeed(1).randomTensor([200, 300], 'normal', { mean: 2, std: 3 });
    expect(t.shape).toEqual([200, 300]);
    expect(t.dtype).toBe('float32');
    const d = (await t.data()) as Float32Array;
    const r = Rng.fromSeed(1);
    expect(d[0]).toBeCloseTo(2 + 3 * r.normal(), 5);
    expect(d[1]).toBeCloseTo(2 + 3 * r.normal(), 5);
    const n = d.length;
    const mean = d.reduce((a, b) => a + b, 0) / n;
    const v = d.reduce((a, b) => a + (b - mean) ** 2, 0) / n;
    expect(Math.abs(mean - 2)).toBeLessThan(5 * 3 / Math.sqrt(n));
    expect(Math.abs(v / 9 - 1)).toBeLessThan(5 * Math.sqrt(2 / n));
    const same = randomTensor([200, 300], 'normal', { rng: Rng.fromSeed(1), mean: 2, std: 3 });
    expect(Array.from(await same.data())).toEqual(Array.from(d));
    const u = await randomTensor([10000], 'uniform', { seed: 5, low: -2, high: 4 }).data();
    expect(Math.min(...u)).toBeGreaterThanOrEqual(-2);
    expect(Math.max(...u)).toBeLessThan(4);
    tf.dispose([t, same]);
  });

  it('leaks no tensors', async () => {
    const r = Rng.fromSeed(0);
    expect(await tensorLeakAcross(() => r.randomTensor([3, 4], 'uniform'))).toBe(0);
  });
});

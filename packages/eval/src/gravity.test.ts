import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { gravityConsistency, gravityPxPerFrame2, type Track } from './gravity.js';

/** A ballistic track sampled per frame: y(f) = y0 + v·f + g·f²/2 (image y down), exact second differences g. */
const ballistic = (n: number, y0: number, v: number, g: number, x0 = 10, vx = 1): Track => Array.from({ length: n }, (_, f) => [x0 + vx * f, y0 + v * f + (g * f * f) / 2] as [number, number]);

describe('gravityConsistency', () => {
  it('free fall under gravity has no violations; its second differences equal g (hand-derived)', () => {
    const g = gravityPxPerFrame2(12, 8); // 9.81·12/64 = 1.839… px/frame²
    expect(g).toBeCloseTo((9.81 * 12) / 64, 12);
    const r = gravityConsistency([ballistic(10, 5, 0, g)], g);
    expect(r.triples).toBe(8);
    expect(r.violations).toBe(0);
    expect(r.rate).toBe(0);
  });

  it('a fall at three times gravity violates on every triple', () => {
    const g = 2;
    const r = gravityConsistency([ballistic(7, 0, 0, 3 * g)], g);
    expect(r.triples).toBe(5);
    expect(r.violations).toBe(5);
  });

  it('one-frame displacements: second differences derived by hand', () => {
    const g = 1;
    const rest: Track = Array.from({ length: 9 }, () => [20, 30] as [number, number]);
    const jump = rest.map((p, f) => (f === 4 ? ([20, 40] as [number, number]) : p));
    // y = 30,30,30,30,40,30,…: second differences at f = 3, 4, 5 are +10, −20, +10 → two downward violations
    expect(gravityConsistency([jump], g).violations).toBe(2);
    const bounce = rest.map((p, f) => (f === 4 ? ([20, 20] as [number, number]) : p));
    // y = …,30,20,30,…: second differences −10, +20, −10 → one violation (the return from the upward blip)
    expect(gravityConsistency([bounce], g).violations).toBe(1);
  });

  it('hidden frames break triples and empty tracks give NaN', () => {
    const r = gravityConsistency([[[0, 0], undefined, [0, 1], [0, 2]]], 1);
    expect(r.triples).toBe(0);
    expect(r.rate).toBeNaN();
    expect(() => gravityConsistency([], 0)).toThrow(/g must be > 0/);
  });

  it('property: violations never exceed triples and scale-free in the limit factor (larger factor, fewer violations)', () => {
    fc.assert(
      fc.property(fc.array(fc.tuple(fc.float({ min: -50, max: 50, noNaN: true }), fc.float({ min: -50, max: 50, noNaN: true })), { minLength: 3, maxLength: 20 }), fc.float({ min: Math.fround(0.1), max: 5, noNaN: true }), (pts, g) => {
        const tr: Track = pts.map(([x, y]) => [x, y]);
        const a = gravityConsistency([tr], g, { factor: 1 });
        const b = gravityConsistency([tr], g, { factor: 3 });
        expect(a.violations).toBeLessThanOrEqual(a.triples);
        expect(b.violations).toBeLessThanOrEqual(a.violations);
      }),
    );
  });
});

import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { bootstrapDifference, describeDifference, pairedDifference, tInterval, tQuantile975 } from './stats.js';

describe('intervals', () => {
  it('t interval of [1, 2, 3]: mean 2, sd 1, half-width 4.303/√3 (hand-derived with the t table, df 2)', () => {
    const i = tInterval([1, 2, 3]);
    expect(i.mean).toBe(2);
    expect(i.sd).toBeCloseTo(1, 12);
    expect(i.hi - i.mean).toBeCloseTo(4.303 / Math.sqrt(3), 10);
    expect(i.mean - i.lo).toBeCloseTo(4.303 / Math.sqrt(3), 10);
  });

  it('one value has no interval; non-finite values are dropped', () => {
    expect(tInterval([0.5]).lo).toBeNaN();
    expect(tInterval([1, NaN, 3]).n).toBe(2);
    expect(describeDifference(tInterval([0.02])).text).toMatch(/no interval/);
    expect(describeDifference(tInterval([0.02])).hasInterval).toBe(false);
  });

  it('paired difference: a constant shift gives a zero-width interval at the shift', () => {
    const d = pairedDifference([0.6, 0.7, 0.8], [0.5, 0.6, 0.7]);
    expect(d.mean).toBeCloseTo(0.1, 12);
    expect(d.lo).toBeCloseTo(0.1, 12);
    expect(describeDifference(d).text).toBe('+10.0 points, 95% CI [+10.0, +10.0]');
    expect(describeDifference(d).significant).toBe(true);
  });

  it('t quantiles fall toward 1.96', () => {
    for (let df = 1; df < 60; df++) expect(tQuantile975(df + 1)).toBeLessThan(tQuantile975(df));
    expect(() => tQuantile975(0)).toThrow(/df/);
  });

  it('property: the t interval contains the mean and widens with more spread', () => {
    fc.assert(
      fc.property(fc.array(fc.float({ min: -10, max: 10, noNaN: true }), { minLength: 2, maxLength: 12 }), (xs) => {
        const i = tInterval(xs);
        expect(i.lo).toBeLessThanOrEqual(i.mean + 1e-9);
        expect(i.hi).toBeGreaterThanOrEqual(i.mean - 1e-9);
        const wide = tInterval(xs.map((x) => 2 * x));
        expect(wide.hi - wide.lo).toBeCloseTo(2 * (i.hi - i.lo), 6);
      }),
    );
  });

  it('bootstrap: seeded (same numbers twice) and centred on the difference of means', () => {
    const a = [1, 2, 3, 4, 5];
    const b = [0, 1, 2, 3, 4];
    const x = bootstrapDifference(a, b, 3);
    expect(bootstrapDifference(a, b, 3)).toEqual(x);
    expect(x.mean).toBe(1);
    expect(x.lo).toBeLessThan(1);
    expect(x.hi).toBeGreaterThan(1);
  });
});

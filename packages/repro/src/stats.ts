/**
 * Intervals for the report: Student-t 95% intervals of a mean, and of the mean of paired differences
 * (the same seed in two arms), plus a seeded percentile bootstrap for unpaired differences.
 */
import { Rng } from '@vrepa/core';

/** Two-sided 97.5% quantiles of Student's t for df = 1..30 (standard tables); df > 30 uses 1.96 + 2.4/df. */
const T975 = [12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.16, 2.145, 2.131, 2.12, 2.11, 2.101, 2.093, 2.086, 2.08, 2.074, 2.069, 2.064, 2.06, 2.056, 2.052, 2.048, 2.045, 2.042];

export function tQuantile975(df: number): number {
  if (!(Number.isInteger(df) && df >= 1)) throw new RangeError(`tQuantile975: df must be a positive integer, got ${df}`);
  return df <= 30 ? T975[df - 1]! : 1.96 + 2.4 / df;
}

export interface Interval {
  mean: number;
  lo: number;
  hi: number;
  n: number;
  /** sample standard deviation (ddof 1; 0 for one value) */
  sd: number;
}

export function mean(xs: number[]): number {
  return xs.reduce((a, b) => a + b, 0) / xs.length;
}

export function sampleSd(xs: number[]): number {
  if (xs.length < 2) return 0;
  const m = mean(xs);
  return Math.sqrt(xs.reduce((a, b) => a + (b - m) ** 2, 0) / (xs.length - 1));
}

/** Mean with its 95% t interval (finite values only; one value → a zero-width interval, flagged by n = 1). */
export function tInterval(values: number[]): Interval {
  const xs = values.filter(Number.isFinite);
  if (xs.length === 0) return { mean: NaN, lo: NaN, hi: NaN, n: 0, sd: NaN };
  const m = mean(xs);
  if (xs.length === 1) return { mean: m, lo: NaN, hi: NaN, n: 1, sd: 0 };
  const sd = sampleSd(xs);
  const h = (tQuantile975(xs.length - 1) * sd) / Math.sqrt(xs.length);
  return { mean: m, lo: m - h, hi: m + h, n: xs.length, sd };
}

/** 95% t interval of the mean paired difference a[i] − b[i]. */
export function pairedDifference(a: number[], b: number[]): Interval {
  if (a.length !== b.length) throw new RangeError(`pairedDifference: ${a.length} vs ${b.length} values`);
  return tInterval(a.map((x, i) => x - b[i]!));
}

/** Seeded percentile-bootstrap 95% interval of mean(a) − mean(b) (unpaired). */
export function bootstrapDifference(a: number[], b: number[], seed = 0, resamples = 2000): Interval {
  const xa = a.filter(Number.isFinite);
  const xb = b.filter(Number.isFinite);
  if (!xa.length || !xb.length) return { mean: NaN, lo: NaN, hi: NaN, n: 0, sd: NaN };
  const rng = Rng.fromSeed(seed, 77);
  const diffs: number[] = [];
  for (let r = 0; r < resamples; r++) {
    let sa = 0;
    let sb = 0;
    for (let i = 0; i < xa.length; i++) sa += xa[rng.randint(0, xa.length)]!;
    for (let i = 0; i < xb.length; i++) sb += xb[rng.randint(0, xb.length)]!;
    diffs.push(sa / xa.length - sb / xb.length);
  }
  diffs.sort((x, y) => x - y);
  return { mean: mean(xa) - mean(xb), lo: diffs[Math.floor(0.025 * resamples)]!, hi: diffs[Math.ceil(0.975 * resamples) - 1]!, n: Math.min(xa.length, xb.length), sd: sampleSd(diffs) };
}

/** "+x.x points, 95% CI [a, b]" and whether the interval excludes 0. */
export function describeDifference(d: Interval, scale = 100, unit = 'points', digits = 1): { text: string; significant: boolean; sign: -1 | 0 | 1; hasInterval: boolean } {
  const f = (x: number) => (x * scale >= 0 ? '+' : '') + (x * scale).toFixed(digits);
  if (!Number.isFinite(d.lo)) return { text: `${f(d.mean)} ${unit} (one value: no interval)`, significant: false, sign: 0, hasInterval: false };
  const significant = d.lo > 0 || d.hi < 0;
  return { text: `${f(d.mean)} ${unit}, 95% CI [${f(d.lo)}, ${f(d.hi)}]`, significant, sign: significant ? (d.lo > 0 ? 1 : -1) : 0, hasInterval: true };
}

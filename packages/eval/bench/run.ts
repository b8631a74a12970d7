/**
 * @vrepa/eval benchmarks: `pnpm bench [probe] [scenes] [tracker]` (all by default).
 * - probe: fit time of the full protocol (Gram, 5-fold CV with inner CV, final probe) at the Physion-protocol size
 *   N = 1000 × D = 345,600 (3 slices × 150 tokens × 768), against the Gram matrix alone as the baseline row.
 * Numbers measured while other processes use the CPU are noisy.
 */
import { initBackend, printBenchTable, type BenchRow } from '@vrepa/core';
import { featureStats, standardizedGram, trainProbe, type ProbeDataset } from '../src/probe.js';

await initBackend({ quiet: true });
const want = new Set(process.argv.slice(2));
const all = want.size === 0;

/** Synthetic probe features: noise (xorshift, uniform ±√3 so unit variance) plus a weak class signal on 1% of dims. */
function syntheticFeatures(n: number, d: number, seed = 1): ProbeDataset {
  const data = new Float32Array(n * d);
  const labels = new Uint8Array(n);
  let s = seed >>> 0 || 1;
  const k = 3.4641016 / 4294967296;
  for (let i = 0; i < n; i++) {
    labels[i] = i % 2;
    const sign = labels[i] ? 0.02 : -0.02;
    const off = i * d;
    for (let j = 0; j < d; j++) {
      s ^= s << 13;
      s ^= s >>> 17;
      s ^= s << 5;
      data[off + j] = (s >>> 0) * k - 1.7320508 + (j % 100 === 0 ? sign * 10 : 0);
    }
  }
  return { features: { data, n, d }, labels };
}

async function timeOnce<T>(fn: () => Promise<T>): Promise<[number, T]> {
  const t0 = performance.now();
  const r = await fn();
  return [(performance.now() - t0) / 1000, r];
}

if (all || want.has('probe')) {
  const rows: BenchRow[] = [];
  for (const [label, n, d] of [
    ['Physion protocol, 3×150 tokens×768', 1000, 345_600],
    ['mean-pooled slices, 3×768', 1000, 2_304],
  ] as const) {
    const ds = syntheticFeatures(n, d);
    const [gramS] = await timeOnce(() => standardizedGram(ds.features, featureStats(ds.features)));
    const [fitS, res] = await timeOnce(() => trainProbe(ds, { folds: 5, innerFolds: 3 }));
    const gflop = (2 * n * n * d) / 1e9;
    rows.push({ name: `${label}: Gram only (baseline)`, N: n, D: d, seconds: gramS, ratio: 1, 'Gram GFLOP/s': gflop / gramS });
    rows.push({ name: `${label}: full probe (5-fold CV, inner 3-fold × 7 λ, final fit)`, N: n, D: d, seconds: fitS, ratio: fitS / gramS, 'CV accuracy': res.cv.accuracy });
  }
  printBenchTable('probe fit time', rows);
}

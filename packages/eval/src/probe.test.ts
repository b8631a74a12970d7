import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { writeSafetensors } from '@vrepa/core';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  crossValidateProbe,
  featureStats,
  fitKernelLogistic,
  LinearProbe,
  standardizedGram,
  stratifiedKFold,
  subBlock,
  trainProbe,
  type ProbeDataset,
} from './probe.js';
import { readFeatureFile, writeFeatureFile } from './feature-file.js';
import { Rng } from './rng.js';

/** Two Gaussian classes N(±m·u, I) in d dims with ‖m‖ = sep: Bayes accuracy Φ(sep). */
function gaussianClasses(n: number, d: number, sep: number, seed: number): ProbeDataset {
  const rng = new Rng(seed);
  const u = Array.from({ length: d }, () => rng.normal());
  const norm = Math.hypot(...u);
  const data = new Float32Array(n * d);
  const labels = new Uint8Array(n);
  for (let i = 0; i < n; i++) {
    labels[i] = i % 2;
    const s = labels[i] ? 1 : -1;
    for (let j = 0; j < d; j++) data[i * d + j] = rng.normal() + (s * sep * u[j]!) / norm;
  }
  return { features: { data, n, d }, labels };
}

const phi = (x: number) => 0.5 * (1 + erf(x / Math.SQRT2));
function erf(x: number): number {
  // Abramowitz–Stegun 7.1.26 (|error| < 1.5e-7)
  const t = 1 / (1 + 0.3275911 * Math.abs(x));
  const y = 1 - ((((1.061405429 * t - 1.453152027) * t + 1.421413741) * t - 0.284496736) * t + 0.254829592) * t * Math.exp(-x * x);
  return x >= 0 ? y : -y;
}

async function gramOf(ds: ProbeDataset) {
  return standardizedGram(ds.features, featureStats(ds.features));
}

describe('kernel logistic regression', () => {
  it('solves the primal L2 problem: the primal gradient at w = X̃ᵀα vanishes', async () => {
    const ds = gaussianClasses(60, 8, 0.7, 3);
    const { n, d } = ds.features;
    const stats = featureStats(ds.features);
    const k = await standardizedGram(ds.features, stats);
    const lambda = 2.5;
    const fit = fitKernelLogistic(k, n, Array.from(ds.labels), lambda);
    const xs = (i: number, j: number) => (ds.features.data[i * d + j]! - stats.mean[j]!) / stats.std[j]!;
    const w = new Float64Array(d);
    for (let i = 0; i < n; i++) for (let j = 0; j < d; j++) w[j]! += fit.alpha[i]! * xs(i, j);
    const gw = Float64Array.from(w, (v) => lambda * v);
    let gb = 0;
    for (let i = 0; i < n; i++) {
      let f = fit.bias;
      for (let j = 0; j < d; j++) f += w[j]! * xs(i, j);
      const r = 1 / (1 + Math.exp(-f)) - ds.labels[i]!;
      gb += r;
      for (let j = 0; j < d; j++) gw[j]! += r * xs(i, j);
    }
    expect(Math.abs(gb)).toBeLessThan(1e-6);
    for (const g of gw) expect(Math.abs(g)).toBeLessThan(1e-5);
    // primal-vs-dual: the Gram matrix equals X̃·X̃ᵀ computed directly
    let s = 0;
    for (let j = 0; j < d; j++) s += xs(3, j) * xs(7, j);
    expect(k[3 * n + 7]).toBeCloseTo(s, 3);
  });

  it('converges on separable data with tiny λ (finite, decreasing objective)', () => {
    const k = Float64Array.from([1, 0, 0, 0, 1, 0, 0, 0, 1]);
    const fit = fitKernelLogistic(k, 3, [1, 0, 1], 1e-6);
    expect(Number.isFinite(fit.objective)).toBe(true);
    expect(fit.objective).toBeLessThan(0.01);
  });
});

describe('stratified k-fold', () => {
  it('property: every fold has each class (and group) within ±1 of its share', () => {
    fc.assert(
      fc.property(fc.array(fc.tuple(fc.integer({ min: 0, max: 1 }), fc.integer({ min: 0, max: 2 })), { minLength: 10, maxLength: 80 }), fc.integer({ min: 2, max: 5 }), fc.integer(), (rows, k, seed) => {
        const labels = rows.map((r) => r[0]);
        const groups = rows.map((r) => r[1]);
        const fold = stratifiedKFold(labels, k, seed, groups);
        for (let i = 0; i < fold.length; i++) expect(fold[i]! >= 0 && fold[i]! < k).toBe(true);
        for (const key of new Set(rows.map((r) => `${r[0]}|${r[1]}`))) {
          const members = rows.map((r, i) => (`${r[0]}|${r[1]}` === key ? i : -1)).filter((i) => i >= 0);
          const counts = Array.from({ length: k }, (_, f) => members.filter((i) => fold[i] === f).length);
          expect(Math.max(...counts) - Math.min(...counts)).toBeLessThanOrEqual(1);
        }
        const sizes = Array.from({ length: k }, (_, f) => fold.filter((x) => x === f).length);
        expect(Math.max(...sizes) - Math.min(...sizes)).toBeLessThanOrEqual(1);
      }),
      { numRuns: 60 },
    );
  });
});

describe('probe cross-validation', () => {
  it('comes within a few points of the Bayes accuracy on Gaussian classes', async () => {
    const sep = 1; // Bayes accuracy Φ(1) = 84.1%
    const ds = gaussianClasses(400, 10, sep, 11);
    const cv = crossValidateProbe(await gramOf(ds), ds, { folds: 5, seed: 1 });
    expect(cv.accuracy).toBeGreaterThan(phi(sep) - 0.04);
    expect(cv.accuracy).toBeLessThan(phi(sep) + 0.03);
    expect(cv.foldAccuracies).toHaveLength(5);
    expect(cv.std).toBeGreaterThan(0);
  });

  it('sits at chance on shuffled labels', async () => {
    const ds = gaussianClasses(300, 20, 1.5, 5);
    const rng = new Rng(9);
    const shuffled = { ...ds, labels: Uint8Array.from(rng.shuffle(Array.from(ds.labels))) };
    const cv = crossValidateProbe(await gramOf(shuffled), shuffled, { folds: 5 });
    expect(Math.abs(cv.accuracy - 0.5)).toBeLessThan(0.08);
  });

  it('is invariant to per-feature scaling and shifting', async () => {
    const ds = gaussianClasses(120, 12, 0.8, 21);
    const rng = new Rng(4);
    const scale = Array.from({ length: 12 }, () => Math.exp(rng.uniform(-4, 4)));
    const shift = Array.from({ length: 12 }, () => rng.uniform(-50, 50));
    const data = ds.features.data.map((v, i) => v * scale[i % 12]! + shift[i % 12]!);
    const scaled = { ...ds, features: { ...ds.features, data } };
    const a = crossValidateProbe(await gramOf(ds), ds, { folds: 4 });
    const b = crossValidateProbe(await gramOf(scaled), scaled, { folds: 4 });
    expect(b.foldAccuracies).toEqual(a.foldAccuracies);
    for (let i = 0; i < 120; i++) expect(b.heldOutProbability[i]).toBeCloseTo(a.heldOutProbability[i]!, 3);
  });

  it('reports per-group accuracy and names', async () => {
    const ds = gaussianClasses(120, 6, 1, 2);
    const groups = Int32Array.from({ length: 120 }, (_, i) => Math.floor(i / 2) % 2);
    const cv = crossValidateProbe(await gramOf(ds), { ...ds, groups, groupNames: ['roll', 'contain'] }, { folds: 3 });
    expect(cv.perGroup.map((g) => [g.name, g.n])).toEqual([
      ['roll', 60],
      ['contain', 60],
    ]);
    const pooled = (cv.perGroup[0]!.accuracy * 60 + cv.perGroup[1]!.accuracy * 60) / 120;
    expect(pooled).toBeCloseTo(cv.foldAccuracies.reduce((a, b) => a + b * 40, 0) / 120, 10);
  });
});

describe('trainProbe, save and reload', () => {
  it('saves a probe whose reloaded predictions equal the in-memory probe, and the dual solution', async () => {
    const ds = gaussianClasses(80, 10, 1, 8);
    const { probe, cv } = await trainProbe(ds, { folds: 4 });
    expect(cv.n).toBe(80);
    const file = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'probe-')), 'p.safetensors');
    probe.save(file);
    const back = LinearProbe.load(file);
    expect(back.info.folds).toBe('4');
    const p1 = probe.predictProba(ds.features);
    const p2 = back.predictProba(ds.features);
    for (let i = 0; i < 80; i++) expect(p2[i]).toBeCloseTo(p1[i]!, 5);
    // primal predictions equal the dual decision values K·α + b
    const stats = featureStats(ds.features);
    const k = await standardizedGram(ds.features, stats);
    const rel = Number(probe.info.lambda);
    const fit = fitKernelLogistic(subBlock(k, 80, [...Array(80).keys()], [...Array(80).keys()]), 80, Array.from(ds.labels), rel);
    for (let i = 0; i < 80; i++) {
      let f = fit.bias;
      for (let j = 0; j < 80; j++) f += k[i * 80 + j]! * fit.alpha[j]!;
      expect(probe.decision(ds.features)[i]).toBeCloseTo(f, 2);
    }
  });
});

describe('feature files and bad input', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'feats-'));
  it('round-trips a feature file with float labels and group names', () => {
    const ds = gaussianClasses(10, 3, 1, 1);
    const f = path.join(dir, 'a.safetensors');
    writeFeatureFile(f, { ...ds, groups: Int32Array.from({ length: 10 }, (_, i) => i % 2), groupNames: ['roll', 'contain'] });
    const back = readFeatureFile(f);
    expect(back.features.d).toBe(3);
    expect(Array.from(back.labels)).toEqual(Array.from(ds.labels));
    expect(back.groupNames).toEqual(['roll', 'contain']);
    const g = path.join(dir, 'float-labels.safetensors');
    writeSafetensors(g, { features: { dtype: 'F32', shape: [2, 1], data: Float32Array.of(1, 2) }, labels: { dtype: 'F64', shape: [2], data: Float64Array.of(0, 1) } });
    expect(Array.from(readFeatureFile(g).labels)).toEqual([0, 1]);
  });
  it('names the problem: labels length ≠ rows, non-binary labels, a single class, too few per class', async () => {
    const f = path.join(dir, 'bad.safetensors');
    writeSafetensors(f, { features: { dtype: 'F32', shape: [3, 2], data: new Float32Array(6) }, labels: { dtype: 'I64', shape: [4], data: new BigInt64Array(4) } });
    expect(() => readFeatureFile(f)).toThrow(/'labels' has 4 entries but 'features' has 3 rows/);
    writeSafetensors(f, { features: { dtype: 'F32', shape: [2, 2], data: new Float32Array(4) }, labels: { dtype: 'I32', shape: [2], data: Int32Array.of(0, 2) } });
    expect(() => readFeatureFile(f)).toThrow(/labels must be 0 or 1, got 2 at row 1/);
    writeSafetensors(f, { feats: { dtype: 'F32', shape: [2, 2], data: new Float32Array(4) } });
    expect(() => readFeatureFile(f)).toThrow(/missing tensor 'features'/);
    expect(() => readFeatureFile(path.join(dir, 'nope.safetensors'))).toThrow(/does not exist/);
    const one = { features: { data: new Float32Array(20), n: 10, d: 2 }, labels: new Uint8Array(10) };
    await expect(trainProbe(one)).rejects.toThrow(/expected two classes \(0 and 1\), got only class 0 in all 10 rows/);
    const few = { features: { data: new Float32Array(20), n: 10, d: 2 }, labels: Uint8Array.from([1, 1, 0, 0, 0, 0, 0, 0, 0, 0]) };
    await expect(trainProbe(few, { folds: 5 })).rejects.toThrow(/smaller class has 2 rows, fewer than the 5 folds/);
  });
});

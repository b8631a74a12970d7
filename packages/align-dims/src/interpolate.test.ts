import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import * as tf from '@tensorflow/tfjs';
import { tensorLeakAcross } from '@vrepa/core';
import { type AxisKernel, interpolate, interpolationMatrix, type InterpolationMode } from './interpolate.js';

const kernels: AxisKernel[] = ['nearest', 'nearest-exact', 'linear', 'cubic'];

/** Random 1-D axis spec: size path or scale path, align corners for linear / cubic. */
const axisArb = fc
  .record({
    inSize: fc.integer({ min: 1, max: 17 }),
    outSize: fc.integer({ min: 1, max: 23 }),
    kernel: fc.constantFrom(...kernels),
    alignCorners: fc.boolean(),
    useScale: fc.boolean(),
    scale: fc.double({ min: 0.25, max: 4, noNaN: true }),
  })
  .map((r) => {
    const alignCorners = r.alignCorners && (r.kernel === 'linear' || r.kernel === 'cubic');
    if (r.useScale) {
      const out = Math.floor(r.inSize * r.scale);
      if (out >= 1) return { inSize: r.inSize, outSize: out, kernel: r.kernel, alignCorners, scaleFactor: r.scale };
    }
    return { inSize: r.inSize, outSize: r.outSize, kernel: r.kernel, alignCorners };
  });

function randArray(n: number, seed: number): Float32Array {
  let s = seed >>> 0 || 1;
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    out[i] = s / 2 ** 32 - 0.5;
  }
  return out;
}

describe('interpolationMatrix', () => {
  it('every output row sums to 1 (constants are preserved)', () => {
    fc.assert(
      fc.property(axisArb, (a) => {
        const m = interpolationMatrix(a);
        for (let i = 0; i < a.outSize; i++) {
          let s = 0;
          for (let j = 0; j < a.inSize; j++) s += m[i * a.inSize + j]!;
          // weights are PyTorch's float32 values (cubic: ~10 float32 ops each), so the sum is 1 to float32 rounding
          expect(Math.abs(s - 1)).toBeLessThan(4e-6);
        }
      }),
      { numRuns: 300 },
    );
  });

  it('same size by size= is the identity, for every kernel', () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 20 }), fc.constantFrom(...kernels), fc.boolean(), (n, kernel, ac) => {
        const alignCorners = ac && (kernel === 'linear' || kernel === 'cubic');
        const m = interpolationMatrix({ inSize: n, outSize: n, kernel, alignCorners });
        for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) expect(m[i * n + j]).toBe(i === j ? 1 : 0);
      }),
    );
  });

  it('linear reproduces linear functions where the source coordinate is inside the input', () => {
    fc.assert(
      fc.property(axisArb, fc.double({ min: -3, max: 3, noNaN: true }), fc.double({ min: -3, max: 3, noNaN: true }), (a0, slope, icpt) => {
        const a = { ...a0, kernel: 'linear' as const };
        const m = interpolationMatrix(a);
        // independent float64 source coordinate (PyTorch's formula, no clamping)
        const scale = a.alignCorners ? (a.outSize > 1 ? (a.inSize - 1) / (a.outSize - 1) : 0) : a.scaleFactor ? 1 / a.scaleFactor : a.inSize / a.outSize;
        for (let i = 0; i < a.outSize; i++) {
          const src = a.alignCorners ? scale * i : scale * (i + 0.5) - 0.5;
          if (src < 0 || src > a.inSize - 1) continue;
          let y = 0;
          for (let j = 0; j < a.inSize; j++) y += m[i * a.inSize + j]! * (slope * j + icpt);
          expect(Math.abs(y - (slope * src + icpt))).toBeLessThan(1e-5 * (1 + Math.abs(slope) * a.inSize + Math.abs(icpt)));
        }
      }),
      { numRuns: 300 },
    );
  });

  it('nearest picks source indices like PyTorch (hand-derived cases)', () => {
    const pick = (a: Parameters<typeof interpolationMatrix>[0]) => {
      const m = interpolationMatrix(a);
      return Array.from({ length: a.outSize }, (_, i) => {
        const row = Array.from(m.subarray(i * a.inSize, (i + 1) * a.inSize));
        expect(row.filter((v) => v !== 0)).toEqual([1]);
        return row.indexOf(1);
      });
    };
    // torch.nn.functional.interpolate(torch.arange(n), size=out, mode='nearest'): floor(i*in/out)
    expect(pick({ inSize: 3, outSize: 5, kernel: 'nearest' })).toEqual([0, 0, 1, 1, 2]);
    expect(pick({ inSize: 5, outSize: 3, kernel: 'nearest' })).toEqual([0, 1, 3]);
    expect(pick({ inSize: 4, outSize: 8, kernel: 'nearest' })).toEqual([0, 0, 1, 1, 2, 2, 3, 3]);
    // scale_factor=1.5 on 4: out 6, src floor(i/1.5)
    expect(pick({ inSize: 4, outSize: 6, kernel: 'nearest', scaleFactor: 1.5 })).toEqual([0, 0, 1, 2, 2, 3]);
    // out == 2·in takes PyTorch's shift shortcut even when scale_factor is not 2 (2.2 on 3 → 6)
    expect(pick({ inSize: 3, outSize: 6, kernel: 'nearest', scaleFactor: 2.2 })).toEqual([0, 0, 1, 1, 2, 2]);
    // nearest-exact: floor((i+0.5)·in/out)
    expect(pick({ inSize: 5, outSize: 3, kernel: 'nearest-exact' })).toEqual([0, 2, 4]);
    expect(pick({ inSize: 3, outSize: 5, kernel: 'nearest-exact' })).toEqual([0, 0, 1, 2, 2]);
  });

  it('nearest rows are one-hot and non-decreasing', () => {
    fc.assert(
      fc.property(axisArb, (a0) => {
        const a = { ...a0, kernel: a0.kernel === 'nearest-exact' ? ('nearest-exact' as const) : ('nearest' as const), alignCorners: false };
        const m = interpolationMatrix(a);
        let prev = -1;
        for (let i = 0; i < a.outSize; i++) {
          const row = Array.from(m.subarray(i * a.inSize, (i + 1) * a.inSize));
          expect(row.filter((v) => v !== 0)).toEqual([1]);
          const j = row.indexOf(1);
          expect(j).toBeGreaterThanOrEqual(prev);
          prev = j;
        }
      }),
    );
  });

  it('bicubic uses Keys A = −0.75 with clamped taps (hand-derived 4 → 2)', () => {
    // src = 2(i+0.5)−0.5 = 0.5, 2.5; t = 0.5: taps w = [c2(1.5), c1(0.5), c1(0.5), c2(1.5)] = [−0.09375, 0.59375, 0.59375, −0.09375]
    const m = Array.from(interpolationMatrix({ inSize: 4, outSize: 2, kernel: 'cubic' }));
    const want = [0.5, 0.59375, -0.09375, 0, /* row 1: taps 1,2,3,4→3 */ 0, -0.09375, 0.59375, 0.5];
    m.forEach((v, i) => expect(v).toBeCloseTo(want[i]!, 7));
  });

  it('rejects bad axis specs', () => {
    expect(() => interpolationMatrix({ inSize: 0, outSize: 2, kernel: 'linear' })).toThrow(/inSize/);
    expect(() => interpolationMatrix({ inSize: 2, outSize: 2, kernel: 'nearest', alignCorners: true })).toThrow(/alignCorners/);
    expect(() => interpolationMatrix({ inSize: 2, outSize: 2, kernel: 'cubic', scaleFactor: -1 })).toThrow(/scaleFactor/);
  });
});

/** Plain-JS reference: apply a 1-D matrix along `axis` of a row-major array with `shape`. */
function applyJs(x: Float64Array | Float32Array, shape: number[], axis: number, m: Float64Array, out: number): { data: Float64Array; shape: number[] } {
  const n = shape[axis]!;
  const pre = shape.slice(0, axis).reduce((a, b) => a * b, 1);
  const post = shape.slice(axis + 1).reduce((a, b) => a * b, 1);
  const y = new Float64Array(pre * out * post);
  for (let p = 0; p < pre; p++)
    for (let i = 0; i < out; i++)
      for (let j = 0; j < n; j++) {
        const w = m[i * n + j]!;
        if (w === 0) continue;
        for (let q = 0; q < post; q++) y[(p * out + i) * post + q]! += w * x[(p * n + j) * post + q]!;
      }
  const s = [...shape];
  s[axis] = out;
  return { data: y, shape: s };
}

const modeKernel = (mode: InterpolationMode): AxisKernel => (mode === 'bicubic' ? 'cubic' : mode === 'nearest' || mode === 'nearest-exact' ? mode : 'linear');

describe('interpolate (channels-last tensors)', () => {
  const caseArb = fc
    .record({
      dims: fc.integer({ min: 1, max: 3 }),
      b: fc.integer({ min: 1, max: 2 }),
      c: fc.integer({ min: 1, max: 3 }),
      ins: fc.array(fc.integer({ min: 1, max: 6 }), { minLength: 3, maxLength: 3 }),
      outs: fc.array(fc.integer({ min: 1, max: 7 }), { minLength: 3, maxLength: 3 }),
      nearest: fc.boolean(),
      cubic: fc.boolean(),
      alignCorners: fc.boolean(),
      seed: fc.integer({ min: 1, max: 1e6 }),
    })
    .map((r) => {
      const mode: InterpolationMode = r.nearest ? 'nearest' : r.dims === 1 ? 'linear' : r.dims === 3 ? 'trilinear' : r.cubic ? 'bicubic' : 'bilinear';
      return { ...r, mode, alignCorners: r.alignCorners && mode !== 'nearest', ins: r.ins.slice(0, r.dims), outs: r.outs.slice(0, r.dims) };
    });

  it('equals the separable composition of 1-D matrices (plain-JS reference), forward and gradient = Mᵀ·dy', () => {
    fc.assert(
      fc.property(caseArb, (k) => {
        const shape = [k.b, ...k.ins, k.c];
        const x = randArray(shape.reduce((a, v) => a * v, 1), k.seed);
        const outShape = [k.b, ...k.outs, k.c];
        const w = randArray(outShape.reduce((a, v) => a * v, 1), k.seed + 7);
        const mats = k.ins.map((n, i) => interpolationMatrix({ inSize: n, outSize: k.outs[i]!, kernel: modeKernel(k.mode), alignCorners: k.alignCorners }));
        // forward reference
        let ref: { data: Float64Array | Float32Array; shape: number[] } = { data: x, shape };
        mats.forEach((m, i) => (ref = applyJs(ref.data, ref.shape, i + 1, m, k.outs[i]!)));
        // gradient reference: the transposed matrices applied to w
        let gref: { data: Float64Array | Float32Array; shape: number[] } = { data: w, shape: outShape };
        mats.forEach((m, i) => {
          const n = k.ins[i]!;
          const o = k.outs[i]!;
          const mt = new Float64Array(n * o);
          for (let a = 0; a < o; a++) for (let bb = 0; bb < n; bb++) mt[bb * o + a] = m[a * n + bb]!;
          gref = applyJs(gref.data, gref.shape, i + 1, mt, n);
        });
        const { y, g } = tf.tidy(() => {
          const xt = tf.tensor(x, shape);
          const wt = tf.tensor(w, outShape);
          const f = (z: tf.Tensor) => interpolate(z, { size: k.outs, mode: k.mode, alignCorners: k.alignCorners });
          return { y: f(xt).dataSync(), g: tf.grad((z: tf.Tensor) => tf.sum(tf.mul(f(z), wt)))(xt).dataSync() };
        });
        expect(y.length).toBe(ref.data.length);
        for (let i = 0; i < y.length; i++) expect(Math.abs(y[i]! - ref.data[i]!)).toBeLessThan(1e-5);
        for (let i = 0; i < g.length; i++) expect(Math.abs(g[i]! - gref.data[i]!)).toBeLessThan(1e-5);
      }),
      { numRuns: 40 },
    );
  });

  it('trilinear = linear along time, then along height, then along width (3-D = 1-D composition)', () => {
    tf.tidy(() => {
      const [b, t, h, w, c] = [2, 3, 4, 5, 3];
      const x = tf.tensor(randArray(b * t * h * w * c, 11), [b, t, h, w, c]);
      const size = [5, 3, 7];
      const tri = interpolate(x, { size, mode: 'trilinear' });
      // 1-D: move the axis next to batch, fold the others into channels
      const along = (z: tf.Tensor, axis: number, out: number) => {
        const perm = [0, axis, ...[1, 2, 3].filter((a) => a !== axis), 4];
        const zt = tf.transpose(z, perm);
        const s = zt.shape;
        const y = interpolate(tf.reshape(zt, [s[0]!, s[1]!, -1]), { size: out, mode: 'linear' });
        const back = tf.reshape(y, [s[0]!, out, s[2]!, s[3]!, s[4]!]);
        const inv = perm.map((_, i) => perm.indexOf(i));
        return tf.transpose(back, inv);
      };
      const sep = along(along(along(x, 1, size[0]!), 2, size[1]!), 3, size[2]!);
      expect(tri.shape).toEqual(sep.shape);
      expect(tf.max(tf.abs(tf.sub(tri, sep))).dataSync()[0]).toBeLessThan(1e-6);
    });
  });

  it('scale_factor path: output size floor(in·scale), coordinates from 1/scale (differs from size=)', () => {
    tf.tidy(() => {
      const x = tf.tensor(randArray(1 * 3 * 2, 5), [1, 3, 2]);
      const byScale = interpolate(x, { scaleFactor: 1.7, mode: 'linear' });
      expect(byScale.shape).toEqual([1, 5, 2]);
      const bySize = interpolate(x, { size: 5, mode: 'linear' });
      expect(tf.max(tf.abs(tf.sub(byScale, bySize))).dataSync()[0]).toBeGreaterThan(1e-3);
      // ×2 by scale equals size 2·in (scale 1/2 exactly in both)
      const s2 = interpolate(x, { scaleFactor: 2, mode: 'linear' });
      const z2 = interpolate(x, { size: 6, mode: 'linear' });
      expect(tf.max(tf.abs(tf.sub(s2, z2))).dataSync()[0]).toBe(0);
    });
  });

  it('constant inputs stay constant in every mode', () => {
    const modes: Array<[InterpolationMode, number]> = [['linear', 1], ['bilinear', 2], ['bicubic', 2], ['trilinear', 3], ['nearest', 2], ['nearest-exact', 3]];
    for (const [mode, dims] of modes) {
      tf.tidy(() => {
        const x = tf.fill([2, ...new Array(dims).fill(5), 3], 0.7);
        const y = interpolate(x, { size: new Array(dims).fill(3).map((v, i) => v + 4 * i), mode });
        expect(tf.max(tf.abs(tf.sub(y, 0.7))).dataSync()[0]).toBeLessThan(1e-6);
      });
    }
  });

  it('leaks no tensors (forward and gradient)', async () => {
    const x = tf.randomNormal([2, 3, 4, 5, 2]);
    expect(await tensorLeakAcross(() => interpolate(x, { scaleFactor: [2, 1, 1], mode: 'trilinear' }))).toBe(0);
    expect(await tensorLeakAcross(() => tf.grad((z: tf.Tensor) => tf.sum(interpolate(z, { size: [5, 2, 7], mode: 'trilinear' })))(x))).toBe(0);
    const img = tf.randomNormal([3, 7, 9, 2]);
    expect(await tensorLeakAcross(() => tf.grad((z: tf.Tensor) => tf.sum(interpolate(z, { size: [3, 4], mode: 'bicubic' })))(img))).toBe(0);
    x.dispose();
    img.dispose();
  });

  it('rejects unsupported mode/dims combinations and bad sizes with clear errors', () => {
    tf.tidy(() => {
      const x5 = tf.zeros([1, 2, 3, 4, 2]);
      const x4 = tf.zeros([1, 3, 4, 2]);
      expect(() => interpolate(x5, { size: [2, 2, 2], mode: 'bicubic' })).toThrow(/bicubic.*4-D.*got 5-D/);
      expect(() => interpolate(x4, { size: [2, 2], mode: 'trilinear' })).toThrow(/trilinear.*5-D.*got 4-D/);
      expect(() => interpolate(x4, { size: [2, 2], mode: 'linear' })).toThrow(/linear/);
      expect(() => interpolate(x4, { size: [2, 2], mode: 'cubic' as InterpolationMode })).toThrow(/mode must be one of/);
      expect(() => interpolate(x4, { size: [2, 2, 2], mode: 'bilinear' })).toThrow(/size must be a number or 2 numbers/);
      expect(() => interpolate(x4, { size: [2, 2], scaleFactor: 2, mode: 'bilinear' })).toThrow(/exactly one of size and scaleFactor/);
      expect(() => interpolate(x4, { scaleFactor: 0.1, mode: 'bilinear' })).toThrow(/output sizes must be > 0/);
      expect(() => interpolate(x4, { size: [2, 2], mode: 'nearest', alignCorners: true })).toThrow(/alignCorners/);
      expect(() => interpolate(tf.zeros([4, 2]), { size: 2, mode: 'linear' })).toThrow(/rank 3 to 5/);
    });
  });
});

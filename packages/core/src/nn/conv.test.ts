import * as tf from '@tensorflow/tfjs';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { Conv2d, Conv3d, conv2d, conv3d } from './conv.js';
import { tensorLeakAcross } from '../leaks.js';
import { gradCheck, maxAbs, maxAbsDiff, rand } from './testutil.js';

/**
 * Naive PyTorch-semantics conv on host arrays, channels-first: x [C, ...spatial], w [O, C, ...k],
 * per-axis stride and (before, after) zero padding. The independent expectation.
 */
function hostConv(x: tf.Tensor, w: tf.Tensor, stride: number[], pad: Array<[number, number]>): tf.Tensor {
  const xs = x.shape; // [C, ...S]
  const ws = w.shape; // [O, C, ...K]
  const nd = xs.length - 1;
  const xd = x.dataSync();
  const wd = w.dataSync();
  const outS = xs.slice(1).map((s, i) => Math.floor((s + pad[i]![0] + pad[i]![1] - ws[2 + i]!) / stride[i]!) + 1);
  const O = ws[0]!;
  const C = xs[0]!;
  const out = new Float32Array(O * outS.reduce((a, b) => a * b, 1));
  const idx = (shape: number[], coords: number[]) => coords.reduce((a, c, i) => a * shape[i]! + c, 0);
  const iter = (shape: number[], f: (c: number[]) => void) => {
    const n = shape.reduce((a, b) => a * b, 1);
    for (let k = 0; k < n; k++) {
      const c: number[] = [];
      let r = k;
      for (let i = shape.length - 1; i >= 0; i--) {
        c[i] = r % shape[i]!;
        r = Math.floor(r / shape[i]!);
      }
      f(c);
    }
  };
  for (let o = 0; o < O; o++)
    iter(outS, (oc) => {
      let s = 0;
      for (let c = 0; c < C; c++)
        iter(ws.slice(2), (kc) => {
          const ic = oc.map((v, i) => v * stride[i]! - pad[i]![0] + kc[i]!);
          if (ic.some((v, i) => v < 0 || v >= xs[1 + i]!)) return;
          s += xd[idx(xs, [c, ...ic])]! * wd[idx(ws, [o, c, ...kc])]!;
        });
      out[o * outS.reduce((a, b) => a * b, 1) + idx(outS, oc)] = s;
    });
  return tf.tensor(out, [O, ...outS]);
}

describe('conv2d', () => {
  it('hand-derived: 3×3 ones ⊛ 2×2 ones, padding 1 → corners 1, edges 2, centre 4', () => {
    const y = conv2d(tf.ones([1, 3, 3, 1]), tf.ones([2, 2, 1, 1]), null, { padding: 1 });
    expect(y.shape).toEqual([1, 4, 4, 1]);
    expect(Array.from(y.dataSync())).toEqual([1, 2, 2, 1, 2, 4, 4, 2, 2, 4, 4, 2, 1, 2, 2, 1]);
  });

  it('equals a naive PyTorch conv2d with a PyTorch-layout weight (stride, asymmetric padding)', () => {
    fc.assert(
      fc.property(
        fc.record({
          h: fc.integer({ min: 3, max: 8 }),
          w: fc.integer({ min: 3, max: 8 }),
          c: fc.integer({ min: 1, max: 3 }),
          o: fc.integer({ min: 1, max: 3 }),
          kh: fc.integer({ min: 1, max: 3 }),
          kw: fc.integer({ min: 1, max: 3 }),
          sh: fc.integer({ min: 1, max: 3 }),
          sw: fc.integer({ min: 1, max: 2 }),
          pads: fc.array(fc.integer({ min: 0, max: 2 }), { minLength: 4, maxLength: 4 }),
          seed: fc.nat(),
        }),
        ({ h, w, c, o, kh, kw, sh, sw, pads, seed }) => {
          tf.tidy(() => {
            const m = new Conv2d(c, o, [kh, kw], { stride: [sh, sw], padding: [[pads[0]!, pads[1]!], [pads[2]!, pads[3]!]], bias: false });
            const wt = rand([o, c, kh, kw], seed); // PyTorch layout
            m.loadStateDict({ weight: wt });
            const x = rand([1, h, w, c], seed + 1);
            const got = m.forward(x).squeeze([0]).transpose([2, 0, 1]);
            const want = hostConv(x.squeeze([0]).transpose([2, 0, 1]), wt, [sh, sw], [[pads[0]!, pads[1]!], [pads[2]!, pads[3]!]]);
            expect(got.shape).toEqual(want.shape);
            expect(maxAbsDiff(got, want)).toBeLessThan(1e-5);
            m.dispose();
          });
        },
      ),
      { numRuns: 40 },
    );
  });
});

describe('conv3d', () => {
  it('time taps = tf.conv3d (symmetric padding, strides), forward and input gradient', () => {
    fc.assert(
      fc.property(
        fc.record({
          t: fc.integer({ min: 1, max: 6 }),
          kt: fc.integer({ min: 1, max: 3 }),
          st: fc.integer({ min: 1, max: 3 }),
          pt: fc.integer({ min: 0, max: 1 }),
          ph: fc.integer({ min: 0, max: 1 }),
          sh: fc.integer({ min: 1, max: 2 }),
          b: fc.integer({ min: 1, max: 2 }),
          seed: fc.nat(),
        }),
        ({ t, kt, st, pt, ph, sh, b, seed }) => {
          if (t + 2 * pt < kt) return;
          tf.tidy(() => {
            const x = rand([b, t, 5, 4, 3], seed);
            const w = rand([kt, 3, 2, 3, 4], seed + 1);
            const opts = { stride: [st, sh, 1] as [number, number, number], padding: [pt, ph, 1] as [number, number, number] };
            const taps = conv3d(x, w, null, opts);
            const ref = conv3d(x, w, null, { ...opts, impl: 'native' });
            expect(taps.shape).toEqual(ref.shape);
            expect(maxAbsDiff(taps, ref)).toBeLessThan(1e-5);
            const r = rand(ref.shape, seed + 2);
            const g = tf.grad((a: tf.Tensor) => tf.sum(tf.mul(conv3d(a, w, null, opts), r)))(x);
            const gr = tf.grad((a: tf.Tensor) => tf.sum(tf.mul(conv3d(a, w, null, { ...opts, impl: 'native' }), r)))(x);
            expect(maxAbsDiff(g, gr)).toBeLessThan(1e-4);
          });
        },
      ),
      { numRuns: 25 },
    );
  });

  it('asymmetric (causal) time padding equals a naive PyTorch conv3d on the padded input', () => {
    const m = new Conv3d(2, 3, [3, 3, 3], { padding: [[2, 0], 1, [0, 1]], stride: [1, 2, 1] });
    const x = rand([1, 4, 5, 4, 2], 5);
    const y = m.forward(x);
    const sd = m.stateDict();
    const want = tf.add(
      hostConv(x.squeeze([0]).transpose([3, 0, 1, 2]), sd.get('weight')!, [1, 2, 1], [[2, 0], [1, 1], [0, 1]]),
      sd.get('bias')!.reshape([3, 1, 1, 1]),
    );
    expect(maxAbsDiff(y.squeeze([0]).transpose([3, 0, 1, 2]), want)).toBeLessThan(1e-5);
    tf.dispose([x, y, want, ...sd.values()]);
    m.dispose();
  });

  it('weight and bias gradients match finite differences (where the backend has Conv2DBackpropFilter)', () => {
    const x = rand([1, 3, 4, 4, 2], 6);
    const w = rand([2, 3, 3, 2, 3], 7);
    const b = rand([3], 8);
    const f = (a: tf.Tensor, ww: tf.Tensor, bb: tf.Tensor) => conv3d(a, ww, bb, { padding: [1, 1, 0] });
    const hasFilterGrad = !!tf.getKernel('Conv2DBackpropFilter', tf.getBackend());
    expect(gradCheck(hasFilterGrad ? f : (a: tf.Tensor, bb: tf.Tensor) => f(a, w, bb), hasFilterGrad ? [x, w, b] : [x, b])).toBeLessThan(5e-3);
    tf.dispose([x, w, b]);
  });

  it('inference mode: same output as the default, lower peak memory (tf.profile), no leaks', async () => {
    const x = rand([1, 6, 8, 8, 4], 10);
    const w = rand([3, 3, 3, 4, 4], 11);
    const opts = { padding: [[2, 0], 1, 1] as [[number, number], number, number] };
    const a = conv3d(x, w, null, opts);
    const b = conv3d(x, w, null, { ...opts, inference: true });
    expect(maxAbsDiff(a, b)).toBe(0);
    const peak = async (inference: boolean) => (await tf.profile(() => conv3d(x, w, null, { ...opts, inference }))).peakBytes;
    expect(await peak(true)).toBeLessThan(await peak(false));
    expect(await tensorLeakAcross(() => conv3d(x, w, null, { ...opts, inference: true }))).toBe(0);
    tf.dispose([x, w, a, b]);
  });

  it('names bad shapes and paddings', () => {
    expect(() => conv3d(tf.zeros([1, 2, 3, 3, 4]), tf.zeros([1, 1, 1, 5, 2]))).toThrow(/weight must be \[kT, kH, kW, 4, out\]/);
    expect(() => conv3d(tf.zeros([1, 1, 3, 3, 1]), tf.zeros([3, 1, 1, 1, 1]))).toThrow(/larger than the padded input/);
    expect(() => conv2d(tf.zeros([1, 3, 3, 1]), tf.zeros([1, 1, 1, 1]), null, { padding: [1, 2, 3] as any })).toThrow(/padding must be a number or 2 per-axis values/);
    expect(() => conv3d(tf.zeros([1, 3, 3, 3, 1]), tf.zeros([1, 1, 1, 1, 1]), null, { padding: [[1, 0], 0, 0], impl: 'native' })).toThrow(/symmetric padding only/);
  });

  it('leak no tensors', async () => {
    const x = rand([1, 3, 4, 4, 2], 9);
    const m = new Conv3d(2, 2, 3, { padding: 1 });
    const m2 = new Conv2d(2, 2, 3, { padding: 1, stride: 2 });
    expect(await tensorLeakAcross(() => m.forward(x))).toBe(0);
    const x2 = x.reshape([3, 4, 4, 2]);
    expect(await tensorLeakAcross(() => m2.forward(x2))).toBe(0);
    expect(await tensorLeakAcross(() => tf.grad((a: tf.Tensor) => tf.sum(m.forward(a)))(x))).toBe(0);
    expect(maxAbs(m.forward(x))).toBeGreaterThan(0);
    m.dispose();
    m2.dispose();
  });
});

import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import * as tf from '@tensorflow/tfjs';
import { Rng, tensorLeakAcross, toTorchLayout } from '@vrepa/core';
import { gridToTokens, tokensToGrid } from './grid.js';
import { Projector } from './projector.js';
import { Downsampler } from './downsampler.js';

describe('token grids', () => {
  it('tokens ↔ grid round-trips and is frame-major (frame, row, col)', () => {
    tf.tidy(() => {
      const grid = { frames: 2, height: 3, width: 4 };
      const g = tokensToGrid(tf.range(0, 48).reshape([2, 24, 1]), grid);
      // token index = f·H·W + r·W + c
      expect(g.arraySync()[1]![1]![2]![3]![0]).toBe(24 + 1 * 12 + 2 * 4 + 3);
      const back = gridToTokens(g);
      expect(back.grid).toEqual(grid);
      expect(back.tokens.shape).toEqual([2, 24, 1]);
    });
  });

  it('rejects a grid that does not multiply to the token count', () => {
    const t = tf.zeros([1, 10, 4]);
    expect(() => tokensToGrid(t, { frames: 2, height: 2, width: 3 }, 'student')).toThrow(/student: grid 2×2×3 \(12 tokens\) does not match the 10 tokens/);
    expect(() => tokensToGrid(t, { frames: 0, height: 2, width: 5 })).toThrow(/frames: expected a positive integer/);
    t.dispose();
  });
});

/** Plain-JS MLP reference: Linear·SiLU·Linear·SiLU·Linear with [out,in] weights. */
function mlpJs(x: number[][], ws: Array<{ w: number[][]; b: number[] }>): number[][] {
  const silu = (v: number) => v / (1 + Math.exp(-v));
  return x.map((row) => {
    let h = row;
    ws.forEach(({ w, b }, li) => {
      h = w.map((wr, o) => wr.reduce((s, v, i) => s + v * h[i]!, b[o]!));
      if (li < ws.length - 1) h = h.map(silu);
    });
    return h;
  });
}

describe('Projector', () => {
  it('official names and PyTorch shapes; matches a plain-JS MLP', () => {
    const p = new Projector({ inDim: 5, hiddenDim: 7, outDim: 3 }, { rng: Rng.fromSeed(3) });
    try {
      const shapes = p.stateDictShapes();
      expect([...shapes.keys()]).toEqual([
        'projectors.0.0.weight', 'projectors.0.0.bias', 'projectors.0.2.weight', 'projectors.0.2.bias', 'projectors.0.4.weight', 'projectors.0.4.bias',
      ]);
      expect(shapes.get('projectors.0.0.weight')).toEqual([7, 5]);
      expect(shapes.get('projectors.0.4.weight')).toEqual([3, 7]);
      const sd = p.stateDict();
      const x = tf.randomNormal([2, 4, 5], 0, 1, 'float32', 9);
      const y = p.forward(x);
      expect(y.shape).toEqual([2, 4, 3]);
      const arr = (n: string) => sd.get(n)!.arraySync() as any;
      const ref = mlpJs(x.reshape([8, 5]).arraySync() as number[][], [0, 2, 4].map((i) => ({ w: arr(`projectors.0.${i}.weight`), b: arr(`projectors.0.${i}.bias`) })));
      const got = y.reshape([8, 3]).arraySync() as number[][];
      got.forEach((r, i) => r.forEach((v, j) => expect(Math.abs(v - ref[i]![j]!)).toBeLessThan(1e-5)));
      tf.dispose([x, y, ...sd.values()]);
    } finally {
      p.dispose();
    }
  });

  it('loads a state dict with the official names, refuses a missing key or a wrong shape', () => {
    const cfg = { inDim: 4, hiddenDim: 6, outDim: 2 };
    const src = new Projector(cfg, { rng: Rng.fromSeed(1) });
    const dict = src.stateDict();
    const p = Projector.fromStateDict(dict, cfg);
    expect(p.getParameter('projectors.0.2.bias').value.arraySync()).toEqual(dict.get('projectors.0.2.bias')!.arraySync());
    const partial = new Map(dict);
    partial.delete('projectors.0.4.bias');
    expect(() => Projector.fromStateDict(partial, cfg)).toThrow(/missing projectors\.0\.4\.bias/);
    expect(() => Projector.fromStateDict(dict, { ...cfg, hiddenDim: 5 })).toThrow(/projectors\.0\.0\.weight: checkpoint \[6, 4\] vs model \[5, 4\]/);
    const x = tf.zeros([1, 3, 5]);
    expect(() => p.forward(x)).toThrow(/input has 5 features.*expected inDim 4/);
    tf.dispose([x, ...dict.values()]);
    p.dispose();
    src.dispose();
  });

  it('fused custom-gradient forward equals the plain Sequential (autodiff) in value and every gradient', () => {
    const p = new Projector({ inDim: 6, hiddenDim: 9, outDim: 4 }, { rng: Rng.fromSeed(7) });
    try {
      tf.tidy(() => {
        const x = tf.variable(tf.randomNormal([2, 5, 6], 0, 1, 'float32', 3));
        const w = tf.randomNormal([2, 5, 4], 0, 1, 'float32', 4);
        const vars = [x, ...p.parameters()];
        const run = (fused: boolean) => tf.variableGrads(() => tf.sum(tf.mul(p.forward(x, { fused }), w)) as tf.Scalar, vars);
        const a = run(true);
        const b = run(false);
        expect(Math.abs(a.value.dataSync()[0]! - b.value.dataSync()[0]!)).toBeLessThan(1e-5);
        for (const v of vars) {
          const ga = a.grads[v.name]!;
          const gb = b.grads[v.name]!;
          expect(ga.shape).toEqual(gb.shape);
          expect(tf.max(tf.abs(tf.sub(ga, gb))).dataSync()[0]).toBeLessThan(1e-5);
        }
        x.dispose();
      });
    } finally {
      p.dispose();
    }
  });

  it('leaks no tensors (forward and gradient)', async () => {
    const p = new Projector({ inDim: 6, hiddenDim: 8, outDim: 4 });
    const x = tf.randomNormal([2, 5, 6]);
    expect(await tensorLeakAcross(() => p.forward(x))).toBe(0);
    expect(await tensorLeakAcross(() => tf.variableGrads(() => tf.sum(p.forward(x)) as tf.Scalar, p.parameters()))).toBe(0);
    x.dispose();
    p.dispose();
  });
});

/** Plain-JS conv2d (NHWC input, PyTorch [out,in,kh,kw] weight), no padding. */
function convJs(x: number[][][][], w: number[][][][], b: number[], stride: [number, number]): number[][][][] {
  const [kh, kw] = [w[0]![0]!.length, w[0]![0]![0]!.length];
  return x.map((img) => {
    const h = img.length;
    const wd = img[0]!.length;
    const ho = Math.floor((h - kh) / stride[0]) + 1;
    const wo = Math.floor((wd - kw) / stride[1]) + 1;
    return Array.from({ length: ho }, (_, r) =>
      Array.from({ length: wo }, (_, c) =>
        w.map((wo_, o) => {
          let s = b[o]!;
          for (let i = 0; i < kh; i++) for (let j = 0; j < kw; j++) wo_.forEach((wi, ci) => (s += wi[i]![j]! * img[r * stride[0] + i]![c * stride[1] + j]![ci]!));
          return s;
        }),
      ),
    );
  });
}

describe('Downsampler', () => {
  it('matches a plain-JS conv for kernel = stride (patchify path, incl. maps not divisible by the kernel) and for other configs (conv path)', () => {
    fc.assert(
      fc.property(
        fc.record({ n: fc.integer({ min: 1, max: 2 }), h: fc.integer({ min: 3, max: 8 }), w: fc.integer({ min: 3, max: 8 }), c: fc.integer({ min: 1, max: 3 }), o: fc.integer({ min: 1, max: 3 }), k: fc.integer({ min: 1, max: 3 }), s: fc.integer({ min: 1, max: 3 }), seed: fc.integer({ min: 0, max: 1000 }) }),
        (r) => {
          const d = new Downsampler({ channels: r.c, outChannels: r.o, kernel: r.k, stride: r.s }, { rng: Rng.fromSeed(r.seed) });
          try {
            tf.tidy(() => {
              const x = tf.randomNormal([r.n, r.h, r.w, r.c], 0, 1, 'float32', r.seed);
              const y = d.apply(x);
              const ps = d.stateDict();
              const ref = convJs(x.arraySync() as any, ps.get('downsampler_cogvideo_output.weight')!.arraySync() as any, ps.get('downsampler_cogvideo_output.bias')!.arraySync() as any, [r.s, r.s]);
              expect(y.shape).toEqual([r.n, ref[0]!.length, ref[0]![0]!.length, r.o]);
              const got = y.arraySync() as number[][][][];
              got.flat(3).forEach((v, i) => expect(Math.abs(v - (ref.flat(3) as number[])[i]!)).toBeLessThan(1e-4));
            });
          } finally {
            d.dispose();
          }
        },
      ),
      { numRuns: 25 },
    );
  });

  it('patchify weight gradient equals the plain-JS adjoint Σ dy·patch', () => {
    const d = new Downsampler({ channels: 2, outChannels: 3, kernel: 2, stride: 2 }, { rng: Rng.fromSeed(4) });
    try {
      tf.tidy(() => {
        const x = tf.randomNormal([2, 4, 6, 2], 0, 1, 'float32', 5);
        const gy = tf.randomNormal([2, 2, 3, 3], 0, 1, 'float32', 6);
        const wp = d.getParameter('downsampler_cogvideo_output.weight');
        const wv = wp.value;
        const { grads } = tf.variableGrads(() => tf.sum(tf.mul(d.forward(x), gy)) as tf.Scalar, [wv]);
        const xs = x.arraySync() as number[][][][];
        const g = gy.arraySync() as number[][][][];
        const want = Array.from({ length: 3 }, (_, o) => Array.from({ length: 2 }, (_, ci) => Array.from({ length: 2 }, (_, i) => Array.from({ length: 2 }, (_, j) => {
          let s = 0;
          for (let n = 0; n < 2; n++) for (let r = 0; r < 2; r++) for (let c = 0; c < 3; c++) s += g[n]![r]![c]![o]! * xs[n]![2 * r + i]![2 * c + j]![ci]!;
          return s;
        }))));
        const got = toTorchLayout(grads[wv.name]!, wp.layout).arraySync() as number[][][][];
        got.flat(3).forEach((v, i) => expect(Math.abs(v - (want.flat(3) as number[])[i]!)).toBeLessThan(1e-4));
      });
    } finally {
      d.dispose();
    }
  });

  it('rejects a kernel larger than the map and mismatched channels', () => {
    const d = new Downsampler({ channels: 4, kernel: 3, stride: 3 });
    const small = tf.zeros([1, 2, 5, 4]);
    const wrongC = tf.zeros([1, 6, 6, 3]);
    expect(() => d.apply(small)).toThrow(/kernel 3×3 is larger than the map 2×5/);
    expect(() => d.apply(wrongC)).toThrow(/input has 3 channels.*expected 4/);
    expect(() => new Downsampler({ channels: 4, kernel: 0 })).toThrow(/kernel must be positive/);
    tf.dispose([small, wrongC]);
    d.dispose();
  });

  it('leaks no tensors (forward and gradient)', async () => {
    const d = new Downsampler({ channels: 3 });
    const x = tf.randomNormal([2, 6, 9, 3]);
    expect(await tensorLeakAcross(() => d.apply(x))).toBe(0);
    expect(await tensorLeakAcross(() => tf.variableGrads(() => tf.sum(d.forward(x)) as tf.Scalar, d.parameters()))).toBe(0);
    x.dispose();
    d.dispose();
  });
});

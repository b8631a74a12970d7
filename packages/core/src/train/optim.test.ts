import * as tf from '@tensorflow/tfjs';
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { AdamW, clipGradients, cosineWarmupValue, globalNorm } from './optim.js';

/** torch.optim.AdamW written out in float64, one scalar parameter (the reference). */
function adamwRef(p0: number, grads: number[], lrs: number[], o: { beta1: number; beta2: number; eps: number; weightDecay: number }): number {
  let p = p0;
  let m = 0;
  let v = 0;
  grads.forEach((g, i) => {
    const t = i + 1;
    const lr = lrs[i]!;
    p *= 1 - lr * o.weightDecay;
    m = o.beta1 * m + (1 - o.beta1) * g;
    v = o.beta2 * v + (1 - o.beta2) * g * g;
    const denom = Math.sqrt(v) / Math.sqrt(1 - o.beta2 ** t) + o.eps;
    p -= (lr / (1 - o.beta1 ** t)) * (m / denom);
  });
  return p;
}

describe('AdamW', () => {
  it('matches torch AdamW (float64 reference) over several steps', () => {
    fc.assert(
      fc.property(
        fc.array(fc.float({ min: -3, max: 3, noNaN: true }), { minLength: 1, maxLength: 6 }),
        fc.array(fc.double({ min: -2, max: 2, noNaN: true }), { minLength: 1, maxLength: 8 }),
        fc.double({ min: 1e-4, max: 1e-1, noNaN: true }),
        fc.double({ min: 0, max: 0.1, noNaN: true }),
        (p0, gs, lr, wd) => {
          const o = { beta1: 0.9, beta2: 0.95, eps: 1e-8, weightDecay: wd };
          const v = tf.variable(tf.tensor1d(p0));
          const opt = new AdamW(new Map([['w', v]]), { lr, ...o });
          for (const g of gs) {
            const gt = tf.fill([p0.length], g);
            opt.apply(new Map([['w', gt]]), lr);
            gt.dispose();
          }
          const got = v.dataSync();
          opt.dispose();
          v.dispose();
          return p0.every((x, i) => {
            const want = adamwRef(Math.fround(x), gs.map(Math.fround), gs.map(() => lr), o);
            return Math.abs(got[i]! - want) <= 1e-5 * Math.max(1, Math.abs(want));
          });
        },
      ),
      { numRuns: 40 },
    );
  });

  it('a parameter without a gradient is left alone; load() checks shapes', () => {
    const a = tf.variable(tf.ones([2]));
    const b = tf.variable(tf.ones([3]));
    const opt = new AdamW(
      new Map([
        ['a', a],
        ['b', b],
      ]),
      { lr: 0.1, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0.5 },
    );
    const g = tf.ones([2]);
    opt.apply(new Map([['a', g]]), 0.1);
    expect(Array.from(b.dataSync())).toEqual([1, 1, 1]);
    expect(a.dataSync()[0]).toBeLessThan(1);
    expect(() => opt.load(new Map([['a', tf.zeros([2])], ['b', tf.zeros([2])]]), new Map([['a', tf.zeros([2])], ['b', tf.zeros([3])]]), 1)).toThrow(/exp_avg for b has shape \[2\], expected \[3\]/);
    tf.dispose([a, b, g]);
    opt.dispose();
  });
});

describe('clipGradients (clip_grad_norm_)', () => {
  it('scales by max/(norm + 1e-6) only above the max, and reports the pre-clip norm', () => {
    const grads = new Map([
      ['x', tf.tensor1d([3, 0])],
      ['y', tf.tensor1d([4])],
    ]);
    expect(globalNorm(grads.values())).toBeCloseTo(5, 6);
    const { grads: out, norm } = clipGradients(grads, 1);
    expect(norm).toBeCloseTo(5, 6);
    const c = 1 / (5 + 1e-6);
    expect(out.get('x')!.dataSync()[0]).toBeCloseTo(3 * c, 6);
    expect(globalNorm(out.values())).toBeCloseTo(1, 5);
    const same = clipGradients(out, 10);
    expect(same.grads).toBe(out); // below the max: untouched
    tf.dispose([...out.values()]);
  });
});

describe('cosineWarmupValue (official utils.cosine_scheduler)', () => {
  /** The official schedule written out as arrays (np.linspace warm-up, then the cosine over the rest). */
  function officialSchedule(base: number, final: number, total: number, warmup: number, start: number): number[] {
    const w = Array.from({ length: warmup }, (_, k) => (warmup === 1 ? start : start + ((base - start) * k) / (warmup - 1)));
    const rest = total - warmup;
    const c = Array.from({ length: rest }, (_, j) => final + 0.5 * (base - final) * (1 + Math.cos((Math.PI * j) / rest)));
    return [...w, ...c];
  }

  it('equals the array form at every iteration; starts at warmupStart, reaches base, ends above final', () => {
    fc.assert(
      fc.property(fc.integer({ min: 2, max: 60 }), fc.integer({ min: 0, max: 20 }), (rest, warmup) => {
        const total = rest + warmup;
        const want = officialSchedule(1e-3, 1e-5, total, warmup, 1e-6);
        return want.every((v, i) => Math.abs(cosineWarmupValue(i, { base: 1e-3, final: 1e-5, total, warmup, warmupStart: 1e-6 }) - v) < 1e-15);
      }),
    );
    expect(cosineWarmupValue(0, { base: 1, final: 0, total: 10, warmup: 3 })).toBe(0);
    expect(cosineWarmupValue(2, { base: 1, final: 0, total: 10, warmup: 3 })).toBe(1);
    expect(cosineWarmupValue(3, { base: 1, final: 0, total: 10, warmup: 3 })).toBe(1);
    expect(cosineWarmupValue(9, { base: 1, final: 0, total: 10, warmup: 3 })).toBeGreaterThan(0);
  });

  it('AdamW skips weight decay for the no-decay group', () => {
    const a = tf.variable(tf.ones([2]));
    const b = tf.variable(tf.ones([2]));
    const opt = new AdamW(new Map([['a.weight', a], ['a.bias', b]]), { lr: 0.1, beta1: 0.9, beta2: 0.95, eps: 1e-8, weightDecay: 0.5, noDecay: (n) => n.endsWith('.bias') });
    const g = tf.zeros([2]);
    opt.apply(new Map([['a.weight', g], ['a.bias', g]]), 0.1);
    expect(a.dataSync()[0]).toBeCloseTo(1 - 0.1 * 0.5, 6); // zero gradient: only the decay moves it
    expect(b.dataSync()[0]).toBe(1);
    tf.dispose([a, b, g]);
    opt.dispose();
  });
});

/** The per-tensor AdamW as it was before the multi-tensor update (the expectation for bit-identity). */
function perTensorAdamW(params: Map<string, tf.Variable>, o: { beta1: number; beta2: number; eps: number; weightDecay: number; noDecay?: (n: string) => boolean }) {
  const m = new Map([...params].map(([n, p]) => [n, tf.zerosLike(p)] as [string, tf.Tensor]));
  const v = new Map([...params].map(([n, p]) => [n, tf.zerosLike(p)] as [string, tf.Tensor]));
  let step = 0;
  const apply = (grads: Map<string, tf.Tensor>, lr: number) => {
    step += 1;
    const bc1 = 1 - o.beta1 ** step;
    const sqrtBc2 = Math.sqrt(1 - o.beta2 ** step);
    const stepSize = lr / bc1;
    for (const [n, p] of params) {
      const g = grads.get(n);
      if (!g) continue;
      const wd = o.noDecay?.(n) ? 0 : o.weightDecay;
      const [mn, vn, next] = tf.tidy(() => {
        const decayed = wd > 0 && lr > 0 ? tf.mul(p, 1 - lr * wd) : p;
        const mm = tf.add(tf.mul(m.get(n)!, o.beta1), tf.mul(g, 1 - o.beta1));
        const vv = tf.add(tf.mul(v.get(n)!, o.beta2), tf.mul(tf.square(g), 1 - o.beta2));
        const denom = tf.add(tf.div(tf.sqrt(vv), sqrtBc2), o.eps);
        return [mm, vv, tf.sub(decayed, tf.mul(tf.div(mm, denom), stepSize))];
      });
      m.get(n)!.dispose();
      v.get(n)!.dispose();
      m.set(n, mn!);
      v.set(n, vn!);
      p.assign(next!);
      next!.dispose();
    }
  };
  return { m, v, apply, dispose: () => tf.dispose([...m.values(), ...v.values()]) };
}

describe('AdamW multi-tensor update', () => {
  const shapes: Record<string, number[]> = { 'a.weight': [5, 3], 'a.bias': [5], 'b.weight': [2, 3, 4], 'norm.weight': [7], 'c.weight': [4, 4], 'd.bias': [1], 'e.weight': [2, 3], 'f.weight': [1, 3, 4], scale: [], 'g.weight': [3] };
  const o = { beta1: 0.9, beta2: 0.95, eps: 1e-8, weightDecay: 1e-2, noDecay: (n: string) => n.endsWith('.bias') || n.startsWith('norm') };

  for (const fuseMaxElements of [undefined, 20, 0]) {
    it(`is bit-identical to the per-tensor update: params, exp_avg, exp_avg_sq after K steps, one with missing gradients (fuseMaxElements ${fuseMaxElements ?? 'default'})`, () => {
      fc.assert(
        // seed ≥ 1: tfjs's randomNormal treats seed 0 as 'no seed' (Math.random), which would give the two
        // optimisers different starting weights (a CI run drew seed 0).
        fc.property(fc.integer({ min: 1, max: 2 ** 30 }), fc.integer({ min: 1, max: 5 }), (seed, K) => {
          const init = (i: number) => new Map(Object.entries(shapes).map(([n, s], j) => [n, tf.variable(tf.randomNormal(s, 0, 1, 'float32', seed + j + i))] as [string, tf.Variable]));
          const ours = init(0);
          const ref = init(0);
          const opt = new AdamW(ours, { lr: 1e-3, ...o, fuseMaxElements });
          const refOpt = perTensorAdamW(ref, o);
          for (let k = 0; k < K; k++) {
            const grads = new Map(Object.entries(shapes).map(([n, s], j) => [n, tf.randomNormal(s, 0, 2, 'float32', seed * 7 + k * 31 + j)] as [string, tf.Tensor]));
            if (k === 1) {
              grads.get('b.weight')!.dispose();
              grads.delete('b.weight'); // torch skips a parameter whose p.grad is None
            }
            const lr = 1e-3 * (k + 1);
            opt.apply(grads, lr);
            refOpt.apply(grads, lr);
            tf.dispose([...grads.values()]);
          }
          const same = (a: tf.Tensor, b: tf.Tensor) => a.shape.join() === b.shape.join() && Buffer.from(a.dataSync().buffer).equals(Buffer.from(b.dataSync().buffer));
          const ok =
            opt.step === K &&
            [...ours].every(([n, p]) => same(p, ref.get(n)!) && same(opt.m.get(n)!, refOpt.m.get(n)!) && same(opt.v.get(n)!, refOpt.v.get(n)!));
          opt.dispose();
          refOpt.dispose();
          tf.dispose([...ours.values(), ...ref.values()]);
          return ok;
        }),
        { numRuns: 12 },
      );
    });
  }

  it('leaks no tensors across steps, views, load and dispose', () => {
    const params = new Map(Object.entries(shapes).map(([n, s]) => [n, tf.variable(tf.ones(s))] as [string, tf.Variable]));
    const grads = new Map(Object.entries(shapes).map(([n, s]) => [n, tf.fill(s, 0.5)] as [string, tf.Tensor]));
    const before = tf.memory().numTensors;
    const opt = new AdamW(params, { lr: 1e-3, ...o });
    opt.apply(grads, 1e-3);
    const afterOne = tf.memory().numTensors;
    for (let i = 0; i < 3; i++) {
      opt.apply(grads, 1e-3);
      expect(opt.m.get('a.weight')!.shape).toEqual([5, 3]);
      opt.load(opt.m, opt.v, opt.step);
    }
    opt.apply(grads, 1e-3);
    expect(tf.memory().numTensors).toBe(afterOne);
    opt.dispose();
    expect(tf.memory().numTensors).toBe(before);
    tf.dispose([...params.values(), ...grads.values()]);
  });

  it('load() copies: the loaded moments survive disposing the source, and round-trip exactly', () => {
    const params = new Map(Object.entries(shapes).map(([n, s]) => [n, tf.variable(tf.ones(s))] as [string, tf.Variable]));
    const src = (k: number) => new Map(Object.entries(shapes).map(([n, s], j) => [n, tf.randomNormal(s, 0, 1, 'float32', k + j)] as [string, tf.Tensor]));
    const m = src(1), v = src(100);
    const opt = new AdamW(params, { lr: 1e-3, ...o });
    opt.load(m, v, 7);
    const want = [...m].map(([n, t]) => [n, Array.from(t.dataSync())] as const);
    tf.dispose([...m.values(), ...v.values()]);
    for (const [n, w] of want) expect(Array.from(opt.m.get(n)!.dataSync())).toEqual(w);
    expect(opt.step).toBe(7);
    opt.dispose();
    tf.dispose([...params.values()]);
  });
});

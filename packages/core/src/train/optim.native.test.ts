/**
 * The native AdamW (binding patch 30: one `fusedAdamW` call for all parameters) against the op-chain AdamW
 * it replaces on tfjs-node: the same bits for parameters and moments, no leaked tensors or handles, and a
 * bit-exact resume through a checkpoint. Runs where the active backend is tfjs-node with a patched binding.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { AdamW, clipCoefficient, globalNorm, lrLambda, nativeAdamWBackend, type LrSchedulerKind } from './optim.js';
import { disposeLoaded, loadLatestCheckpoint, paramsSignature, saveCheckpoint } from './checkpoint.node.js';

const nb = nativeAdamWBackend();

describe('native AdamW availability', () => {
  it('is there wherever the patched tfjs-node binding runs (VREPA_REQUIRE_NATIVE=1 from test-all)', () => {
    if (process.env.VREPA_REQUIRE_NATIVE === '1' && tf.getBackend() === 'tensorflow') expect(nb, 'binding.fusedAdamW missing: rebuild with `vrepa backend install-native`').toBeDefined();
    if (tf.getBackend() !== 'tensorflow') expect(nb).toBeUndefined();
  });
});

const same = (a: tf.Tensor, b: tf.Tensor) => a.shape.join() === b.shape.join() && Buffer.from(a.dataSync().buffer).equals(Buffer.from(b.dataSync().buffer));

/** Counts the native calls (to prove the native path ran); the binding's exports are read-only, so the backend's binding is wrapped. */
function countNativeCalls<T>(f: () => T): { result: T; calls: number } {
  const backend = tf.backend() as unknown as { binding: NonNullable<typeof nb>['binding'] };
  const binding = backend.binding;
  let calls = 0;
  const counted: typeof binding.fusedAdamW = (...a) => {
    calls++;
    return binding.fusedAdamW(...a);
  };
  backend.binding = Object.create(binding, { fusedAdamW: { value: counted } });
  try {
    return { result: f(), calls };
  } finally {
    backend.binding = binding;
  }
}

describe.skipIf(!nb)('native AdamW (binding.fusedAdamW)', () => {
  // scalars, size-1, odd sizes, a parameter larger than a fused group's per-parameter limit (2^16) is not
  // needed here: the native path treats every parameter alike
  const shapes: Record<string, number[]> = { 'blk.w': [7, 13], 'blk.bias': [13], scale: [], one: [1], odd: [3, 5, 7], 'norm.weight': [5], wide: [33, 65], 'e.weight': [2, 3] };
  const noDecay = (n: string) => n.endsWith('.bias') || n.startsWith('norm');

  it('is bit-identical to the op-chain AdamW (multi-tensor and per-tensor) over ≥ 20 steps: params, exp_avg, exp_avg_sq', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 2 ** 30 }), // seed ≥ 1 (tfjs treats seed 0 as unseeded)
        fc.integer({ min: 20, max: 24 }),
        fc.constantFrom(1, 1e-3, 1e-21, 40), // 1e-21: g² is below float32's normal range (flushed, as TensorFlow does)
        fc.constantFrom(0, 1e-2, 0.1),
        fc.constantFrom<LrSchedulerKind>('constant_with_warmup', 'linear', 'cosine'),
        fc.integer({ min: 0, max: 8 }),
        fc.integer({ min: 0, max: 19 }),
        fc.constantFrom(1, 0.37, 1 / 3), // gradient clipping's coefficient (AdamW.apply's gradScale)
        (seed, K, gScale, weightDecay, kind, warmup, dropAt, clip) => {
          const o = { beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay, noDecay };
          const init = () => new Map(Object.entries(shapes).map(([n, s], j) => [n, tf.variable(tf.randomNormal(s, 0, 1, 'float32', seed + j))] as [string, tf.Variable]));
          const pn = init();
          const pf = init();
          const pt = init();
          const native = new AdamW(pn, { lr: 1e-3, ...o });
          const fused = new AdamW(pf, { lr: 1e-3, ...o, native: false });
          const perTensor = new AdamW(pt, { lr: 1e-3, ...o, fuseMaxElements: 0 });
          let calls = 0;
          for (let k = 0; k < K; k++) {
            const grads = new Map(Object.entries(shapes).map(([n, s], j) => [n, tf.mul(tf.randomNormal(s, 0, 1, 'float32', seed * 7 + k * 31 + j), gScale)] as [string, tf.Tensor]));
            if (k === dropAt) {
              grads.get('odd')!.dispose();
              grads.delete('odd'); // torch skips a parameter whose p.grad is None
            }
            const lr = 2e-3 * lrLambda(kind, k, warmup, K);
            calls += countNativeCalls(() => native.apply(grads, lr, clip)).calls;
            // the reference: clipGradients' scaled tensors (tf.mul(g, coef)), then the op chain
            const scaled = clip === 1 ? grads : new Map([...grads].map(([n, g]) => [n, tf.mul(g, clip)] as const));
            fused.apply(scaled, lr);
            if (scaled !== grads) tf.dispose([...scaled.values()]);
            perTensor.apply(grads, lr, clip); // the op chain's own gradScale path
            tf.dispose([...grads.values()]);
          }
          const ok =
            calls === K &&
            native.step === K &&
            [...pn].every(
              ([n, p]) =>
                same(p, pf.get(n)!) &&
                same(p, pt.get(n)!) &&
                same(native.m.get(n)!, fused.m.get(n)!) &&
                same(native.v.get(n)!, fused.v.get(n)!) &&
                same(native.m.get(n)!, perTensor.m.get(n)!) &&
                same(native.v.get(n)!, perTensor.v.get(n)!),
            );
          [native, fused, perTensor].forEach((x) => x.dispose());
          tf.dispose([...pn.values(), ...pf.values(), ...pt.values()]);
          return ok;
        },
      ),
      // always one run with denormal g² and one with large gradients, weight decay and a warm-up
      { numRuns: 10, examples: [[12345, 20, 1e-21, 0.1, 'cosine', 3, 4, 0.37], [777, 21, 40, 1e-2, 'linear', 0, 19, 1]] },
    );
  });

  it('splits a large parameter over threads with the same bits', () => {
    const shape = [600_001]; // ≥ 2 chunks of 2^18 elements, odd size
    const a = tf.variable(tf.randomNormal(shape, 0, 1, 'float32', 3));
    const b = tf.variable(tf.randomNormal(shape, 0, 1, 'float32', 3));
    const oa = new AdamW(new Map([['w', a]]), { lr: 1e-3, beta1: 0.9, beta2: 0.95, eps: 1e-8, weightDecay: 0.05 });
    const ob = new AdamW(new Map([['w', b]]), { lr: 1e-3, beta1: 0.9, beta2: 0.95, eps: 1e-8, weightDecay: 0.05, native: false });
    for (let k = 0; k < 3; k++) {
      const g = tf.randomNormal(shape, 0, 1, 'float32', 10 + k);
      expect(countNativeCalls(() => oa.apply(new Map([['w', g]]), 1e-3)).calls).toBe(1);
      ob.apply(new Map([['w', g]]), 1e-3);
      g.dispose();
    }
    expect(same(a, b)).toBe(true);
    expect(same(oa.m.get('w')!, ob.m.get('w')!)).toBe(true);
    expect(same(oa.v.get('w')!, ob.v.get('w')!)).toBe(true);
    oa.dispose();
    ob.dispose();
    tf.dispose([a, b]);
  });

  it('leaks no tensors (tfjs) and no handles (binding) across steps, views, load and dispose', () => {
    const params = new Map(Object.entries(shapes).map(([n, s]) => [n, tf.variable(tf.ones(s))] as [string, tf.Variable]));
    const grads = new Map(Object.entries(shapes).map(([n, s]) => [n, tf.fill(s, 0.5)] as [string, tf.Tensor]));
    const handles = () => (nb!.binding as unknown as { getNumOfTensors(): number }).getNumOfTensors();
    const before = tf.memory().numTensors;
    const opt = new AdamW(params, { lr: 1e-3, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0.01 });
    opt.apply(grads, 1e-3);
    const afterOne = tf.memory().numTensors;
    const handlesAfterOne = handles();
    for (let i = 0; i < 5; i++) {
      expect(countNativeCalls(() => opt.apply(grads, 1e-3)).calls).toBe(1);
      expect(tf.memory().numTensors).toBe(afterOne);
      expect(handles()).toBe(handlesAfterOne);
    }
    opt.load(opt.m, opt.v, opt.step);
    opt.apply(grads, 1e-3);
    expect(tf.memory().numTensors).toBe(afterOne);
    opt.dispose();
    expect(tf.memory().numTensors).toBe(before);
    tf.dispose([...params.values(), ...grads.values()]);
  });

  it('a clone of a parameter or moment taken before a step keeps its values (outputs are new handles)', () => {
    const p = tf.variable(tf.tensor1d([1, 2, 3]));
    const opt = new AdamW(new Map([['w', p]]), { lr: 0.1, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0 });
    const g = tf.tensor1d([0.5, -1, 2]);
    opt.apply(new Map([['w', g]]), 0.1);
    const pc = tf.clone(p);
    const mc = tf.clone(opt.m.get('w')!);
    const pv = Array.from(p.dataSync());
    const mv = Array.from(opt.m.get('w')!.dataSync());
    opt.apply(new Map([['w', g]]), 0.1);
    expect(Array.from(pc.dataSync())).toEqual(pv);
    expect(Array.from(mc.dataSync())).toEqual(mv);
    expect(Array.from(p.dataSync())).not.toEqual(pv);
    tf.dispose([pc, mc, g, p]);
    opt.dispose();
  });

  it('resumes bit-exactly through a checkpoint (save at step 12, load into a fresh optimizer, 13 more steps)', () => {
    const o = { lr: 1e-3, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0.05, noDecay };
    const init = () => new Map(Object.entries(shapes).map(([n, s], j) => [n, tf.variable(tf.randomNormal(s, 0, 1, 'float32', 5 + j))] as [string, tf.Variable]));
    const grads = (k: number) => new Map(Object.entries(shapes).map(([n, s], j) => [n, tf.randomNormal(s, 0, 1, 'float32', 1000 + k * 17 + j)] as [string, tf.Tensor]));
    const lr = (k: number) => 1e-3 * lrLambda('cosine', k, 5, 25);
    const step = (opt: AdamW, k: number) => {
      const g = grads(k);
      opt.apply(g, lr(k));
      tf.dispose([...g.values()]);
    };
    const straight = init();
    const optA = new AdamW(straight, o);
    for (let k = 0; k < 25; k++) step(optA, k);

    const out = fs.mkdtempSync(path.join(os.tmpdir(), 'vrepa-adamw-native-'));
    const first = init();
    const optB = new AdamW(first, o);
    for (let k = 0; k < 12; k++) step(optB, k);
    saveCheckpoint(out, { step: 12, configHash: 'c', params: first, exp_avg: optB.m, exp_avg_sq: optB.v, state: { step: 12 } }, 1);
    optB.dispose();

    const resumed = init();
    const optC = new AdamW(resumed, o);
    const c = loadLatestCheckpoint<{ step: number }>(out, { configHash: 'c', paramsSignature: paramsSignature(resumed) })!;
    for (const [n, p] of resumed) p.assign(c.params.get(n)!);
    optC.load(c.exp_avg, c.exp_avg_sq, c.state.step);
    disposeLoaded(c);
    const { calls } = countNativeCalls(() => {
      for (let k = 12; k < 25; k++) step(optC, k);
    });
    expect(calls).toBe(13);
    for (const [n, p] of straight) {
      expect(same(p, resumed.get(n)!), n).toBe(true);
      expect(same(optA.m.get(n)!, optC.m.get(n)!), n).toBe(true);
      expect(same(optA.v.get(n)!, optC.v.get(n)!), n).toBe(true);
    }
    optA.dispose();
    optC.dispose();
    tf.dispose([...straight.values(), ...first.values(), ...resumed.values()]);
    fs.rmSync(out, { recursive: true, force: true });
  });

  it('globalNorm in one native call: the float64 norm of all gradients (JS float64 reference), close to the float32 op chain', () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 2 ** 30 }), fc.constantFrom(1, 1e-3, 50), (seed, scale) => {
        const grads = Object.values(shapes).map((s, j) => tf.mul(tf.randomNormal(s, 0, 1, 'float32', seed + j), scale));
        let want = 0;
        for (const g of grads) for (const x of g.dataSync()) want += x * x;
        want = Math.sqrt(want);
        const got = globalNorm(grads);
        process.env.VREPA_ADAMW_NATIVE = '0';
        const chain = globalNorm(grads);
        delete process.env.VREPA_ADAMW_NATIVE;
        tf.dispose(grads);
        return Math.abs(got - want) <= 1e-12 * want && Math.abs(chain - want) <= 1e-5 * want;
      }),
      { numRuns: 20 },
    );
    const { coef, norm } = clipCoefficient(new Map([['a', tf.tensor1d([3, 4])]]), 1);
    expect(norm).toBe(5);
    expect(coef).toBe(1 / (5 + 1e-6));
  });

  it('rejects malformed calls before writing anything', () => {
    const a = tf.ones([3]);
    const b = tf.ones([4]);
    const ids = Int32Array.from(nb!.getInputTensorIds([a, b, a, a]));
    expect(() => nb!.binding.fusedAdamW(ids, new Uint8Array(1), new Float32Array(8))).toThrow(/differ in size/);
    expect(() => nb!.binding.fusedAdamW(ids, new Uint8Array(2), new Float32Array(8))).toThrow(/fusedAdamW\(ids/);
    expect(() => nb!.binding.fusedAdamW(Int32Array.from([-5, -5, -5, -5]), new Uint8Array(1), new Float32Array(8))).toThrow(/not a float32 tensor/);
    tf.dispose([a, b]);
  });
});

/**
 * Binding patch 32's fast paths (native-fast.ts): executeOpIo and smallBinary against the stock tfjs-node
 * path, switched per call in one process (VREPA_TF_FAST_EXEC / VREPA_TF_SMALL_BINARY = '0'); and patch 33's
 * (fourth wave): smallBinary at large sizes on one thread and split over two (VREPA_TF_SMALL_BINARY_MAX,
 * VREPA_TF_BINARY_SPLIT) and mulAdd (VREPA_TF_MUL_ADD=1), against TensorFlow's kernels.
 */
import * as tf from '@tensorflow/tfjs';
import fc from 'fast-check';
import { afterEach, describe, expect, it } from 'vitest';
import { profileOps } from '../op-profile.js';
import { BINARY_MAX_DEFAULT, SMALL_BINARY_MAX, defaultBinaryMax, hasFastExec, mulAdd } from './native-fast.js';
import { gatedResidual, modulate } from '../nn/custom.js';

const native = tf.getBackend() === 'tensorflow' && hasFastExec(tf.backend());
const binding = () => (tf.backend() as unknown as { binding: { getNumOfTensors(): number } }).binding;
const KEYS = ['VREPA_TF_FAST_EXEC', 'VREPA_TF_SMALL_BINARY'] as const;
const KEYS4 = ['VREPA_TF_SMALL_BINARY_MAX', 'VREPA_TF_BINARY_SPLIT', 'VREPA_TF_MUL_ADD'] as const;
const patch33 = native && typeof (tf.backend() as unknown as { binding: { binaryInfo?: unknown } }).binding.binaryInfo === 'function';
// every test leaves the toggles as it found them
const saved = Object.fromEntries([...KEYS, ...KEYS4].map((k) => [k, process.env[k]]));
afterEach(() => {
  for (const [k, v] of Object.entries(saved)) {
    if (v === undefined) delete process.env[k];
    else process.env[k] = v;
  }
});

/** TensorFlow ops and native binding ops `f` runs, by name (its result read and disposed). */
function kernelCounts(f: () => tf.Tensor): Record<string, number> {
  const p = profileOps(() => {
    const y = f();
    y.dataSync();
    y.dispose();
  });
  return Object.fromEntries(p.binding.filter((c) => c.name.startsWith('TF ') || c.name.startsWith('native ')).map((c) => [c.name, c.count]));
}

/** `step` run `rounds` more times after a warm-up leaves tfjs tensors and binding handles level. */
function expectLevel(step: () => void, rounds: number): void {
  step();
  const t0 = tf.memory().numTensors;
  const h0 = binding().getNumOfTensors();
  for (let k = 0; k < rounds; k++) step();
  expect(tf.memory().numTensors).toBe(t0);
  expect(binding().getNumOfTensors()).toBe(h0);
}

describe('binding patches 32 and 33 availability', () => {
  it('are there wherever the patched tfjs-node binding runs (VREPA_REQUIRE_NATIVE=1 from test-all), so the suites below cannot skip silently', () => {
    if (process.env.VREPA_REQUIRE_NATIVE === '1' && tf.getBackend() === 'tensorflow') {
      expect(native, 'binding.executeOpIo / smallBinary missing: rebuild with `vrepa backend install-native`').toBe(true);
      expect(patch33, 'binding.binaryInfo / mulAdd missing: rebuild with `vrepa backend install-native`').toBe(true);
    }
    if (tf.getBackend() !== 'tensorflow') expect(native).toBe(false);
  });
});

/** `f` with both fast paths on (defaults) and off (stock tfjs-node): values as bits, shapes, dtypes. */
function both<T extends tf.Tensor | tf.Tensor[]>(f: () => T): { fast: T; stock: T } {
  for (const k of KEYS) delete process.env[k];
  const fast = f();
  for (const k of KEYS) process.env[k] = '0';
  const stock = f();
  for (const k of KEYS) delete process.env[k];
  return { fast, stock };
}
const bits = (t: tf.Tensor) => Array.from(new Uint32Array(new Float32Array(t.dataSync() as Float32Array).buffer));
const same = (x: tf.Tensor, y: tf.Tensor) => {
  expect(x.shape).toEqual(y.shape);
  expect(x.dtype).toBe(y.dtype);
  if (x.dtype === 'float32') expect(bits(x)).toEqual(bits(y));
  else expect(Array.from(x.dataSync())).toEqual(Array.from(y.dataSync()));
};

// float32 values with the awkward ones: denormals (flushed by TensorFlow's kernels), ±0, ±Inf, huge, tiny
const special = [0, -0, 1e-45, -3e-39, 1.1754942e-38, 3.4e38, -3.4e38, Infinity, -Infinity, 1, -1, 0.1];
const value = fc.oneof(fc.float({ noNaN: true }), fc.constantFrom(...special));
const shapeArb = fc.array(fc.integer({ min: 1, max: 5 }), { minLength: 0, maxLength: 4 });

describe.skipIf(!native)('tfjs-node fast paths (binding patch 32)', () => {
  it('smallBinary: Add / Sub / Mul / Div bit-identical to TensorFlow\'s kernels (NumPy broadcasts, JS scalars, denormals)', () => {
    fc.assert(
      fc.property(
        shapeArb,
        fc.constantFrom('add', 'sub', 'mul', 'div'),
        fc.constantFrom('equal', 'scalarB', 'scalarA', 'jsB', 'jsA', 'ones', 'row', 'col', 'mixed'),
        fc.array(value, { minLength: 400, maxLength: 400 }),
        (shape, op, form, vals) => {
          const size = tf.util.sizeFromShape(shape);
          // up to 100 generated values per operand, the rest cycling through them
          const make = (s: number[], off: number) => tf.tensor(Array.from({ length: tf.util.sizeFromShape(s) }, (_, k) => vals[off + (k % 100)]!), s, 'float32');
          const x = make(shape, 0);
          const ones = shape.map(() => 1).slice(shape.length > 1 ? 1 : 0);
          // row: the trailing axes (bias-like); col: the last axis 1 (LayerNorm-like); mixed: every other axis 1,
          // and x's own axes alternately 1 the other way, so that both operands broadcast
          const yShape = { equal: shape, ones, row: shape.slice(Math.min(1, shape.length)), col: [...shape.slice(0, -1), 1].slice(0, shape.length), mixed: shape.map((d, k) => (k % 2 ? 1 : d)) }[form as 'equal'] ?? [];
          const xs = form === 'mixed' ? shape.map((d, k) => (k % 2 ? d : 1)) : shape;
          const x2 = form === 'mixed' ? make(xs, 0) : undefined;
          const y = make(yShape, 200);
          const s = Math.fround(vals[300]!);
          const fn = { add: tf.add, sub: tf.sub, mul: tf.mul, div: tf.div }[op];
          const run = () =>
            form === 'jsB' ? fn(x, s) : form === 'jsA' ? fn(tf.scalar(s), x) : form === 'scalarA' || form === 'ones' || form === 'col' ? fn(y, x) : fn(x2 ?? x, y);
          const { fast, stock } = both(run);
          same(fast, stock);
          expect(size).toBeLessThanOrEqual(SMALL_BINARY_MAX);
          tf.dispose([x, y, fast, stock, ...(x2 ? [x2] : [])]);
        },
      ),
      { numRuns: 300 },
    );
  });

  it('smallBinary runs in the binding (no eager op) and falls back for other dtypes and sizes', () => {
    const a = tf.randomNormal([8, 16]);
    const b = tf.randomNormal([8, 16]);
    const row = tf.randomNormal([16]);
    const big = tf.randomNormal([(patch33 ? defaultBinaryMax() : SMALL_BINARY_MAX) + 1]);
    const i = tf.tensor1d([1, 2, 3], 'int32');
    const ops = kernelCounts;
    expect(ops(() => tf.add(a, b))).toEqual({ 'native Add': 1 });
    expect(ops(() => tf.mul(a, 0.9))).toEqual({ 'native Mul': 1 }); // the JS scalar never becomes a TF tensor
    expect(ops(() => tf.sub(a, row))).toEqual({ 'native Sub': 1 }); // broadcast in the binding too
    expect(ops(() => tf.add(big, big))).toEqual({ 'TF Add': 1 });
    expect(ops(() => tf.add(i, i))).toEqual({ 'TF Add': 1 });
    const { fast, stock } = both(() => tf.sub(a, row));
    same(fast, stock);
    tf.dispose([a, b, row, big, i, fast, stock]);
  });

  it('gradients through the fast paths are bit-identical to the stock ones', () => {
    fc.assert(
      fc.property(fc.array(fc.integer({ min: 1, max: 6 }), { minLength: 1, maxLength: 3 }), fc.nat(1000), (shape, seed) => {
        const a = tf.randomNormal(shape, 0, 1, 'float32', seed);
        const b = tf.randomNormal(shape, 0, 1, 'float32', seed + 1);
        const w = tf.randomNormal([shape.at(-1)!, 3], 0, 1, 'float32', seed + 2);
        const f = (p: tf.Tensor, q: tf.Tensor) => tf.sum(tf.matMul(tf.div(tf.sub(tf.mul(p, q), tf.mul(p, 0.5)), tf.add(tf.square(q), 1)).reshape([-1, shape.at(-1)!]), w));
        const { fast, stock } = both(() => tf.grads(f)([a, b]));
        same(fast[0]!, stock[0]!);
        same(fast[1]!, stock[1]!);
        tf.dispose([a, b, w, ...fast, ...stock]);
      }),
      { numRuns: 40 },
    );
  });

  it('executeOpIo: multi-output and int32 ops give the stock results', () => {
    const x = tf.randomNormal([6, 10], 0, 1, 'float32', 3);
    const check = (f: () => tf.Tensor | tf.Tensor[]) => {
      const { fast, stock } = both(f);
      const fs = Array.isArray(fast) ? fast : [fast];
      const ss = Array.isArray(stock) ? stock : [stock];
      expect(fs.length).toBe(ss.length);
      fs.forEach((t, k) => same(t, ss[k]!));
      tf.dispose([...fs, ...ss]);
    };
    check(() => tf.split(x, [3, 7], 1));
    check(() => { const r = tf.topk(x, 4); return [r.values, r.indices]; });
    check(() => tf.sum(x, 1));
    check(() => tf.transpose(x));
    check(() => tf.argMax(x, 1));
    check(() => tf.matMul(x, x, false, true));
    check(() => tf.concat([x, x], 0));
    check(() => tf.tensor4d(Array.from({ length: 2 * 3 * 4 * 5 }, (_, k) => k), [2, 3, 4, 5]).transpose([3, 1, 0, 2]));
    x.dispose();
  });

  it('no leaks: tfjs tensors and binding handles stay level across calls', () => {
    const a = tf.randomNormal([4, 8]);
    const step = () => {
      const [g] = tf.grads((p: tf.Tensor) => tf.sum(tf.mul(tf.add(p, 1), tf.sub(p, tf.scalar(2)))))([a]);
      const parts = tf.split(g!, 2, 1);
      tf.dispose([g!, ...parts]);
    };
    expectLevel(step, 50);
    a.dispose();
  });
});

/**
 * float32 bits of a tensor as a Buffer (fast equality on large tensors), every NaN as the canonical quiet NaN:
 * when both operands of an Add or Mul are NaN, x86 returns the first operand's NaN, and which operand comes
 * first is the compiler's choice (IEEE addition and multiplication commute), so the sign and payload of such
 * a NaN are not part of the contract; that a NaN comes out, and every other bit, are.
 */
const raw = (t: tf.Tensor) => {
  const f = new Float32Array(t.dataSync() as Float32Array);
  for (let i = 0; i < f.length; i++) if (Number.isNaN(f[i])) f[i] = NaN;
  const u = new Uint32Array(f.buffer);
  for (let i = 0; i < u.length; i++) if (Number.isNaN(f[i])) u[i] = 0x7fc00000;
  return Buffer.from(f.buffer);
};
const sameBig = (x: tf.Tensor, y: tf.Tensor) => {
  expect(x.shape).toEqual(y.shape);
  expect(x.dtype).toBe(y.dtype);
  const [a, b] = [raw(x), raw(y)];
  if (!a.equals(b)) {
    const ua = new Uint32Array(a.buffer, a.byteOffset, a.length / 4);
    const ub = new Uint32Array(b.buffer, b.byteOffset, b.length / 4);
    const k = ua.findIndex((v, i) => v !== ub[i]);
    expect({ at: k, bits: ua[k] }).toEqual({ at: k, bits: ub[k] });
  }
};
/** `f` as the eager TensorFlow kernels, smallBinary on one thread and split over two: all three must agree. */
function three<T extends tf.Tensor | tf.Tensor[]>(f: () => T, split = '16384'): { stock: T; one: T; two: T } {
  process.env.VREPA_TF_SMALL_BINARY = '0';
  const stock = f();
  delete process.env.VREPA_TF_SMALL_BINARY;
  process.env.VREPA_TF_SMALL_BINARY_MAX = String(1 << 26);
  process.env.VREPA_TF_BINARY_SPLIT = '0';
  const one = f();
  process.env.VREPA_TF_BINARY_SPLIT = split;
  const two = f();
  for (const k of KEYS4) delete process.env[k];
  return { stock, one, two };
}

describe.skipIf(!patch33)('tfjs-node smallBinary at every size, split over two threads (binding patch 33)', () => {
  it('Add / Sub / Mul / Div of large tensors bit-identical to TensorFlow\'s kernels, one thread and two (AdaLN rows, columns, JS scalars, denormals, ±0, ±Inf, NaN)', () => {
    const special4 = [...special, NaN, -NaN];
    fc.assert(
      fc.property(
        fc.tuple(fc.integer({ min: 1, max: 5 }), fc.integer({ min: 1, max: 1300 }), fc.constantFrom(1, 3, 16, 63, 64, 65)),
        fc.constantFrom('add', 'sub', 'mul', 'div'),
        fc.constantFrom('equal', 'row', 'rowA', 'col', 'last', 'jsB', 'jsA', 'one', 'mixed'),
        fc.array(fc.oneof(fc.float(), fc.constantFrom(...special4)), { minLength: 256, maxLength: 256 }),
        (shape, op, form, vals) => {
          const make = (s: number[], off: number) => tf.tensor(Float32Array.from({ length: tf.util.sizeFromShape(s) }, (_, k) => vals[(off + k * 7 + (k >> 8)) % 256]!), s, 'float32');
          const [B, N, D] = shape;
          const x = make(shape, 0);
          const yShape = { equal: shape, row: [B, 1, D], rowA: [B, 1, D], col: [B, N, 1], last: [D], one: [1, 1, 1], mixed: [1, N, 1] }[form as 'equal'] ?? [];
          const y = make(yShape, 101);
          const x2 = form === 'mixed' ? make([B, 1, D], 57) : undefined;
          const s = Math.fround(vals[200]!);
          const fn = { add: tf.add, sub: tf.sub, mul: tf.mul, div: tf.div }[op];
          const run = () => (form === 'jsB' ? fn(x, s) : form === 'jsA' ? fn(tf.scalar(s), x) : form === 'rowA' || form === 'one' ? fn(y, x) : fn(x2 ?? x, y));
          const { stock, one, two } = three(run);
          sameBig(one, stock);
          sameBig(two, stock);
          tf.dispose([x, y, stock, one, two, ...(x2 ? [x2] : [])]);
        },
      ),
      { numRuns: 120 },
    );
  });

  it('odd splits: two outer rows, one row, flat lengths not a multiple of 16, rank 1 and 5', () => {
    const cases: Array<[number[], number[]]> = [
      [[2, 40000], [2, 40000]], [[2, 40000], [1, 40000]], [[1, 50001], [1, 1]], [[50001], [50001]], [[70001], []],
      [[3, 20011], [3, 1]], [[2, 3, 5, 7, 401], [3, 1, 7, 1]], [[20000, 3], [3]], [[16385], [16385]],
    ];
    for (const [sa, sb] of cases) {
      const a = tf.randomNormal(sa, 0, 1, 'float32', 7);
      const b = tf.randomNormal(sb, 0, 1, 'float32', 8);
      for (const fn of [tf.add, tf.sub, tf.mul, tf.div]) {
        const { stock, one, two } = three(() => fn(a, b));
        sameBig(one, stock);
        sameBig(two, stock);
        const r = three(() => fn(b, a));
        sameBig(r.one, r.stock);
        sameBig(r.two, r.stock);
        tf.dispose([stock, one, two, r.stock, r.one, r.two]);
      }
      tf.dispose([a, b]);
    }
  });

  it('the limits: VREPA_TF_SMALL_BINARY_MAX and the default decide which sizes run in the binding', () => {
    const ops = kernelCounts;
    // the raised default applies on ≤ 2 cores only (where it was measured)
    expect([defaultBinaryMax(1), defaultBinaryMax(2), defaultBinaryMax(4), defaultBinaryMax(64), defaultBinaryMax(Infinity)]).toEqual([BINARY_MAX_DEFAULT, BINARY_MAX_DEFAULT, SMALL_BINARY_MAX, SMALL_BINARY_MAX, SMALL_BINARY_MAX]);
    const x = tf.randomNormal([4, 1104, 64]);
    const row = tf.randomNormal([4, 1, 64]);
    expect(ops(() => tf.mul(x, row))).toEqual({ [defaultBinaryMax() > SMALL_BINARY_MAX ? 'native Mul' : 'TF Mul']: 1 });
    process.env.VREPA_TF_SMALL_BINARY_MAX = String(SMALL_BINARY_MAX);
    expect(ops(() => tf.mul(x, row))).toEqual({ 'TF Mul': 1 });
    delete process.env.VREPA_TF_SMALL_BINARY_MAX;
    const big = tf.randomNormal([BINARY_MAX_DEFAULT + 1]);
    expect(ops(() => tf.add(big, big))).toEqual({ 'TF Add': 1 });
    process.env.VREPA_TF_SMALL_BINARY_MAX = String(BINARY_MAX_DEFAULT);
    expect(ops(() => tf.mul(x, row))).toEqual({ 'native Mul': 1 }); // the env raises the limit on any machine
    process.env.VREPA_TF_SMALL_BINARY_MAX = '2M';
    expect(() => tf.mul(x, row)).toThrow("VREPA_TF_SMALL_BINARY_MAX must be a number of elements, got '2M'");
    process.env.VREPA_TF_SMALL_BINARY_MAX = '';
    process.env.VREPA_TF_BINARY_SPLIT = 'on';
    expect(() => tf.mul(x, row)).toThrow("VREPA_TF_BINARY_SPLIT must be a number of elements, got 'on'");
    delete process.env.VREPA_TF_BINARY_SPLIT;
    delete process.env.VREPA_TF_SMALL_BINARY_MAX;
    process.env.VREPA_TF_SMALL_BINARY_MAX = String(BINARY_MAX_DEFAULT + 1);
    expect(ops(() => tf.add(big, big))).toEqual({ 'native Add': 1 });
    tf.dispose([x, row, big]);
  });

  it('gradients of the AdaLN chains at the toy size: bit-identical on every path', () => {
    fc.assert(
      fc.property(fc.integer({ min: 200, max: 1200 }), fc.nat(1000), (n, seed) => {
        const x = tf.randomNormal([2, n, 64], 0, 1, 'float32', seed);
        const sc = tf.randomNormal([2, 1, 64], 0, 0.1, 'float32', seed + 1);
        const sh = tf.randomNormal([2, 1, 64], 0, 0.1, 'float32', seed + 2);
        const g = tf.randomNormal([2, 1, 64], 0, 0.1, 'float32', seed + 3);
        const f = (p: tf.Tensor, s: tf.Tensor, t: tf.Tensor, q: tf.Tensor) => {
          const m = tf.add(tf.mul(p, tf.add(s, 1)), t);
          return tf.sum(tf.mul(tf.add(p, tf.mul(q, tf.div(m, tf.add(tf.square(m), 1)))), 0.5));
        };
        const { stock, one, two } = three(() => tf.grads(f)([x, sc, sh, g]));
        stock.forEach((t, k) => { sameBig(one[k]!, t); sameBig(two[k]!, t); });
        tf.dispose([x, sc, sh, g, ...stock, ...one, ...two]);
      }),
      { numRuns: 12 },
    );
  });

  it('no leaks at large sizes: tfjs tensors and binding handles stay level, split on', () => {
    const a = tf.randomNormal([4, 1104, 64]);
    const r = tf.randomNormal([4, 1, 64]);
    const step = () => {
      const [g] = tf.grads((p: tf.Tensor) => tf.sum(tf.mul(tf.add(tf.mul(p, r), 1), tf.sub(p, 2))))([a]);
      g!.dispose();
    };
    process.env.VREPA_TF_BINARY_SPLIT = '16384';
    expectLevel(step, 20);
    tf.dispose([a, r]);
  });
});

describe.skipIf(!patch33)('tfjs-node mulAdd: (p · q) + r in one pass (binding patch 33)', () => {
  const special4 = [...special, NaN];
  it('bit-identical to tf.add(tf.mul(p, q), r) under NumPy broadcasts, one thread and two, with denormals, ±0, ±Inf, NaN', () => {
    fc.assert(
      fc.property(
        fc.tuple(fc.integer({ min: 1, max: 4 }), fc.integer({ min: 1, max: 700 }), fc.constantFrom(1, 5, 16, 64)),
        fc.array(fc.constantFrom('full', 'row', 'col', 'last', 'one'), { minLength: 3, maxLength: 3 }),
        fc.array(fc.oneof(fc.float(), fc.constantFrom(...special4)), { minLength: 256, maxLength: 256 }),
        fc.constantFrom('0', '16384'),
        ([B, N, D], forms, vals, split) => {
          const shapeOf = (f: string) => ({ full: [B, N, D], row: [B, 1, D], col: [B, N, 1], last: [D], one: [] as number[] })[f]!;
          const make = (sh: number[], off: number) => tf.tensor(Float32Array.from({ length: tf.util.sizeFromShape(sh) }, (_, k) => vals[(off + k * 5 + (k >> 7)) % 256]!), sh, 'float32');
          const [p, q, r] = forms.map((f, k) => make(shapeOf(f), k * 83));
          process.env.VREPA_TF_SMALL_BINARY_MAX = String(1 << 26);
          process.env.VREPA_TF_BINARY_SPLIT = split;
          process.env.VREPA_TF_MUL_ADD = '1';
          const fused = mulAdd(p!, q!, r!);
          process.env.VREPA_TF_SMALL_BINARY = '0';
          const stock = tf.add(tf.mul(p!, q!), r!);
          delete process.env.VREPA_TF_SMALL_BINARY;
          expect(fused).toBeDefined();
          sameBig(fused!, stock);
          tf.dispose([p!, q!, r!, fused!, stock]);
        },
      ),
      { numRuns: 150 },
    );
  });

  it('modulate and gatedResidual: values and gradients bit-identical with and without mulAdd (toy sizes)', () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 4 }), fc.integer({ min: 1, max: 600 }), fc.nat(1000), (B, N, seed) => {
        const x = tf.randomNormal([B, N, 64], 0, 1, 'float32', seed);
        const sc = tf.randomNormal([B, 1, 64], 0, 0.5, 'float32', seed + 1);
        const sh = tf.randomNormal([B, 1, 64], 0, 0.5, 'float32', seed + 2);
        const gate = tf.randomNormal([B, 1, 64], 0, 0.5, 'float32', seed + 3);
        const a = tf.randomNormal([B, N, 64], 0, 1, 'float32', seed + 4);
        const f = (x0: tf.Tensor, s0: tf.Tensor, t0: tf.Tensor, g0: tf.Tensor, a0: tf.Tensor) => tf.sum(tf.square(gatedResidual(modulate(x0, s0, t0), g0, a0)));
        const run = () => {
          const { value, grads } = tf.valueAndGrads(f)([x, sc, sh, gate, a]);
          return [value, ...grads];
        };
        delete process.env.VREPA_TF_MUL_ADD; // off by default
        const off = run();
        process.env.VREPA_TF_MUL_ADD = '1';
        const on = run();
        const counts = profileOps(() => tf.dispose(modulate(x, sc, sh))).binding.filter((c) => c.name.startsWith('native') || c.name.startsWith('TF '));
        expect(counts.map((c) => c.name)).toContain('native MulAdd');
        off.forEach((t, k) => sameBig(on[k]!, t));
        tf.dispose([x, sc, sh, gate, a, ...off, ...on]);
      }),
      { numRuns: 15 },
    );
  });

  it('mulAdd: undefined where it does not apply; no leaks', () => {
    const i = tf.tensor1d([1, 2], 'int32');
    const x = tf.randomNormal([4, 300, 64]);
    const r = tf.randomNormal([4, 1, 64]);
    expect(mulAdd(x, r, r)).toBeUndefined(); // off by default
    process.env.VREPA_TF_MUL_ADD = '1';
    expect(mulAdd(i, i, i)).toBeUndefined();
    expect(mulAdd(x, tf.randomNormal([3]), r)).toBeUndefined();
    process.env.VREPA_TF_MUL_ADD = '0';
    expect(mulAdd(x, r, r)).toBeUndefined();
    process.env.VREPA_TF_MUL_ADD = '1';
    const step = () => {
      const [g] = tf.grads((p: tf.Tensor) => tf.sum(gatedResidual(modulate(p, r, r), r, p)))([x]);
      g!.dispose();
    };
    expectLevel(step, 20);
    tf.dispose([i, x, r]);
  });
});

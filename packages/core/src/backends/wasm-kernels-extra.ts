/**
 * More kernel fixes for the tfjs wasm backend (issue 3 follow-ups), registered next to ./wasm-kernels.ts
 * when the wasm backend initialises:
 *
 * - `ClipByValue`: the stock kernel asks XNNPACK for a clamp operator, and XNNPACK refuses one whose bounds
 *   are equal in float32 (tfjs-core only short-cuts bounds equal as JS numbers, e.g. 0.1 and 0.1 + 1e-9 reach
 *   the kernel). The stock kernel then returns its uninitialised output, silently, and does so again on
 *   every later call with those bounds. Core's kernel fills such outputs with the bound (NaN stays NaN, as
 *   on the cpu backend). On int32 the stock kernel clamps the raw bits as floats (clip(-5, -1, 4) gave
 *   -1082130432); core clamps int32 itself, as the cpu backend does.
 * - `Sum` / `Mean` (float32): the stock kernels accumulate each output sequentially in float32, about 1e-5 to
 *   1e-4 relative error over 10⁶–10⁷ entries. Reductions of at least `ACCURATE_REDUCE_FROM` entries per
 *   output are made accurate (≤ 1e-7·Σ|x| measured); shorter ones keep the stock kernel,
 *   bit for bit. Long rows are summed in two stages: the stock kernel sums blocks of 64–256 consecutive
 *   entries (a block length dividing the row; full speed), and the block sums are added in float64. Rows
 *   with no such block length are accumulated in float64 entry by entry (~0.7× stock speed).
 * - `Sign` (float32): the stock kernel runs ~45 M elements/s; core's works on the float bits (~3× faster):
 *   sign(±0) = 0, sign(NaN) = NaN (as TensorFlow and PyTorch; the stock wasm and cpu kernels give 0),
 *   subnormals give ±1 (as cpu; stock wasm gives 0).
 */
import * as tf from '@tensorflow/tfjs';
import { alloc, heapF32, heapI32, release, reshapeInfo, runWasm, sizeOf, wordOffset, type KernelArgs, type KernelFn, type WasmBackend } from './wasm-util.js';

/** Kernel names registered or replaced by this file on the wasm backend. */
export const WASM_EXTRA_KERNEL_FIXES = ['ClipByValue', 'Sum', 'Mean', 'Sign'] as const;
export type WasmExtraKernelFix = (typeof WASM_EXTRA_KERNEL_FIXES)[number];

/** Reductions over at least this many entries per output are made accurate; shorter ones are stock. */
export const ACCURATE_REDUCE_FROM = 1024;

/** The stock kernels replaced here (kept apart from wasm-util's map, which ./wasm-kernels.ts swaps). */
const stockExtra = new Map<string, tf.KernelConfig>();

function stock(name: WasmExtraKernelFix, args: KernelArgs): tf.TensorInfo {
  const k = stockExtra.get(name) ?? tf.getKernel(name, 'wasm');
  if (!k) throw new Error(`wasm kernel '${name}' is not registered`);
  const out = (k.kernelFunc as unknown as KernelFn)(args);
  return Array.isArray(out) ? out[0]! : out;
}

// ---------------------------------------------------------------------------------------------------------
// ClipByValue

function clipByValueKernel(args: KernelArgs): tf.TensorInfo {
  const backend = args.backend as WasmBackend;
  const x = args.inputs.x as tf.TensorInfo;
  const { clipValueMin: lo, clipValueMax: hi } = args.attrs as { clipValueMin: number; clipValueMax: number };
  const n = sizeOf(x.shape);
  if (x.dtype === 'int32') {
    const out = alloc(backend, x.shape, 'int32');
    const h = heapI32(backend);
    const xo = wordOffset(backend, x);
    const oo = wordOffset(backend, out);
    // Same rule as the cpu kernel; the Int32Array store truncates a fractional bound.
    for (let i = 0; i < n; i++) {
      const v = h[xo + i]!;
      h[oo + i] = v > hi ? hi : v < lo ? lo : v;
    }
    return out;
  }
  if (x.dtype !== 'float32' || !(Math.fround(lo) >= Math.fround(hi))) return stock('ClipByValue', args);
  // Bounds equal in float32 (XNNPACK rejects the clamp): the cpu kernel's rule, so every non-NaN entry
  // becomes the bound (its sign of zero from the side it came from) and NaN stays NaN.
  const out = alloc(backend, x.shape, 'float32');
  const h = heapF32(backend);
  const xo = wordOffset(backend, x);
  const oo = wordOffset(backend, out);
  const c = Math.fround(lo);
  if (c !== 0) {
    // Numerically every non-NaN result is c; no data-dependent branch (random data mispredicts).
    for (let i = 0; i < n; i++) {
      const v = h[xo + i]!;
      h[oo + i] = v === v ? c : v;
    }
  } else {
    // A zero bound: the sign of each zero follows the cpu rule.
    for (let i = 0; i < n; i++) {
      const v = h[xo + i]!;
      h[oo + i] = v > hi ? hi : v < lo ? lo : v;
    }
  }
  return out;
}

// ---------------------------------------------------------------------------------------------------------
// Sum / Mean

/** Float64 sums of `x` viewed as `[pre, red, post]` over the middle axis, written to `out` `[pre, post]`. */
function sumMiddle(backend: WasmBackend, x: tf.TensorInfo, out: tf.TensorInfo, pre: number, red: number, post: number, scale: number): void {
  const h = heapF32(backend);
  const xo = wordOffset(backend, x);
  const oo = wordOffset(backend, out);
  if (post === 1) {
    for (let p = 0; p < pre; p++) {
      const b = xo + p * red;
      const e = b + red;
      let s0 = 0;
      let s1 = 0;
      let i = b;
      for (; i + 1 < e; i += 2) {
        s0 += h[i]!;
        s1 += h[i + 1]!;
      }
      if (i < e) s0 += h[i]!;
      h[oo + p] = (s0 + s1) * scale;
    }
    return;
  }
  const acc = new Float64Array(post);
  for (let p = 0; p < pre; p++) {
    acc.fill(0);
    for (let r = 0; r < red; r++) {
      const b = xo + (p * red + r) * post;
      for (let j = 0; j < post; j++) acc[j] += h[b + j]!;
    }
    const o = oo + p * post;
    for (let j = 0; j < post; j++) h[o + j] = acc[j]! * scale;
  }
}

/** A block length in [64, 256] dividing `red` (two-stage reduction), or 0 when there is none. */
function blockFor(red: number): number {
  for (let b = 256; b >= 64; b--) if (red % b === 0) return b;
  return 0;
}

function reduceKernel(name: 'Sum' | 'Mean', args: KernelArgs): tf.TensorInfo {
  const backend = args.backend as WasmBackend;
  const x = args.inputs.x as tf.TensorInfo;
  const { axis, keepDims } = args.attrs as { axis: number | number[]; keepDims: boolean };
  if (x.dtype !== 'float32') return stock(name, args);
  const rank = x.shape.length;
  const axes = tf.util.parseAxisParam(axis, x.shape).sort((a, b) => a - b);
  const red = sizeOf(axes.map((a) => x.shape[a]!));
  if (red < ACCURATE_REDUCE_FROM || sizeOf(x.shape) === 0) return stock(name, args);
  const outShape = x.shape.filter((_, d) => !axes.includes(d));
  const finalShape = keepDims ? x.shape.map((s, d) => (axes.includes(d) ? 1 : s)) : outShape;
  const scale = name === 'Mean' ? 1 / red : 1;
  const contiguous = axes.every((a, i) => i === 0 || a === axes[i - 1]! + 1);
  let src = x;
  let pre: number;
  let post: number;
  const trailing = sizeOf(x.shape.slice(axes[axes.length - 1]! + 1));
  if (contiguous && (trailing === 1 || !blockFor(red))) {
    pre = sizeOf(x.shape.slice(0, axes[0]));
    post = trailing;
  } else {
    // Reduced axes last, as the stock kernel does (a transpose, then the two fast stages beat accumulating
    // columns in JS); then one row per output.
    const perm = [...Array(rank).keys()].filter((d) => !axes.includes(d)).concat(axes);
    src = runWasm(backend, 'Transpose', { x }, { perm });
    pre = sizeOf(outShape);
    post = 1;
  }
  try {
    const B = post === 1 ? blockFor(red) : 0;
    if (B) {
      // Stage 1, the stock kernel at full speed: sums of blocks of B consecutive entries (float32, short).
      const view = reshapeInfo(backend, src, [(pre * red) / B, B]);
      const partial = stock('Sum', { inputs: { x: view }, backend, attrs: { axis: [1], keepDims: false } });
      release(backend, view);
      // Stage 2: each output's red / B block sums, in float64.
      const out = alloc(backend, finalShape, 'float32');
      sumMiddle(backend, partial, out, pre, red / B, 1, scale);
      release(backend, partial);
      return out;
    }
    const out = alloc(backend, finalShape, 'float32');
    sumMiddle(backend, src, out, pre, red, post, scale);
    return out;
  } finally {
    if (src !== x) release(backend, src);
  }
}

// ---------------------------------------------------------------------------------------------------------
// Sign

function signKernel(args: KernelArgs): tf.TensorInfo {
  const backend = args.backend as WasmBackend;
  const x = args.inputs.x as tf.TensorInfo;
  if (x.dtype !== 'float32') return stock('Sign', args);
  const n = sizeOf(x.shape);
  const out = alloc(backend, x.shape, 'float32');
  const h = heapI32(backend);
  const xo = wordOffset(backend, x);
  const oo = wordOffset(backend, out);
  for (let i = 0; i < n; i++) {
    const b = h[xo + i]!;
    const a = b & 0x7fffffff;
    // ±0 → +0; NaN (exponent all ones, mantissa ≠ 0) → itself; else ±1.0 (0x3f800000) with x's sign bit.
    h[oo + i] = a === 0 ? 0 : a > 0x7f800000 ? b : (b & -0x80000000) | 0x3f800000;
  }
  return out;
}

// ---------------------------------------------------------------------------------------------------------
// registration

const KERNELS: Record<WasmExtraKernelFix, KernelFn> = {
  ClipByValue: clipByValueKernel as KernelFn,
  Sum: ((args: KernelArgs) => reduceKernel('Sum', args)) as KernelFn,
  Mean: ((args: KernelArgs) => reduceKernel('Mean', args)) as KernelFn,
  Sign: signKernel as KernelFn,
};

let installed = false;

function register(name: WasmExtraKernelFix): void {
  tf.registerKernel({ kernelName: name, backendName: 'wasm', kernelFunc: KERNELS[name] as unknown as tf.KernelFunc, setupFunc: stockExtra.get(name)?.setupFunc });
}

/** Register this file's wasm kernels (idempotent; initBackend calls it with installWasmKernels). */
export function installWasmExtraKernels(): void {
  if (installed) return;
  for (const name of WASM_EXTRA_KERNEL_FIXES) {
    const k = tf.getKernel(name, 'wasm');
    if (k) {
      stockExtra.set(name, k);
      tf.unregisterKernel(name, 'wasm');
    }
    register(name);
  }
  installed = true;
}

/** Run `fn` with the stock tfjs wasm kernels in place of this file's (tests and benchmarks). */
export async function withStockWasmExtraKernels<T>(fn: () => T | Promise<T>): Promise<T> {
  if (!installed) return fn();
  for (const [name, k] of stockExtra) {
    tf.unregisterKernel(name, 'wasm');
    tf.registerKernel(k);
  }
  try {
    return await fn();
  } finally {
    for (const name of stockExtra.keys()) {
      tf.unregisterKernel(name, 'wasm');
      register(name as WasmExtraKernelFix);
    }
  }
}

/**
 * Per-op overhead of the native `tensorflow` backend, third wave (issue 15), on core's binding patch 32
 * (`native-patches/32-fast-exec.patch`). Both parts are used only when the binding has them and are read at
 * every call, so that a benchmark can compare both settings in one process:
 *
 * - **executeOpIo** (`VREPA_TF_FAST_EXEC=0` turns it off): tfjs-node's `executeSingleOutput` /
 *   `executeMultipleOutputs`, which every tfjs-node kernel calls, pass the input ids and receive each
 *   output's id, dtype and shape through one shared Int32Array instead of a JS array in and one JS object
 *   per output out. The same eager op with the same attributes runs: the same values by construction.
 * - **smallBinary** (`VREPA_TF_SMALL_BINARY=0` turns it off): float32 `Add`, `Sub`, `Multiply` and `RealDiv`
 *   with up to 65,536 output elements, any NumPy broadcast (a scalar made from a JS number is passed as a
 *   number, without creating its TensorFlow tensor), are computed in the binding
 *   without an eager op: one IEEE float32 operation per element as TensorFlow's kernels do, denormals
 *   flushed as they flush them (bit-identical to the stock kernels in native-fast.test.ts).
 *
 * Fourth wave, binding patch 33 (`native-patches/33-binary-threads.patch`; feature-detected by `binaryInfo`):
 *
 * - **smallBinary for larger outputs**: the binding takes up to 2^26 elements; core sends it outputs up to
 *   BINARY_MAX_DEFAULT (2^21: the toy reproduction's [4, 270, 64] AdaLN rows, [4, 294, 256] MLP activations
 *   and [4, 4, 294, 294] attention scores) — `VREPA_TF_SMALL_BINARY_MAX` overrides (65,536: the third wave's
 *   limit). One thread: the calling one. Only on machines with ≤ 2 cores (where it was measured); with more,
 *   TensorFlow's kernels use them all for large ops, so the default stays at 65,536 there.
 * - **a two-thread split** (`VREPA_TF_BINARY_SPLIT`: outputs of at least that many elements, ≥ 16,384, are
 *   cut in two halves, the second on one persistent worker thread; default 0, off): it won in an idle
 *   microbenchmark of 282k-element ops but lost in the toy step and under load on this 2-core machine
 *   (TensorFlow's own threads and other jobs compete with the worker; see @vrepa/trainer's README, fourth wave).
 * - **mulAdd** (opt-in, `VREPA_TF_MUL_ADD=1`): `(p · q) + r` in one pass for core's `modulate` and
 *   `gatedResidual` forwards — the product rounded to float32, then the sum, as Mul then Add: the same bits.
 *   Off by default: no measurable gain in the toy step (±3 %, two runs; it saves ~20–25 µs on each of a few
 *   dozen AdaLN forwards per step) and mixed in isolation (bench:elementwise, modulate at the toy size: 54 vs
 *   47 CPU µs for the two smallBinary passes in one run, 28–32 vs 53 in two later ones).
 */
import * as tf from '@tensorflow/tfjs';

interface FastBinding {
  TF_FLOAT: number;
  setIoBuffer?(io: Int32Array): void;
  executeOpIo?(name: string, attrs: unknown[], numInputs: number, numOutputs: number): number;
  smallBinary?(op: number, a: number, b: number, scalar: number, splitMin?: number): number;
  /** Patch 33: the largest output (elements) the binding's smallBinary takes; absent: SMALL_BINARY_MAX. */
  binaryInfo?(): number;
  /** Patch 33: (p · q) + r for float32 tensors (NumPy broadcasting); -1 when it does not apply. */
  mulAdd?(p: number, q: number, r: number, splitMin: number): number;
  createTensor(shape: number[], dtype: number, values: unknown): number;
}

interface TensorData {
  id: number;
  values: ArrayLike<number> | null;
  shape: number[];
  dtype: tf.DataType;
}

interface NodeBackend {
  binding: FastBinding;
  tensorMap: { get(dataId: unknown): TensorData };
  getInputTensorIds(tensors: tf.TensorInfo[]): number[];
  createOutputTensor(metadata: { id: number; shape: number[]; dtype: number }): tf.Tensor;
  executeSingleOutput(name: string, attrs: unknown[], inputs: tf.TensorInfo[]): tf.Tensor;
  executeMultipleOutputs(name: string, attrs: unknown[], inputs: tf.TensorInfo[], numOutputs: number): tf.Tensor[];
}

/** Largest element count patch 32's smallBinary takes (its kSmallBinaryMax); patch 33 raises the binding's to 2^26. */
export const SMALL_BINARY_MAX = 1 << 16;
/**
 * Fourth wave (patch 33): the largest output smallBinary computes by default when the binding takes more
 * than SMALL_BINARY_MAX (`VREPA_TF_SMALL_BINARY_MAX` overrides, read per call for outputs above
 * SMALL_BINARY_MAX; the binding's own limit still applies).
 */
export const BINARY_MAX_DEFAULT = 1 << 21;
/**
 * Cores TensorFlow's intra-op pool would use (Node ≥ 20.16: `os.availableParallelism`); unknown: Infinity.
 * BINARY_MAX_DEFAULT applies only on ≤ 2 cores, where it was measured: on more cores TensorFlow splits a
 * large elementwise op over all of them while smallBinary runs on one, so there the third wave's limit stays.
 */
function cores(): number {
  const get = typeof process !== 'undefined' ? (process as { getBuiltinModule?: (m: string) => unknown }).getBuiltinModule : undefined;
  const os = get?.('os') as { availableParallelism?: () => number } | undefined;
  return os?.availableParallelism?.() ?? Infinity;
}
/** The default limit for a machine with `n` cores (this one's by default). */
export const defaultBinaryMax = (n: number = cores()): number => (n <= 2 ? BINARY_MAX_DEFAULT : SMALL_BINARY_MAX);
/**
 * Fourth wave (patch 33): outputs of at least this many elements are split over two threads (the caller and
 * one persistent worker); `VREPA_TF_BINARY_SPLIT` overrides (0: never), read per call for outputs above
 * 16,384 elements (smaller ones are never split).
 */
export const BINARY_SPLIT_DEFAULT = 0;
const SPLIT_FLOOR = 1 << 14;
const mulAddOff = () => env('VREPA_TF_MUL_ADD') !== '1';

const env = (k: string) => (typeof process !== 'undefined' ? process.env?.[k] : undefined);
const fastExecOff = () => env('VREPA_TF_FAST_EXEC') === '0';
const smallBinaryOff = () => env('VREPA_TF_SMALL_BINARY') === '0';

/** A numeric toggle read from the environment: undefined when unset or empty, a clear error when not a number. */
function envNumber(k: string): number | undefined {
  const v = env(k);
  if (v == null || v === '') return undefined;
  const n = Number(v);
  if (!Number.isFinite(n)) throw new Error(`${k} must be a number of elements, got '${v}'`);
  return n;
}

/** The limit in effect for an output above SMALL_BINARY_MAX: the env's or the default (by core count), capped by the binding's. */
function binaryMax(binding: FastBinding): number {
  if (typeof binding.binaryInfo !== 'function') return SMALL_BINARY_MAX;
  const want = envNumber('VREPA_TF_SMALL_BINARY_MAX') ?? defaultBinaryMax();
  return Math.min(want, binding.binaryInfo());
}
function binarySplit(): number {
  const n = envNumber('VREPA_TF_BINARY_SPLIT') ?? BINARY_SPLIT_DEFAULT;
  return n <= 0 ? 0 : Math.max(n, SPLIT_FLOOR);
}

let installedOn: unknown;
let kernelsWrapped = false;
// 16 Ki int32 (64 KiB): [id, dtype, rank, ...dims] per output; its own ArrayBuffer (never on the V8 heap)
const io = new Int32Array(new ArrayBuffer(1 << 16));

/** Whether the backend's binding has patch 32's entry points. */
export function hasFastExec(backend: unknown): boolean {
  const b = (backend as Partial<NodeBackend> | undefined)?.binding;
  return typeof b?.executeOpIo === 'function' && typeof b.setIoBuffer === 'function' && typeof b.smallBinary === 'function';
}

/** Install both parts on the current `tensorflow` backend (once per backend instance); no-op elsewhere. */
export function installNativeFastPaths(): void {
  if (tf.getBackend() !== 'tensorflow') return;
  const backend = tf.backend() as unknown as NodeBackend;
  if (installedOn === backend || !hasFastExec(backend)) return;
  installedOn = backend;
  backend.binding.setIoBuffer!(io);

  const stockSingle = backend.executeSingleOutput;
  const stockMultiple = backend.executeMultipleOutputs;
  const outputs = (self: NodeBackend, n: number): tf.Tensor[] => {
    const out: tf.Tensor[] = [];
    let pos = 0;
    for (let i = 0; i < n; i++) {
      const id = io[pos]!;
      const dtype = io[pos + 1]!;
      const rank = io[pos + 2]!;
      const shape: number[] = [];
      for (let d = 0; d < rank; d++) shape.push(io[pos + 3 + d]!);
      pos += 3 + rank;
      out.push(self.createOutputTensor({ id, shape, dtype }));
    }
    return out;
  };
  const run = (self: NodeBackend, name: string, attrs: unknown[], inputs: tf.TensorInfo[], numOutputs: number) => {
    const ids = self.getInputTensorIds(inputs);
    for (let i = 0; i < ids.length; i++) io[i] = ids[i]!;
    const n = self.binding.executeOpIo!(name, attrs, ids.length, numOutputs);
    return outputs(self, n);
  };
  backend.executeSingleOutput = function (this: NodeBackend, name, attrs, inputs) {
    if (fastExecOff() || typeof this.binding.executeOpIo !== 'function') return stockSingle.call(this, name, attrs, inputs);
    return run(this, name, attrs, inputs, 1)[0]!;
  };
  backend.executeMultipleOutputs = function (this: NodeBackend, name, attrs, inputs, numOutputs) {
    if (fastExecOff() || typeof this.binding.executeOpIo !== 'function') return stockMultiple.call(this, name, attrs, inputs, numOutputs);
    return run(this, name, attrs, inputs, numOutputs);
  };

  // ---- small float32 binary ops in the binding
  if (kernelsWrapped) return;
  kernelsWrapped = true;
  tf.registerKernel({ kernelName: MUL_ADD_KERNEL, backendName: 'tensorflow', kernelFunc: mulAddKernel });
  const OPS = { Add: 0, Sub: 1, Multiply: 2, RealDiv: 3 } as const;
  for (const [kernel, code] of Object.entries(OPS)) {
    const k = tf.getKernel(kernel, 'tensorflow');
    if (!k) continue;
    tf.unregisterKernel(kernel, 'tensorflow');
    tf.registerKernel({ ...k, kernelFunc: (args) => smallBinary(code, args) ?? (k.kernelFunc(args) as tf.TensorInfo) });
  }
}

/**
 * An operand for smallBinary: its tensor id, or -1 and its value when it is one float32 value still held in
 * JS (a scalar made from a JS number, not yet a TensorFlow tensor).
 */
function operand(backend: NodeBackend, t: tf.TensorInfo, size: number): [number, number] {
  if (size === 1) {
    const d = backend.tensorMap.get(t.dataId);
    if (d.values != null) return [-1, d.values[0]!];
  }
  return [backend.getInputTensorIds([t])[0]!, 0];
}

function smallBinary(code: number, args: Parameters<tf.KernelFunc>[0]): tf.TensorInfo | undefined {
  if (smallBinaryOff()) return undefined;
  const backend = args.backend as unknown as NodeBackend;
  const binding = backend.binding;
  if (typeof binding.smallBinary !== 'function') return undefined;
  const { a, b } = args.inputs as { a: tf.TensorInfo; b: tf.TensorInfo };
  if (a.dtype !== 'float32' || b.dtype !== 'float32') return undefined;
  const na = tf.util.sizeFromShape(a.shape);
  const nb = tf.util.sizeFromShape(b.shape);
  if (na === 0 || nb === 0 || a.shape.length > 8 || b.shape.length > 8) return undefined;
  let shape: number[];
  try {
    shape = tf.util.arraysEqual(a.shape, b.shape) ? a.shape : tf.backend_util.assertAndGetBroadcastShape(a.shape, b.shape);
  } catch {
    return undefined;
  }
  const count = tf.util.sizeFromShape(shape);
  if (count > SMALL_BINARY_MAX && count > binaryMax(binding)) return undefined;
  // At most one operand as a JS value, and only one whose shape the other operand (a tensor, which gives
  // the binding the output's rank) covers; otherwise it becomes a TensorFlow tensor as the stock kernel
  // makes it.
  const [ia, sa] = tf.util.arraysEqual(shape, b.shape) ? operand(backend, a, na) : [backend.getInputTensorIds([a])[0]!, 0];
  const [ib, sb] = ia >= 0 && tf.util.arraysEqual(shape, a.shape) ? operand(backend, b, nb) : [backend.getInputTensorIds([b])[0]!, 0];
  const id =
    count >= SPLIT_FLOOR && typeof binding.binaryInfo === 'function'
      ? binding.smallBinary(code, ia, ib, ia < 0 ? sa : sb, binarySplit())
      : binding.smallBinary(code, ia, ib, ia < 0 ? sa : sb);
  if (id < 0) return undefined;
  return backend.createOutputTensor({ id, shape: [...shape], dtype: binding.TF_FLOAT });
}

// ---- fourth wave: (p · q) + r in one pass (patch 33's mulAdd), for core's AdaLN chains

const MUL_ADD_KERNEL = 'VrepaMulAdd';

function mulAddKernel(args: Parameters<tf.KernelFunc>[0]): tf.TensorInfo {
  const backend = args.backend as unknown as NodeBackend;
  const { p, q, r } = args.inputs as { p: tf.TensorInfo; q: tf.TensorInfo; r: tf.TensorInfo };
  const [ip, iq, ir] = backend.getInputTensorIds([p, q, r]);
  const shape = tf.backend_util.assertAndGetBroadcastShape(tf.backend_util.assertAndGetBroadcastShape(p.shape, q.shape), r.shape);
  const id = backend.binding.mulAdd!(ip!, iq!, ir!, tf.util.sizeFromShape(shape) >= SPLIT_FLOOR ? binarySplit() : 0);
  if (id < 0) {
    // not expected after mulAdd()'s checks; the two ops then, as the stock chain computes them
    return tf.tidy(() => tf.add(tf.mul(p as tf.Tensor, q as tf.Tensor), r as tf.Tensor)) as tf.TensorInfo;
  }
  return backend.createOutputTensor({ id, shape, dtype: backend.binding.TF_FLOAT });
}

/**
 * `(p · q) + r` as one native op on the tfjs-node backend with binding patch 33 — the product rounded to
 * float32 and then the sum, each IEEE operation as Mul then Add compute them (no FMA), denormals flushed:
 * bit-identical to `tf.add(tf.mul(p, q), r)` (and to `tf.add(r, tf.mul(p, q))`: IEEE addition commutes; only
 * the sign/payload of a NaN from two NaN operands may differ) — or undefined where it does not apply (another
 * backend or binding, not float32, shapes that do not broadcast, more than the smallBinary limit's elements,
 * `VREPA_TF_MUL_ADD` other than '1' — off by default —, or `VREPA_TF_SMALL_BINARY=0`; read per call); the
 * caller then runs the two ops. No gradient of its own: core's custom ops (modulate, gatedResidual) write theirs.
 */
export function mulAdd(p: tf.Tensor, q: tf.Tensor, r: tf.Tensor): tf.Tensor | undefined {
  if (mulAddOff() || smallBinaryOff()) return undefined;
  if (installedOn === undefined || tf.getBackend() !== 'tensorflow') return undefined;
  const backend = tf.backend() as unknown as NodeBackend;
  if (backend !== installedOn || typeof backend.binding.mulAdd !== 'function') return undefined;
  if (p.dtype !== 'float32' || q.dtype !== 'float32' || r.dtype !== 'float32') return undefined;
  if (p.rank > 8 || q.rank > 8 || r.rank > 8) return undefined;
  let shape: number[];
  try {
    shape = tf.backend_util.assertAndGetBroadcastShape(tf.backend_util.assertAndGetBroadcastShape(p.shape, q.shape), r.shape);
  } catch {
    return undefined;
  }
  const count = tf.util.sizeFromShape(shape);
  if (count === 0 || (count > SMALL_BINARY_MAX && count > binaryMax(backend.binding))) return undefined;
  return tf.engine().runKernel(MUL_ADD_KERNEL, { p, q, r } as unknown as tf.NamedTensorMap, {}) as tf.Tensor;
}

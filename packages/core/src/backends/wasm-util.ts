/**
 * Low-level helpers for kernels written against the tfjs wasm backend: tensor infos on the wasm heap,
 * calls to other wasm kernels (the stock ones, captured before core overrides them), heap copies.
 * Everything here works with TensorInfo (no engine Tensors), so nothing is recorded on the gradient tape
 * and the engine's refcounts stay untouched: every TensorInfo a helper returns is owned by the caller and
 * must be released with `release` (or returned from a kernel, which hands it to the engine).
 */
import * as tf from '@tensorflow/tfjs';

export type Dtype = 'float32' | 'int32' | 'bool' | 'complex64' | 'string';

/** The parts of tfjs-backend-wasm's BackendWasm the kernels use. */
export interface WasmBackend {
  wasm: {
    HEAPU8: Uint8Array;
    _malloc(bytes: number): number;
    _free(ptr: number): void;
    tfjs: { getThreadsCount(): number };
  };
  dataIdMap: {
    get(dataId: object): { id: number; memoryOffset: number; shape: number[]; dtype: Dtype; refCount: number };
    has(dataId: object): boolean;
  };
  makeOutput(shape: number[], dtype: Dtype, memoryOffset?: number): tf.TensorInfo;
  /** A view (no copy) of a tensor's data on the heap; invalid after the next allocation. */
  typedArrayFromHeap(t: tf.TensorInfo): Float32Array | Int32Array | Uint8Array;
  disposeData(dataId: object, force?: boolean): boolean;
  incRef(dataId: object): void;
  move(dataId: object, values: ArrayBufferView | null, shape: number[], dtype: Dtype, refCount: number): void;
}

export type KernelArgs = { inputs: Record<string, tf.TensorInfo | undefined>; backend: unknown; attrs?: Record<string, unknown> };
export type KernelFn = (args: KernelArgs) => tf.TensorInfo | tf.TensorInfo[];

/** Stock wasm kernel functions, captured before core registers its overrides. */
export const stockWasmKernels = new Map<string, tf.KernelConfig>();

/** The kernel function core must call for `name`: the stock one when core overrode it, else the registered one. */
export function wasmKernelFunc(name: string): KernelFn {
  const k = stockWasmKernels.get(name) ?? tf.getKernel(name, 'wasm');
  if (!k) throw new Error(`wasm kernel '${name}' is not registered`);
  return k.kernelFunc as unknown as KernelFn;
}

/** Run a wasm kernel by name on TensorInfos; returns its single output. */
export function runWasm(backend: WasmBackend, name: string, inputs: Record<string, tf.TensorInfo | undefined>, attrs: Record<string, unknown> = {}): tf.TensorInfo {
  const out = wasmKernelFunc(name)({ inputs, backend, attrs });
  return Array.isArray(out) ? out[0]! : out;
}

export function release(backend: WasmBackend, ...infos: Array<tf.TensorInfo | undefined>): void {
  for (const t of infos) if (t) backend.disposeData(t.dataId);
}

export function sizeOf(shape: readonly number[]): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}

/** A view of the whole heap as float32 (re-read after every allocation: the heap may have grown). */
export function heapF32(backend: WasmBackend): Float32Array {
  const buf = backend.wasm.HEAPU8.buffer;
  return new Float32Array(buf, 0, Math.floor(buf.byteLength / 4));
}
export function heapI32(backend: WasmBackend): Int32Array {
  const buf = backend.wasm.HEAPU8.buffer;
  return new Int32Array(buf, 0, Math.floor(buf.byteLength / 4));
}

/** Element offset (in 4-byte words) of a tensor's data on the heap. */
export function wordOffset(backend: WasmBackend, t: tf.TensorInfo): number {
  return backend.dataIdMap.get(t.dataId).memoryOffset / 4;
}

/** A new tensor of `shape` (4-byte dtype); zero-filled when asked. */
export function alloc(backend: WasmBackend, shape: number[], dtype: Dtype = 'float32', zero = false): tf.TensorInfo {
  const t = backend.makeOutput(shape, dtype);
  if (zero) {
    const o = wordOffset(backend, t);
    heapF32(backend).fill(0, o, o + sizeOf(shape));
  }
  return t;
}

/** A new tensor holding `count` words of `src` starting at word `start`. */
export function copyOut(backend: WasmBackend, src: tf.TensorInfo, start: number, count: number, shape: number[]): tf.TensorInfo {
  const t = backend.makeOutput(shape, src.dtype as Dtype);
  const heap = heapF32(backend);
  const s = wordOffset(backend, src) + start;
  heap.copyWithin(wordOffset(backend, t), s, s + count);
  return t;
}

/** A reshaped view (shares data; the caller releases it). */
export function reshapeInfo(backend: WasmBackend, x: tf.TensorInfo, shape: number[]): tf.TensorInfo {
  backend.incRef(x.dataId);
  return { dataId: x.dataId, shape, dtype: x.dtype };
}

/** `dst[dstStart + i] += src[srcStart + i]` for i < count (float32). */
export function addInto(backend: WasmBackend, dst: tf.TensorInfo, dstStart: number, src: tf.TensorInfo, srcStart: number, count: number): void {
  const heap = heapF32(backend);
  const d = wordOffset(backend, dst) + dstStart;
  const s = wordOffset(backend, src) + srcStart;
  for (let i = 0; i < count; i++) heap[d + i] += heap[s + i];
}

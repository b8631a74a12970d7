/**
 * The wasm heap guard. The wasm backend's memory is one linear heap capped at 4 GiB − 64 KiB; past it,
 * `malloc` returns 0 and tfjs writes the new tensor at address 0: the heap is corrupted silently and the
 * backend is dead from then on (../shared/notes/wasm-kernels.md §4). Core checks every allocation of the
 * backend instead:
 *
 * - before allocating at least `minCheckBytes`, the live tensor bytes plus the request must stay under the
 *   limit (default 3.75 GiB, `VREPA_WASM_HEAP_LIMIT` in bytes or with a MiB/GiB suffix), else a
 *   `WasmHeapError` names the tensor, the sizes and what to do — nothing has been written yet, the
 *   backend stays usable;
 * - a `malloc` that fails anyway (fragmentation) throws the same error instead of returning 0.
 */
import * as tf from '@tensorflow/tfjs';
import type { Dtype, WasmBackend } from './wasm-util.js';

/** The wasm32 heap maximum of tfjs-backend-wasm 4.22 (4 GiB − 64 KiB). */
export const WASM_HEAP_MAX_BYTES = 4_294_901_760;
export const DEFAULT_WASM_HEAP_LIMIT = 3.75 * 2 ** 30;

export class WasmHeapError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'WasmHeapError';
  }
}

/** Parse `4000000000`, `3500MiB`, `3.5GiB`, `3.5G`. */
export function parseByteSize(text: string): number {
  const m = /^\s*([0-9]*\.?[0-9]+)\s*(b|k|kb|kib|m|mb|mib|g|gb|gib)?\s*$/i.exec(text);
  if (!m) throw new Error(`VREPA_WASM_HEAP_LIMIT=${text} is not a size; expected bytes or a number with a MiB/GiB suffix (e.g. 3.5GiB)`);
  const unit = (m[2] ?? 'b').toLowerCase()[0];
  const mult = unit === 'g' ? 2 ** 30 : unit === 'm' ? 2 ** 20 : unit === 'k' ? 2 ** 10 : 1;
  return Math.floor(Number(m[1]) * mult);
}

let limitBytes = process.env.VREPA_WASM_HEAP_LIMIT ? parseByteSize(process.env.VREPA_WASM_HEAP_LIMIT) : DEFAULT_WASM_HEAP_LIMIT;
let minCheckBytes = 2 ** 20;
const guarded = new WeakSet<object>();

/** Set the guard's limit on live tensor bytes (clamped to the heap maximum); returns the previous one. */
export function setWasmHeapLimit(bytes: number): number {
  const prev = limitBytes;
  limitBytes = Math.min(Math.max(0, bytes), WASM_HEAP_MAX_BYTES);
  return prev;
}
export function wasmHeapLimit(): number {
  return limitBytes;
}

/** Bytes the wasm heap has grown to (it never shrinks), or undefined when wasm is not the active backend. */
export function wasmHeapBytes(): number | undefined {
  if (tf.getBackend() !== 'wasm') return undefined;
  return (tf.backend() as unknown as WasmBackend).wasm.HEAPU8.length;
}

const gib = (n: number) => `${(n / 2 ** 30).toFixed(2)} GiB`;
const mib = (n: number) => `${(n / 2 ** 20).toFixed(1)} MiB`;
const BYTES: Record<string, number> = { float32: 4, int32: 4, bool: 1, complex64: 8 };

/** Install the guard on a wasm backend instance (idempotent). */
export function installWasmHeapGuard(backend: WasmBackend): void {
  if (guarded.has(backend)) return;
  guarded.add(backend);
  const move = backend.move.bind(backend);
  backend.move = (dataId: object, values: ArrayBufferView | null, shape: number[], dtype: Dtype, refCount: number) => {
    const bytes = dtype === 'string' ? 0 : shape.reduce((a, b) => a * b, 1) * (BYTES[dtype] ?? 4);
    if (bytes >= minCheckBytes) {
      const live = tf.memory().numBytes;
      if (live + bytes > limitBytes) {
        throw new WasmHeapError(
          `wasm heap: a [${shape.join(',')}] ${dtype} tensor (${mib(bytes)}) would bring live tensors to ${gib(live + bytes)}, above the wasm backend's limit of ${gib(limitBytes)} (the heap cannot exceed 4 GiB); dispose tensors, process in smaller chunks, or use the tensorflow backend (\`vrepa backend install-native\`)`,
        );
      }
    }
    move(dataId, values, shape, dtype, refCount);
  };
  const wasm = backend.wasm;
  const malloc = wasm._malloc.bind(wasm);
  wasm._malloc = (n: number) => {
    const p = malloc(n);
    if (p === 0 && n > 0) {
      throw new WasmHeapError(
        `wasm heap: malloc of ${mib(n)} failed (heap ${gib(wasm.HEAPU8.length)} of at most ${gib(WASM_HEAP_MAX_BYTES)}, live tensors ${gib(tf.memory().numBytes)}); the heap is full or fragmented — dispose tensors, process in smaller chunks, or use the tensorflow backend`,
      );
    }
    return p;
  };
}

/** For tests: allocations at or above this size are checked against the limit (default 1 MiB). */
export function setWasmHeapCheckThreshold(bytes: number): number {
  const prev = minCheckBytes;
  minCheckBytes = bytes;
  return prev;
}

// The wasm heap guard: a clear error instead of a corrupted heap, and the backend keeps working.
import * as tf from '@tensorflow/tfjs';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { switchBackend } from '../backend.js';
import { WasmHeapError, installWasmHeapGuard, parseByteSize, setWasmHeapLimit, wasmHeapBytes, wasmHeapLimit, DEFAULT_WASM_HEAP_LIMIT } from './heap-guard.js';
import type { WasmBackend } from './wasm-util.js';

let saved = DEFAULT_WASM_HEAP_LIMIT;
beforeAll(async () => {
  await switchBackend('wasm');
  saved = wasmHeapLimit();
});
afterEach(() => {
  setWasmHeapLimit(saved);
});

describe('wasm heap guard', () => {
  it('refuses an allocation over the limit with a clear error, leaving existing tensors intact', async () => {
    const keep = tf.range(0, 1 << 18, 1, 'float32'); // 1 MiB of known values
    const live = tf.memory().numBytes;
    setWasmHeapLimit(live + 32 * 2 ** 20);
    let err: unknown;
    try {
      tf.tidy(() => tf.add(keep.reshape([1, -1]), tf.zeros([64, 1 << 18]))); // 64 MiB output
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(WasmHeapError);
    expect(String((err as Error).message)).toMatch(/\[64,262144\] float32 tensor \(64\.0 MiB\).*limit/);
    // Nothing was written: the old tensor reads back unchanged and new ops work.
    const v = keep.dataSync();
    expect(v[0]).toBe(0);
    expect(v[12345]).toBe(12345);
    expect(v[(1 << 18) - 1]).toBe((1 << 18) - 1);
    setWasmHeapLimit(saved);
    const s = tf.sum(tf.add(keep, 1));
    const exact = ((1 << 18) * ((1 << 18) + 1)) / 2;
    expect(Math.abs(s.dataSync()[0]! - exact) / exact).toBeLessThan(1e-4); // float32 summation
    tf.dispose([keep, s]);
    expect(wasmHeapBytes()).toBeGreaterThan(0);
  });

  it('turns a failed malloc into an error instead of a write at address 0', () => {
    const heap = new Uint8Array(64);
    const wasm = { HEAPU8: heap, _malloc: (_n: number) => 0, _free: () => {}, tfjs: { getThreadsCount: () => 1 } };
    const fake = {
      wasm,
      move(_d: object, _v: ArrayBufferView | null, shape: number[]) {
        const p = wasm._malloc(shape[0]! * 4);
        heap.fill(7, p, p + 4); // what tfjs would do with offset 0
      },
    } as unknown as WasmBackend;
    installWasmHeapGuard(fake);
    expect(() => fake.move({}, null, [16], 'float32', 1)).toThrow(WasmHeapError);
    expect(heap[0]).toBe(0);
  });

  it('parses VREPA_WASM_HEAP_LIMIT sizes', () => {
    expect(parseByteSize('1024')).toBe(1024);
    expect(parseByteSize('3.5GiB')).toBe(3.5 * 2 ** 30);
    expect(parseByteSize('512m')).toBe(512 * 2 ** 20);
    expect(() => parseByteSize('lots')).toThrow(/VREPA_WASM_HEAP_LIMIT=lots is not a size/);
  });
});

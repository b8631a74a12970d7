/**
 * Fixes for the native `tensorflow` backend (tfjs-node built against TensorFlow 2.21): `Round` on int32
 * returns zeros there (the one tfjs-core spec that fails on it, ../shared/notes/tfjs-node-offline.md);
 * rounding an integer is the identity, so int32 inputs get a copy and floats keep the stock kernel.
 */
import * as tf from '@tensorflow/tfjs';

let installed = false;

export function installNativeKernelFixes(): void {
  if (installed) return;
  const round = tf.getKernel('Round', 'tensorflow');
  const identity = tf.getKernel('Identity', 'tensorflow');
  if (!round || !identity) return;
  tf.unregisterKernel('Round', 'tensorflow');
  tf.registerKernel({
    ...round,
    kernelFunc: (args) => (args.inputs.x!.dtype === 'int32' ? identity.kernelFunc(args) : round.kernelFunc(args)),
  });
  installed = true;
}

/** The parts of tfjs-node's NodeJSKernelBackend the int32 handle cache uses. */
interface NodeBackendInternals {
  binding: { createTensor(shape: number[], dtype: number, values: Int32Array): number; deleteTensor(id: number): void; TF_INT32: number };
  tensorMap: { get(dataId: object): { shape: number[]; dtype: number; values: unknown; id: number } | undefined };
  getInputTensorIds(tensors: tf.Tensor[]): number[];
  vrepaInt32Cache?: { size(): number };
}

/** Largest int32 tensor (elements) whose handle is cached, and the most handles kept. */
export const INT32_CACHE_MAX_ELEMENTS = 8;
export const INT32_CACHE_MAX_ENTRIES = 4096;

/**
 * Per-op overhead on tfjs-node: its kernels pass shapes, axes, permutations, begins and sizes as small
 * int32 tensors made from JS values (Reshape, Sum, Mean, Transpose, Slice, SplitV, ConcatV2, ...: ~580
 * per tiny training step), each uploaded into a new TensorFlow handle (`createTensor`) and deleted after
 * the op. TensorFlow's eager handles are immutable, so one handle per distinct (shape, values) serves
 * them all: the first upload of a value is kept (up to INT32_CACHE_MAX_ENTRIES, never evicted) and the
 * later tensors with those values point at it; deleting a cached handle is a no-op. Only int32 tensors
 * of at most INT32_CACHE_MAX_ELEMENTS elements whose values still sit in JS are affected (core's native
 * AdamW only ever swaps float32 handles). VREPA_TF_INT32_CACHE=0 turns it off.
 */
export function installNativeInt32Cache(): boolean {
  if (typeof process !== 'undefined' && process.env?.VREPA_TF_INT32_CACHE === '0') return false;
  const backend = tf.findBackend('tensorflow') as unknown as NodeBackendInternals | null;
  if (!backend || typeof backend.getInputTensorIds !== 'function' || !backend.binding || !backend.tensorMap) return false;
  if (backend.vrepaInt32Cache) return true;
  const binding = backend.binding;
  const ids = new Map<string, number>();
  const cached = new Set<number>();
  const original = backend.getInputTensorIds.bind(backend);
  backend.getInputTensorIds = (tensors: tf.Tensor[]) => {
    for (const t of tensors) {
      if (t.dtype !== 'int32' || t.size > INT32_CACHE_MAX_ELEMENTS) continue;
      const info = backend.tensorMap.get(t.dataId);
      if (!info || info.values == null || info.dtype !== binding.TF_INT32 || !(info.values instanceof Int32Array)) continue;
      const key = `${info.shape.join(',')}:${info.values.join(',')}`;
      let id = ids.get(key);
      if (id === undefined) {
        if (ids.size >= INT32_CACHE_MAX_ENTRIES) continue;
        id = backend.binding.createTensor(info.shape, info.dtype, info.values);
        ids.set(key, id);
        cached.add(id);
      }
      info.id = id;
      info.values = null;
    }
    return original(tensors);
  };
  // the addon's methods are read-only: the backend gets an object that inherits them, with its own deleteTensor
  backend.binding = Object.create(binding, {
    deleteTensor: { value: (id: number) => (cached.has(id) ? undefined : binding.deleteTensor(id)) },
  });
  backend.vrepaInt32Cache = { size: () => ids.size };
  return true;
}

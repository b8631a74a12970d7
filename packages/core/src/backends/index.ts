export {
  installNative,
  nativeSmokeTest,
  findPackageDir,
  nativeBindingPath,
  installScriptHint,
  vrepaCacheDir,
  DEFAULT_TF_VERSION,
  type InstallNativeOptions,
  type InstallNativeResult,
  type NativeSmokeResult,
  readNativeBuildMarker,
  type NativeBuildMarker,
} from './native.js';
export { applyNativePatches, listNativePatches, nativePatchesDir, patchSetHash, parseUnifiedDiff, applyHunks, writeNewInode, type NativePatch } from './native-patches.js';
export {
  WasmHeapError,
  setWasmHeapLimit,
  wasmHeapLimit,
  wasmHeapBytes,
  parseByteSize,
  WASM_HEAP_MAX_BYTES,
  DEFAULT_WASM_HEAP_LIMIT,
} from './heap-guard.js';
export { WASM_KERNEL_FIXES, installWasmKernels, wasmKernelsInstalled, withStockWasmKernels, type WasmKernelFix } from './wasm-kernels.js';
export { WASM_EXTRA_KERNEL_FIXES, ACCURATE_REDUCE_FROM, installWasmExtraKernels, withStockWasmExtraKernels, type WasmExtraKernelFix } from './wasm-kernels-extra.js';
export { wasmThreadsCount, requestedWasmThreads, wasmBinaryDir } from './wasm-setup.js';
export {
  probeBackends,
  runBackendProbe,
  runInChild,
  nativeBindingBuilt,
  machineSummary,
  PROBED_BACKENDS,
  type BackendProbe,
  type ProbedBackend,
} from './probe.js';
export { traceGraph, compileFunction, traceDifference, graphFunctionsAvailable, graphRunOptions, GraphFunction, GraphFunctionError, type GraphTrace, type CompiledFunction, type CompileOptions } from './graph-function.js';

// The browser entry of @vrepa/core (package.json `browser` condition): everything that needs no Node
// built-in. Files, `.pth`, ffmpeg, PNG, the native backend, conformance on disk and CLI helpers stay in
// the Node entry (index.ts), which re-exports all of this too.
export * from './safetensors-bytes.js';
export * from './checkpoint-source.js';
// Same names as the Node file API; in the browser they throw, naming the bytes-based call to use.
export { openCheckpoint } from './checkpoint-browser.js';
export { SafetensorsFile, withSafetensors, writeSafetensors, writeSafetensorsStream, writePth } from './safetensors-file-browser.js';
export * from './shapes.js';
export * from './leaks.js';
export * from './module.js';
export * from './rng.js';
export * from './nn/index.js';
// the browser-safe half of the training machinery (optimisers, schedules, clipping; the progress bar)
export * from './train/optim.js';
export * from './train/progress.js';
export { WASM_KERNEL_FIXES, installWasmKernels, wasmKernelsInstalled, withStockWasmKernels, type WasmKernelFix } from './backends/wasm-kernels.js';
export { WASM_EXTRA_KERNEL_FIXES, ACCURATE_REDUCE_FROM, installWasmExtraKernels, withStockWasmExtraKernels, type WasmExtraKernelFix } from './backends/wasm-kernels-extra.js';

/**
 * Loading the tfjs wasm backend in Node: the binaries are located from the installed package (so built
 * ESM/CJS bundles and vitest find them alike), and, behind `VREPA_WASM_THREADS=n` (n ≥ 2), wasm threads
 * are enabled. tfjs turns threads off in Node (tfjs issue #3830); four patches make them work
 * (../shared/notes/wasm-kernels.md §3):
 *   1. the `WASM_HAS_MULTITHREAD_SUPPORT` flag is set to true;
 *   2. the pthread worker script, which tfjs hands out as a `blob:` URL Node's Worker cannot open, is written
 *      to a file, and `URL.createObjectURL` returns that path for it;
 *   3. in that script, the import of the main glue (also a Blob) is replaced by the package's glue file;
 *   4. `os.cpus()` reports 2·n cores while the backend initialises, since the C++ side caps threads at half
 *      the logical cores; `setThreadsCount(n)` asks for n.
 */
import fs from 'node:fs';
import { createRequire } from 'node:module';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import * as tf from '@tensorflow/tfjs';

function requireHere(): NodeJS.Require {
  let base: string;
  try {
    base = fileURLToPath(import.meta.url);
  } catch {
    base = path.join(process.cwd(), 'noop.js');
  }
  return createRequire(base);
}

/** The installed `@tensorflow/tfjs-backend-wasm` directory. */
export function wasmPackageDir(): string {
  return path.dirname(requireHere().resolve('@tensorflow/tfjs-backend-wasm/package.json'));
}

/** The `dist/` folder holding the .wasm binaries, with a trailing slash (what setWasmPaths expects). */
export function wasmBinaryDir(): string {
  const dir = path.join(wasmPackageDir(), 'dist');
  if (!fs.existsSync(path.join(dir, 'tfjs-backend-wasm-simd.wasm'))) {
    throw new Error(`@tensorflow/tfjs-backend-wasm at ${wasmPackageDir()} has no dist/tfjs-backend-wasm-simd.wasm; reinstall it`);
  }
  return dir + path.sep;
}

/** Requested wasm threads from VREPA_WASM_THREADS (default 1). */
export function requestedWasmThreads(env: NodeJS.ProcessEnv = process.env): number {
  const v = env.VREPA_WASM_THREADS;
  if (v === undefined || v === '') return 1;
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1 || n > 64) {
    throw new Error(`VREPA_WASM_THREADS=${v} is not a thread count; expected an integer from 1 to 64`);
  }
  return n;
}

let workerPath: string | undefined;
let urlPatched = false;

function patchWorkerUrl(): void {
  const dir = wasmPackageDir();
  const glue = path.join(dir, 'wasm-out', 'tfjs-backend-wasm-threaded-simd.js');
  const contents: string = requireHere()(path.join(dir, 'wasm-out', 'tfjs-backend-wasm-threaded-simd.worker.js')).wasmWorkerContents;
  const marker = 'var objectUrl=URL.createObjectURL(e.data.urlOrBlob);importScripts(objectUrl);URL.revokeObjectURL(objectUrl)';
  if (!contents.includes(marker)) throw new Error('the tfjs-backend-wasm worker script has an unexpected form; wasm threads cannot be enabled for this version');
  const script = contents.replace(/\n/g, '\\n').replace(marker, `importScripts(${JSON.stringify(glue)})`);
  const file = path.join(os.tmpdir(), `vrepa-tfjs-wasm-worker-${process.pid}.js`);
  fs.writeFileSync(file, script);
  workerPath = file;
  if (urlPatched) return;
  const create = URL.createObjectURL.bind(URL);
  URL.createObjectURL = ((obj: Blob) => {
    if (workerPath && obj instanceof Blob && obj.type === 'application/javascript') return workerPath;
    return create(obj);
  }) as typeof URL.createObjectURL;
  const revoke = URL.revokeObjectURL.bind(URL);
  URL.revokeObjectURL = (url: string) => {
    if (url !== workerPath) revoke(url);
  };
  urlPatched = true;
  process.once('exit', () => {
    try {
      if (workerPath) fs.rmSync(workerPath, { force: true });
    } catch {
      /* ignore */
    }
  });
}

/**
 * Make `tf.setBackend('wasm')` work from any install layout, with `threads` threads. Call before the wasm
 * backend initialises; returns a function to call after initialisation (restores `os.cpus`).
 */
export async function prepareWasm(threads: number): Promise<() => void> {
  const wasm = await import('@tensorflow/tfjs-backend-wasm');
  wasm.setWasmPaths(wasmBinaryDir());
  if (threads <= 1) return () => {};
  patchWorkerUrl();
  tf.env().set('WASM_HAS_MULTITHREAD_SUPPORT', true);
  wasm.setThreadsCount(threads);
  const cpus = os.cpus;
  const real = cpus();
  const fake = Array.from({ length: 2 * threads }, (_, i) => real[i % Math.max(1, real.length)]!);
  os.cpus = () => fake;
  return () => {
    os.cpus = cpus;
  };
}

/** Threads the wasm backend runs with (1 unless threads were enabled). */
export function wasmThreadsCount(): number {
  if (tf.getBackend() !== 'wasm') return 0;
  try {
    return (tf.backend() as unknown as { wasm: { tfjs: { getThreadsCount(): number } } }).wasm.tfjs.getThreadsCount();
  } catch {
    return 1;
  }
}

/**
 * Let the process exit while wasm threads exist: emscripten keeps its running pthread workers (XNNPACK's
 * thread pool, alive for the whole session) referenced, so Node would never exit on its own.
 */
export function unrefWasmWorkers(): void {
  if (tf.getBackend() !== 'wasm') return;
  const pt = (tf.backend() as unknown as { wasm: { PThread?: { runningWorkers: Array<{ unref?: () => void }>; unusedWorkers: Array<{ unref?: () => void }> } } }).wasm.PThread;
  if (!pt) return;
  for (const w of [...pt.runningWorkers, ...pt.unusedWorkers]) w.unref?.();
}

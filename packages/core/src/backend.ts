/**
 * Backend selection. Order for 'auto': tfjs-node-gpu → tfjs-node → wasm → cpu; `VREPA_BACKEND` overrides.
 * The native packages are optional peers, imported at run time only (never a hard dependency).
 */
import fs from 'node:fs';
import * as tf from '@tensorflow/tfjs';
import { installWasmHeapGuard } from './backends/heap-guard.js';
import { findPackageDir, nativeBindingPath } from './backends/native.js';
import { installNativeKernelFixes } from './backends/native-fixes.js';
import { installNativeFastPaths } from './backends/native-fast.js';
import { installWasmKernels } from './backends/wasm-kernels.js';
import { installWasmExtraKernels } from './backends/wasm-kernels-extra.js';
import { prepareWasm, requestedWasmThreads, unrefWasmWorkers } from './backends/wasm-setup.js';
import type { WasmBackend } from './backends/wasm-util.js';

export type BackendChoice = 'auto' | 'tensorflow-gpu' | 'tensorflow' | 'wasm' | 'cpu';
export const BACKEND_CHOICES: readonly BackendChoice[] = ['auto', 'tensorflow-gpu', 'tensorflow', 'wasm', 'cpu'];

export interface BackendInfo {
  /** The tfjs backend name now active: 'tensorflow', 'wasm' or 'cpu'. */
  name: string;
  /** What was asked for. */
  requested: BackendChoice;
  /** The npm package that provides it, where one does. */
  package?: string;
  /** Why each earlier candidate was skipped. */
  skipped: Record<string, string>;
  /** Native backend: whether TensorFlow's oneDNN kernels are on (TF_ENABLE_ONEDNN_OPTS as the library saw it). */
  oneDnn?: boolean;
}

/**
 * Below this model width (hidden size) the native backend runs with oneDNN off when a caller passes
 * `oneDnn: preferOneDnn(width)`: oneDNN's per-call set-up dominates small matmuls (64³: ~5× slower with it;
 * the tiny preset's training step 0.64× with it off), while from ~256×128 matmuls up it is the faster path
 * (trainer bench:native-settings, /tmp sweep in the wave-2 perf report).
 */
export const ONEDNN_MIN_WIDTH = 128;

/** Whether oneDNN should be on for a model of hidden width `width` (see ONEDNN_MIN_WIDTH). */
export function preferOneDnn(width: number): boolean {
  return width >= ONEDNN_MIN_WIDTH;
}

let current: BackendInfo | undefined;
let pending: Promise<BackendInfo> | undefined;

/** Hooks run after a backend is set (core's wasm kernel fixes register here). */
const afterInit: Array<(info: BackendInfo) => void | Promise<void>> = [];
export function onBackendInit(hook: (info: BackendInfo) => void | Promise<void>): void {
  afterInit.push(hook);
}

async function tryNative(spec: string, oneDnn?: boolean): Promise<string | undefined> {
  // TensorFlow's C++ logging (oneDNN and CPU-feature notices) reads this once, when the library loads.
  process.env.TF_CPP_MIN_LOG_LEVEL ??= '2';
  // So does the oneDNN switch; a value the user set wins.
  if (oneDnn !== undefined && !tf.findBackendFactory('tensorflow') && process.env.TF_ENABLE_ONEDNN_OPTS === undefined) {
    process.env.TF_ENABLE_ONEDNN_OPTS = oneDnn ? '1' : '0';
  }
  try {
    // A variable specifier keeps bundlers from resolving the optional peer at build time.
    await import(/* @vite-ignore */ spec);
  } catch (e) {
    return `${spec} not loadable: ${firstLine(e)}`;
  }
  if (!tf.findBackendFactory('tensorflow')) return `${spec} loaded but registered no 'tensorflow' backend`;
  try {
    if (!(await tf.setBackend('tensorflow'))) return `${spec}: setBackend('tensorflow') failed`;
  } catch (e) {
    return `${spec}: ${firstLine(e)}`;
  }
  return undefined;
}

async function tryWasm(): Promise<string | undefined> {
  let threads: number;
  try {
    threads = requestedWasmThreads();
  } catch (e) {
    return firstLine(e);
  }
  let after: () => void = () => {};
  try {
    // Locates the .wasm binaries from the installed package (built dist/, ESM or CJS, and vitest alike).
    after = await prepareWasm(threads);
    if (!(await tf.setBackend('wasm'))) return `setBackend(wasm) failed${threads > 1 ? ` with VREPA_WASM_THREADS=${threads} (unset it to run single-threaded)` : ''}`;
    return undefined;
  } catch (e) {
    return `@tensorflow/tfjs-backend-wasm: ${firstLine(e)}`;
  } finally {
    after();
  }
}

// Core's wasm fixes: fast matmul forms, missing training kernels, fast conv3d, and the heap guard.
onBackendInit((info) => {
  if (info.name === 'tensorflow') {
    installNativeKernelFixes();
    installNativeFastPaths();
  }
  if (info.name !== 'wasm') return;
  // VREPA_WASM_FIXES=0 keeps the stock tfjs kernels (to compare or bisect); the heap guard stays.
  if (process.env.VREPA_WASM_FIXES !== '0') {
    installWasmKernels();
    installWasmExtraKernels();
  }
  installWasmHeapGuard(tf.backend() as unknown as WasmBackend);
  unrefWasmWorkers();
});

/** Which backends could load here, judged without loading them (for error messages). */
function loadableHint(except: string): string {
  const can: string[] = [];
  for (const [name, spec] of [
    ['tensorflow-gpu', '@tensorflow/tfjs-node-gpu'],
    ['tensorflow', '@tensorflow/tfjs-node'],
  ] as const) {
    const dir = findPackageDir(spec);
    if (name !== except && dir && fs.existsSync(nativeBindingPath(dir))) can.push(name);
  }
  if (except !== 'wasm' && findPackageDir('@tensorflow/tfjs-backend-wasm')) can.push('wasm');
  if (except !== 'cpu') can.push('cpu');
  return can.join(', ');
}

function firstLine(e: unknown): string {
  const msg = e instanceof Error ? e.message : String(e);
  return msg.split('\n')[0]!;
}

/** Parse a VREPA_BACKEND value (undefined when unset or empty); throws naming the valid choices. */
export function parseBackendChoice(v: string | undefined): BackendChoice | undefined {
  if (v === undefined || v === '') return undefined;
  if ((BACKEND_CHOICES as readonly string[]).includes(v)) return v as BackendChoice;
  throw new Error(`VREPA_BACKEND=${v} is not a backend; expected one of ${BACKEND_CHOICES.join(', ')}`);
}

/**
 * Select and initialise the compute backend once per process. Later calls return the same info.
 * Logs once (to stderr) which backend runs and why others were skipped, unless `quiet`. `oneDnn` (native
 * backend only) turns TensorFlow's oneDNN kernels on or off by setting TF_ENABLE_ONEDNN_OPTS before the library
 * loads, unless the environment already sets it; left out, TensorFlow's default (on) applies.
 */
export async function initBackend(opts: { backend?: BackendChoice; quiet?: boolean; oneDnn?: boolean } = {}): Promise<BackendInfo> {
  if (current) return current;
  if (pending) return pending;
  pending = (async () => {
    const requested = opts.backend ?? parseBackendChoice(process.env.VREPA_BACKEND) ?? 'auto';
    const skipped: Record<string, string> = {};
    const candidates: Array<[BackendChoice, () => Promise<string | undefined>, string?]> = [
      ['tensorflow-gpu', () => tryNative('@tensorflow/tfjs-node-gpu', opts.oneDnn), '@tensorflow/tfjs-node-gpu'],
      ['tensorflow', () => tryNative('@tensorflow/tfjs-node', opts.oneDnn), '@tensorflow/tfjs-node'],
      ['wasm', tryWasm, '@tensorflow/tfjs-backend-wasm'],
      ['cpu', async () => ((await tf.setBackend('cpu')) ? undefined : 'setBackend(cpu) failed')],
    ];
    const order = requested === 'auto' ? candidates : candidates.filter(([n]) => n === requested);
    for (const [name, attempt, pkg] of order) {
      const why = await attempt();
      if (why === undefined) {
        await tf.ready();
        const info: BackendInfo = { name: tf.getBackend(), requested, package: pkg, skipped };
        if (info.name === 'tensorflow') info.oneDnn = process.env.TF_ENABLE_ONEDNN_OPTS !== '0';
        for (const hook of afterInit) await hook(info);
        if (!opts.quiet) {
          const skips = Object.entries(skipped).map(([k, v]) => `${k}: ${v}`);
          process.stderr.write(
            `[vrepa] backend: ${info.name}${pkg ? ` (${pkg})` : ''}${skips.length ? `; skipped ${skips.join('; ')}` : ''}\n`,
          );
        }
        current = info;
        return info;
      }
      skipped[name] = why;
    }
    const reasons = Object.entries(skipped)
      .map(([k, v]) => `${k}: ${v}`)
      .join('; ');
    throw new Error(
      requested === 'auto'
        ? `initBackend: no backend could be loaded (${reasons})`
        : `initBackend: backend '${requested}' cannot load (${reasons}); backends that can load here: ${loadableHint(requested)} (set VREPA_BACKEND to one of them, or run \`vrepa backend\`)`,
    );
  })();
  try {
    return await pending;
  } finally {
    pending = undefined;
  }
}

/** The backend chosen by initBackend, if any. */
export function backendInfo(): BackendInfo | undefined {
  return current;
}

/**
 * Switch the active backend of this process to `name` ('wasm', 'cpu' or 'tensorflow'), initialising it the
 * way initBackend does (core's wasm fixes included). Tensors made on another backend move on first use.
 * For tests and benchmarks that compare backends; applications call initBackend once.
 */
export async function switchBackend(name: 'wasm' | 'cpu' | 'tensorflow'): Promise<void> {
  if (tf.getBackend() === name) return;
  const why =
    name === 'wasm'
      ? tf.findBackend('wasm')
        ? ((await tf.setBackend('wasm')) ? undefined : 'setBackend(wasm) failed')
        : await tryWasm()
      : name === 'tensorflow'
        ? tf.findBackend('tensorflow')
          ? ((await tf.setBackend('tensorflow')) ? undefined : 'setBackend(tensorflow) failed')
          : await tryNative('@tensorflow/tfjs-node')
        : (await tf.setBackend('cpu'))
          ? undefined
          : 'setBackend(cpu) failed';
  if (why) throw new Error(`switchBackend: backend '${name}' cannot load (${why}); backends that can load here: ${loadableHint(name)}`);
  await tf.ready();
  const info: BackendInfo = { name: tf.getBackend(), requested: name, skipped: {} };
  for (const hook of afterInit) await hook(info);
}

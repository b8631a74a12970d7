/**
 * Backend probes: which compute backends load here, their versions, and a short matmul speed check, each in
 * its own child process (tfjs backends share one process-wide registry, and loading tfjs-node switches it).
 */
import { spawn } from 'node:child_process';
import { createRequire } from 'node:module';
import os from 'node:os';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import * as tf from '@tensorflow/tfjs';
import { initBackend, type BackendChoice } from '../backend.js';
import { findPackageDir, nativeBindingPath } from './native.js';
import { wasmThreadsCount } from './wasm-setup.js';

export type ProbedBackend = Exclude<BackendChoice, 'auto'>;
export const PROBED_BACKENDS: readonly ProbedBackend[] = ['tensorflow-gpu', 'tensorflow', 'wasm', 'cpu'];

export interface BackendProbe {
  /** What VREPA_BACKEND names it. */
  backend: ProbedBackend;
  loads: boolean;
  /** Why it does not load (first line of the error). */
  why?: string;
  /** The tfjs backend that came up: 'tensorflow', 'wasm' or 'cpu'. */
  tfjsBackend?: string;
  package?: string;
  /** tfjs-core version, and for tensorflow the TensorFlow C library version. */
  versions?: Record<string, string>;
  /** wasm threads. */
  threads?: number;
  /** Small matMul/transposeB/grad results are exact. */
  correct?: boolean;
  /** matMul n×n×n repeated for about the requested seconds. */
  matmul?: { n: number; runs: number; seconds: number; gflops: number };
  /** Seconds the child took in all. */
  wallSeconds?: number;
}

/** The module a child imports to reach core (sources under tsx/vitest, the bundle when built). */
function coreEntry(): { url: string; nodeArgs: string[] } {
  const self = import.meta.url;
  if (/\/backends\/probe\.[cm]?ts$/.test(self)) {
    const tsx = createRequire(fileURLToPath(self)).resolve('tsx');
    return { url: new URL('../index.ts', self).href, nodeArgs: ['--import', pathToFileURL(tsx).href] };
  }
  return { url: self, nodeArgs: [] };
}

/**
 * Run `script` (an ES module body with `core` bound to @vrepa/core) in a child process with `env`; returns
 * the JSON value the script passes to `emit(...)`.
 */
export function runInChild<T>(
  body: string,
  env: NodeJS.ProcessEnv,
  timeoutMs: number,
  opts: { exit?: boolean } = {},
): Promise<{ value?: T; error?: string; wallSeconds: number; exitCode?: number | null }> {
  const { url, nodeArgs } = coreEntry();
  // exit: false lets the child end on its own (tests that nothing keeps the process alive).
  const script = `const core = await import(${JSON.stringify(url)});
const emit = (v) => process.stdout.write('\\n@@VREPA@@' + JSON.stringify(v) + '\\n');
try { ${body} } catch (e) { emit({ __error: String(e && e.message || e).split('\\n')[0] }); }
${opts.exit === false ? '' : 'process.exit(0);'}`;
  const t0 = Date.now();
  return new Promise((resolve) => {
    // A script file rather than `-e`: pthread workers inherit execArgv, and `--input-type` breaks them.
    const file = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'vrepa-child-')), 'child.mjs');
    fs.writeFileSync(file, script);
    const child = spawn(process.execPath, [...nodeArgs, file], {
      env: { ...process.env, TF_CPP_MIN_LOG_LEVEL: process.env.TF_CPP_MIN_LOG_LEVEL ?? '2', ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    let err = '';
    child.stdout.on('data', (d) => (out += d));
    child.stderr.on('data', (d) => (err += d));
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      fs.rmSync(path.dirname(file), { recursive: true, force: true });
      const wallSeconds = (Date.now() - t0) / 1000;
      const line = out.split('\n').find((l) => l.startsWith('@@VREPA@@'));
      if (!line) {
        const last = err.trim().split('\n').filter((l) => l && !/^\s+at /.test(l)).slice(-2).join(' | ');
        resolve({ error: `child process ${signal ? `killed (${signal})` : `exited ${code}`} without a result${last ? `: ${last}` : ''}`, wallSeconds });
        return;
      }
      const v = JSON.parse(line.slice('@@VREPA@@'.length));
      if (v && typeof v === 'object' && '__error' in v) resolve({ error: String(v.__error), wallSeconds, exitCode: code });
      else resolve({ value: v as T, wallSeconds, exitCode: code });
    });
  });
}

/**
 * Inside a child: initialise the backend VREPA_BACKEND names, check small exact results, and time n×n
 * matMul for about `seconds`. Exported for `probeBackends`; not meant to be called in a long-lived process.
 */
export async function runBackendProbe(seconds: number): Promise<Omit<BackendProbe, 'backend' | 'loads' | 'wallSeconds'>> {
  const info = await initBackend({ quiet: true });
  const versions: Record<string, string> = { 'tfjs-core': tf.version_core };
  if (info.package) {
    const dir = findPackageDir(info.package);
    try {
      if (dir) versions[info.package.replace('@tensorflow/', '')] = JSON.parse(fs.readFileSync(`${dir}/package.json`, 'utf8')).version;
    } catch {
      /* version unknown */
    }
  }
  if (info.name === 'tensorflow') {
    try {
      versions.tensorflow = (tf.backend() as unknown as { binding: { TF_Version: string } }).binding.TF_Version;
    } catch {
      /* older bindings */
    }
  }
  const eq = (t: tf.Tensor, want: number[]) => {
    const got = Array.from(t.dataSync());
    t.dispose();
    return got.length === want.length && got.every((v, i) => Math.abs(v - want[i]!) < 1e-4);
  };
  const a = tf.tensor2d([[1, 2], [3, 4]]);
  const b = tf.tensor2d([[5, 6], [7, 8]]);
  const correct =
    eq(tf.matMul(a, b), [19, 22, 43, 50]) &&
    eq(tf.matMul(a, b, false, true), [17, 23, 39, 53]) &&
    eq(tf.grad((v: tf.Tensor) => tf.sum(tf.matMul(v, v, false, true)))(a), [8, 12, 8, 12]);
  tf.dispose([a, b]);
  let matmul: BackendProbe['matmul'];
  if (seconds > 0) {
    const n = info.name === 'cpu' ? 256 : 1024;
    const x = tf.randomUniform([n, n]);
    const y = tf.randomUniform([n, n]);
    tf.matMul(x, y).dispose(); // warm-up
    let runs = 0;
    const t0 = performance.now();
    while (performance.now() - t0 < seconds * 1000) {
      const z = tf.matMul(x, y);
      z.dataSync();
      z.dispose();
      runs++;
    }
    const s = (performance.now() - t0) / 1000;
    matmul = { n, runs, seconds: s, gflops: (2 * n ** 3 * runs) / s / 1e9 };
    tf.dispose([x, y]);
  }
  return { tfjsBackend: info.name, package: info.package, versions, threads: info.name === 'wasm' ? wasmThreadsCount() : undefined, correct, matmul };
}

/** A quick look, without loading anything, at whether a native backend's binding is built. */
export function nativeBindingBuilt(spec: '@tensorflow/tfjs-node' | '@tensorflow/tfjs-node-gpu'): boolean | undefined {
  const dir = findPackageDir(spec);
  if (!dir) return undefined;
  return fs.existsSync(nativeBindingPath(dir));
}

/**
 * Probe each backend in its own child process: loads or why not, versions, small exact results, and a
 * `seconds`-long 1024² matMul GFLOP/s check (0: skip the check). Children run one after another.
 */
export async function probeBackends(opts: { seconds?: number; backends?: readonly ProbedBackend[]; timeoutMs?: number } = {}): Promise<BackendProbe[]> {
  const seconds = opts.seconds ?? 5;
  const out: BackendProbe[] = [];
  for (const backend of opts.backends ?? PROBED_BACKENDS) {
    const r = await runInChild<Omit<BackendProbe, 'backend' | 'loads'>>(
      `emit(await core.runBackendProbe(${Number(seconds)}));`,
      { VREPA_BACKEND: backend },
      opts.timeoutMs ?? (seconds + 90) * 1000,
    );
    if (r.value) out.push({ backend, loads: true, ...r.value, wallSeconds: r.wallSeconds });
    else out.push({ backend, loads: false, why: shortenWhy(r.error ?? 'unknown error', backend), wallSeconds: r.wallSeconds });
  }
  return out;
}

function shortenWhy(why: string, backend: string): string {
  // initBackend's error names what was tried; keep its reason and drop the list of alternatives.
  const m = /cannot load \((.*)\); backends that can load/.exec(why);
  let s = m ? m[1]! : why;
  if (s.startsWith(`${backend}: `)) s = s.slice(backend.length + 2);
  return s.replace(/ imported from \S+/, '');
}

/** Machine line for reports. */
export function machineSummary(): string {
  const cpu = os.cpus()[0]?.model ?? 'unknown cpu';
  return `${os.cpus().length} cores (${cpu.trim()}), ${(os.totalmem() / 2 ** 30).toFixed(0)} GiB, node ${process.version}, ${process.platform}-${process.arch}`;
}

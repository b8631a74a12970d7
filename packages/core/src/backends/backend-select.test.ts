// Backend selection across processes: VREPA_BACKEND errors, both backends selectable, the native smoke
// test, and install-native's messages for bad input.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { findPackageDir, installNative, nativeBindingPath, nativeSmokeTest } from './native.js';
import * as tf from '@tensorflow/tfjs';
import { backendInfo, parseBackendChoice, preferOneDnn, switchBackend, ONEDNN_MIN_WIDTH } from '../backend.js';
import { runBackendProbe, runInChild, type BackendProbe } from './probe.js';

const nativeDir = findPackageDir('@tensorflow/tfjs-node');
const nativeBuilt = !!nativeDir && fs.existsSync(nativeBindingPath(nativeDir));
if (!nativeBuilt) {
  console.log(`[vrepa] native tests skipped: @tensorflow/tfjs-node ${nativeDir ? `has no built binding at ${nativeBindingPath(nativeDir)}` : 'is not installed'} (run \`pnpm backend:install-native\`)`);
}

type Probe = Awaited<ReturnType<typeof runBackendProbe>>;

describe('backend selection', () => {
  it('the native-only tests run wherever the binding was built (VREPA_REQUIRE_NATIVE=1, set by test-all after a successful install-native)', () => {
    if (process.env.VREPA_REQUIRE_NATIVE === '1') expect(nativeBuilt, `no built binding at ${nativeDir ? nativeBindingPath(nativeDir) : '(tfjs-node not installed)'}`).toBe(true);
  });

  it('VREPA_BACKEND naming a backend that cannot load fails with a list of what can; wasm is selectable, also with VREPA_WASM_THREADS=2', async () => {
    // Child processes in parallel: a backend registry is per process.
    const [gpu, wasm, threaded] = await Promise.all([
      runInChild<string>(`await core.initBackend({ quiet: true }); emit('loaded');`, { VREPA_BACKEND: 'tensorflow-gpu' }, 60_000),
      runInChild<Probe>(`emit(await core.runBackendProbe(0));`, { VREPA_BACKEND: 'wasm' }, 60_000),
      // Without process.exit: the threaded child must end on its own (pthread workers unref'd).
      runInChild<Probe>(`emit(await core.runBackendProbe(0));`, { VREPA_BACKEND: 'wasm', VREPA_WASM_THREADS: '2' }, 60_000, { exit: false }),
    ]);
    expect(threaded.error).toBeUndefined();
    expect(threaded.value).toMatchObject({ tfjsBackend: 'wasm', threads: 2, correct: true });
    expect(threaded.exitCode).toBe(0);
    // tfjs-node-gpu is not installed in this workspace.
    expect(gpu.value).toBeUndefined();
    expect(gpu.error).toMatch(/backend 'tensorflow-gpu' cannot load \(.*tfjs-node-gpu.*\); backends that can load here: (tensorflow, )?wasm, cpu/);
    expect(wasm.value).toMatchObject({ tfjsBackend: 'wasm', correct: true, threads: 1 } satisfies Partial<BackendProbe>);
  });

  it('a VREPA_BACKEND value that is no backend is rejected with the valid names', () => {
    expect(() => parseBackendChoice('metal')).toThrow(/VREPA_BACKEND=metal is not a backend; expected one of auto, tensorflow-gpu, tensorflow, wasm, cpu/);
    expect(parseBackendChoice('')).toBeUndefined();
    expect(parseBackendChoice('wasm')).toBe('wasm');
  });

  it('the default is the native backend wherever its binding is built', () => {
    const info = backendInfo();
    expect(info).toBeDefined();
    if (!process.env.VREPA_BACKEND || process.env.VREPA_BACKEND === 'auto') {
      expect(info!.name).toBe(nativeBuilt ? 'tensorflow' : 'wasm');
    } else {
      expect(info!.requested).toBe(process.env.VREPA_BACKEND);
    }
  });

  it.skipIf(!nativeBuilt)('round on int32 is exact on the native backend (TF 2.21 returns zeros without core\'s fix)', async () => {
    await switchBackend('tensorflow');
    const i = tf.round(tf.tensor1d([-12345678, 3, 0, 7], 'int32'));
    expect(i.dtype).toBe('int32');
    expect(Array.from(i.dataSync())).toEqual([-12345678, 3, 0, 7]);
    const f = tf.round(tf.tensor1d([1.5, 2.5, -0.5, -1.7]));
    expect(Array.from(f.dataSync())).toEqual([2, 2, -0, -2]); // half to even, as TensorFlow rounds
    tf.dispose([i, f]);
  });

  it.skipIf(!nativeBuilt)('initBackend({ oneDnn }) sets TF_ENABLE_ONEDNN_OPTS before TensorFlow loads; a value in the environment wins', async () => {
    const script = `if (process.env.TF_ENABLE_ONEDNN_OPTS === '') delete process.env.TF_ENABLE_ONEDNN_OPTS; const info = await core.initBackend({ quiet: true, oneDnn: false }); emit({ name: info.name, oneDnn: info.oneDnn, env: process.env.TF_ENABLE_ONEDNN_OPTS });`;
    const [off, user] = await Promise.all([
      runInChild<{ name: string; oneDnn: boolean; env: string }>(script, { VREPA_BACKEND: 'tensorflow', TF_ENABLE_ONEDNN_OPTS: '' }, 60_000),
      runInChild<{ name: string; oneDnn: boolean; env: string }>(script, { VREPA_BACKEND: 'tensorflow', TF_ENABLE_ONEDNN_OPTS: '1' }, 60_000),
    ]);
    expect(off.value).toEqual({ name: 'tensorflow', oneDnn: false, env: '0' });
    expect(user.value).toEqual({ name: 'tensorflow', oneDnn: true, env: '1' });
  });

  it('preferOneDnn: off below ONEDNN_MIN_WIDTH, on from it', () => {
    expect(preferOneDnn(32)).toBe(false);
    expect(preferOneDnn(ONEDNN_MIN_WIDTH - 1)).toBe(false);
    expect(preferOneDnn(ONEDNN_MIN_WIDTH)).toBe(true);
    expect(preferOneDnn(1920)).toBe(true);
  });

  it.skipIf(!nativeBuilt)('the native binding passes the smoke test (matMul, transposes, batched matMul, conv2d, gradient)', () => {
    const r = nativeSmokeTest(nativeDir!);
    expect(r.failures).toEqual([]);
    expect(r.ok).toBe(true);
    expect(r.tfVersion).toMatch(/^2\.\d+/);
  });
});

describe('install-native on bad input: one clear message, nothing thrown', () => {
  it('an unsupported platform', async () => {
    const r = await installNative({ platform: 'darwin-arm64', log: () => {} });
    expect(r.ok).toBe(false);
    expect(r.message).toMatch(/supports linux-x64 only \(this machine is darwin-arm64\).*wasm backend stays in use/);
  });

  it('the package is not installed', async () => {
    const r = await installNative({ gpu: true, cwd: os.tmpdir(), log: () => {} });
    expect(r.ok).toBe(false);
    expect(r.message).toMatch(/@tensorflow\/tfjs-node-gpu is not installed.*--ignore-scripts.*wasm backend stays in use/);
  });

  it('no Python with pip', async () => {
    const r = await installNative({ python: '/nonexistent/python3', force: true, log: () => {} });
    expect(r.ok).toBe(false);
    expect(r.message).toMatch(/no Python with pip found \(tried \/nonexistent\/python3\).*wasm backend stays in use/);
  });

  it.skipIf(!nativeDir)('a failed download leaves the working build alone', async () => {
    // A python whose pip answers --version but fails every download, as an offline pip does.
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'vrepa-pip-'));
    const py = path.join(dir, 'python3');
    fs.writeFileSync(py, '#!/bin/sh\n[ "$3" = "--version" ] && { echo "pip 23.2"; exit 0; }\necho "ERROR: No matching distribution found for $3" >&2\nexit 1\n', { mode: 0o755 });
    const before = nativeBuilt ? fs.statSync(nativeBindingPath(nativeDir!)).mtimeMs : 0;
    const r = await installNative({ python: py, force: true, cacheDir: dir, log: () => {} });
    expect(r.ok).toBe(false);
    expect(r.message).toMatch(/pip could not download tensorflow-cpu==2\.21\.0 \(exit 1\): ERROR: No matching distribution.*put the \.whl file into .*wasm backend stays in use/);
    if (nativeBuilt) expect(fs.statSync(nativeBindingPath(nativeDir!)).mtimeMs).toBe(before);
    fs.rmSync(dir, { recursive: true, force: true });
  });
});

// `pnpm bench` for @vrepa/cli: what a user waits for. Process start-up of the built `vrepa` binary
// (baseline: a bare `node` process, same run), and the conformance runner's own overhead per sub-case
// (baseline: calling the same handler directly). Numbers are noisy while others use the CPU.
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { initBackend, printBenchTable, registerConformanceHandler, runConformance, writeSafetensors, type BenchRow, type ConformanceContext } from '@vrepa/core';
import { recordingIO } from '../src/io.js';
import { runCli } from '../src/main.js';
import { scaleHandler, writeSyntheticCase } from '../src/test-helpers.js';

const here = path.dirname(fileURLToPath(import.meta.url));
const bin = path.join(here, '..', 'dist', 'cli.js');
if (!fs.existsSync(bin)) throw new Error(`bench: ${bin} is missing; build @vrepa/cli first (pnpm build)`);

function medianMs(fn: () => void, runs: number): number {
  const t: number[] = [];
  for (let i = 0; i < runs; i++) {
    const t0 = performance.now();
    fn();
    t.push(performance.now() - t0);
  }
  t.sort((a, b) => a - b);
  return t[Math.floor(t.length / 2)]!;
}

function proc(args: string[]): () => void {
  return () => {
    const r = spawnSync(process.execPath, args, { encoding: 'utf8', env: { ...process.env, VREPA_BACKEND: 'wasm' } });
    if (r.status !== 0) throw new Error(`bench: node ${args.join(' ')} exited ${r.status}: ${r.stderr.slice(0, 500)}`);
  };
}

await initBackend({ quiet: true });
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'vrepa-cli-bench-'));
try {
  // ---- start-up ----
  const small = path.join(tmp, 'small.safetensors');
  writeSafetensors(small, { w: { dtype: 'F32', shape: [64, 64], data: new Float32Array(64 * 64) } });
  const runs = 5;
  const base = medianMs(proc(['-e', '0']), runs);
  const rows: BenchRow[] = [
    ['node -e 0 (baseline)', ['-e', '0']],
    ['vrepa --version (no package loaded)', [bin, '--version']],
    ['vrepa --help (all packages loaded)', [bin, '--help']],
    ['vrepa inspect small.safetensors', [bin, 'inspect', small]],
  ].map(([name, args]) => {
    const ms = name === 'node -e 0 (baseline)' ? base : medianMs(proc(args as string[]), runs);
    return { name: name as string, 'median ms': ms, 'vs node start': ms / base };
  });
  printBenchTable(`vrepa start-up (process spawn to exit, median of ${runs}, VREPA_BACKEND=wasm)`, rows);

  // ---- conformance runner overhead per sub-case ----
  const n = 200;
  const dir = path.join(tmp, 'fixtures');
  writeSyntheticCase(
    dir,
    'synth_scale',
    Array.from({ length: n }, (_, i) => ({ name: `s${i}`, scale: 2, x: Array.from({ length: 256 }, (_, j) => j - i), tolerance: 'absolute 1e-6' })),
  );
  const pkg = { name: '@vrepa/bench', module: { conformanceHandlers: { synth_scale: scaleHandler } } };
  // direct: the same handler on the same files, with a minimal context of our own
  const manifest = JSON.parse(fs.readFileSync(path.join(dir, 'synth_scale', 'manifest.json'), 'utf8'));
  const { SafetensorsFile, compareTensors } = await import('@vrepa/core');
  const direct = () => {
    for (const sc of manifest.subcases) {
      const file = SafetensorsFile.open(path.join(dir, 'synth_scale', `${sc.name}.safetensors`));
      const ctx = {
        params: sc.params,
        subcase: sc,
        file,
        compare: (ref: string, got: ArrayLike<number>, tol: string) => compareTensors(ref, got, file.read(ref).data as Float32Array, tol),
      } as unknown as ConformanceContext;
      scaleHandler(ctx);
      file.close();
    }
  };
  const directMs = medianMs(direct, 3);
  registerConformanceHandler('synth_scale', scaleHandler);
  const runnerMs = await (async () => {
    const t: number[] = [];
    for (let i = 0; i < 3; i++) {
      const t0 = performance.now();
      const report = await runConformance(dir, {});
      if (!report.ok || report.results.some((r) => !r.handled)) throw new Error('bench: synthetic runConformance did not pass');
      t.push(performance.now() - t0);
    }
    return t.sort((a, b) => a - b)[1]!;
  })();
  const cliMs = await (async () => {
    const t: number[] = [];
    for (let i = 0; i < 3; i++) {
      const t0 = performance.now();
      const code = await runCli(['conformance', dir], { io: recordingIO(), packages: [pkg] });
      if (code !== 0) throw new Error(`bench: synthetic conformance failed (exit ${code})`);
      t.push(performance.now() - t0);
    }
    return t.sort((a, b) => a - b)[1]!;
  })();
  printBenchTable(`conformance runner overhead (${n} sub-cases, 256 values each, median of 3)`, [
    { name: 'handler called directly (baseline)', 'ms / sub-case': directMs / n, ratio: 1 },
    { name: 'core runConformance', 'ms / sub-case': runnerMs / n, ratio: runnerMs / directMs },
    { name: 'vrepa conformance (table + summary)', 'ms / sub-case': cliMs / n, ratio: cliMs / directMs },
  ]);
} finally {
  fs.rmSync(tmp, { recursive: true, force: true });
}

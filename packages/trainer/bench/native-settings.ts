/**
 * `pnpm --filter @vrepa/trainer bench:native-settings`: the native backend's context and binding settings,
 * each measured in its own child process (they are read when the TensorFlow context is created), same run:
 * CPU µs per call (minimum of 5 rounds) of add [8,16], mul by a JS scalar, matMul 64³ and 512³, and the tiny preset's VideoREPA step
 * (wall min and median, CPU-time median ms). Rows: the defaults (op cache on, oneDNN on, TF's thread pools), then one change each —
 * VREPA_TF_OP_CACHE=0 (a TFE_Op per call, as stock tfjs-node), TF_ENABLE_ONEDNN_OPTS=0, intra-op threads
 * 1, inter-op threads 1, async eager.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import * as tf from '@tensorflow/tfjs';
import { initBackend, microsPerOp, printBenchTable, type BenchRow } from '@vrepa/core';
import { Trainer, presetConfig } from '../src/index.js';

const STEPS = Number(process.env.VREPA_BENCH_STEPS ?? 10);
const REPS = Number(process.env.VREPA_BENCH_OPS_REPS ?? 1000);
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

if (process.argv[2] === '--child') {
  await initBackend({ backend: 'tensorflow', quiet: true });
  const rand = (s: number[]) => tf.randomNormal(s, 0, 1, 'float32', 0);
  const a = rand([8, 16]), b = rand([8, 16]), m = rand([64, 64]), big = rand([512, 512]);
  const out: Record<string, number> = {
    add: microsPerOp(() => tf.add(a, b), { reps: REPS, stat: 'min', clock: 'cpu' }),
    mulScalar: microsPerOp(() => tf.mul(a, 0.9), { reps: REPS, stat: 'min', clock: 'cpu' }),
    matmul64: microsPerOp(() => tf.matMul(m, m), { reps: REPS, stat: 'min', clock: 'cpu' }),
    matmul512: microsPerOp(() => tf.matMul(big, big), { reps: 10, rounds: 3, stat: 'min', clock: 'cpu' }),
  };
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'vrepa-settings-'));
  const t = new Trainer(presetConfig('tiny'), { out: tmp, progress: false, log: () => {}, maxSteps: STEPS + 2 });
  t.trainStep();
  t.trainStep();
  const each: number[] = [];
  const cpu: number[] = [];
  for (let i = 0; i < STEPS; i++) {
    const t0 = performance.now();
    const c0 = process.cpuUsage();
    t.trainStep();
    const c = process.cpuUsage(c0);
    each.push(performance.now() - t0);
    cpu.push((c.user + c.system) / 1000);
  }
  out.step = Math.min(...each);
  out.stepMedian = median(each);
  out.stepCpu = median(cpu);
  t.dispose();
  fs.rmSync(tmp, { recursive: true, force: true });
  process.stdout.write(`@@${JSON.stringify(out)}\n`);
  process.exit(0);
}

const variants: Array<[string, Record<string, string>]> = [
  ['defaults (op cache on, oneDNN on)', {}],
  ['VREPA_TF_OP_CACHE=0 (a new TFE_Op per call)', { VREPA_TF_OP_CACHE: '0' }],
  ['TF_ENABLE_ONEDNN_OPTS=0', { TF_ENABLE_ONEDNN_OPTS: '0' }],
  ['VREPA_TF_INTRA_OP_THREADS=1', { VREPA_TF_INTRA_OP_THREADS: '1' }],
  ['VREPA_TF_INTER_OP_THREADS=1', { VREPA_TF_INTER_OP_THREADS: '1' }],
  ['VREPA_TF_ASYNC=1', { VREPA_TF_ASYNC: '1' }],
];
const ROUNDS = Number(process.env.VREPA_BENCH_ROUNDS ?? 3);
const rows: BenchRow[] = [];
const self = fileURLToPath(import.meta.url);
// Round robin over the variants, keeping each metric's minimum: the load of a shared machine drifts.
const best = new Map<string, Record<string, number>>();
const failed = new Map<string, string>();
for (let round = 0; round < ROUNDS; round++) {
  for (const [name, env] of variants) {
    const r = spawnSync(process.execPath, [...process.execArgv, self, '--child'], { encoding: 'utf8', env: { ...process.env, TF_CPP_MIN_LOG_LEVEL: '2', ...env }, timeout: 300_000 });
    const line = (r.stdout ?? '').split('\n').find((l) => l.startsWith('@@'));
    if (!line) {
      failed.set(name, (r.stderr || '').trim().split('\n').pop() ?? '');
      continue;
    }
    const v = JSON.parse(line.slice(2)) as Record<string, number>;
    const b = best.get(name);
    best.set(name, b ? Object.fromEntries(Object.entries(v).map(([k, x]) => [k, Math.min(x, b[k] ?? Infinity)])) : v);
  }
}
const base = best.get(variants[0]![0]);
for (const [name] of variants) {
  const v = best.get(name);
  if (!v || !base) {
    rows.push({ name: `${name}: failed (${failed.get(name)})` });
    continue;
  }
  rows.push({
    name,
    'add µs': v.add,
    'mul·scalar µs': v.mulScalar,
    'matMul 64³ µs': v.matmul64,
    'matMul 512³ µs': v.matmul512,
    'tiny step ms (min)': v.step,
    'tiny step ms (median)': v.stepMedian,
    'tiny step CPU ms (median)': v.stepCpu,
    'step CPU × defaults': v.stepCpu! / base.stepCpu!,
    'matMul 512³ × defaults': v.matmul512! / base.matmul512!,
  });
}
printBenchTable(`native settings (tensorflow backend), one child process each, ${ROUNDS} rounds round-robin, minimum over rounds (load average ${os.loadavg().map((l) => l.toFixed(1)).join(' / ')})`, rows);

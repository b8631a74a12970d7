/**
 * `pnpm --filter @vrepa/trainer bench:dp`: data parallelism on TensorFlow's collective runtime over loopback.
 *
 * 1. All-reduce (CollectiveReduceV2, ring on CPU) between 2 local processes: median time for 0.25 / 4 / 32 MB of
 *    float32, algorithm bandwidth (bytes / time) and bus bandwidth (× 2(N−1)/N, what each task sends).
 * 2. The step-time overhead of data parallelism at the tiny preset and a mid-size model (4 blocks × width 256):
 *    1 task × batch 1 (baseline, same run) vs 2 tasks × batch 1 each, and the part of the step spent in the
 *    gradient all-reduce (ms_allreduce, which includes waiting for the slower task).
 * On a 2-core machine the two tasks share the cores, so the step ratio mixes communication with CPU contention;
 * the all-reduce column is the communication (plus waiting) alone. Compare rows within one run; note the load.
 */
import { spawnSync } from 'node:child_process';
import { createRequire } from 'node:module';
import os from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { launchWorkers, printBenchTable, type BenchRow } from '@vrepa/core';

const worker = path.join(import.meta.dirname, 'dp-worker.ts');
const tsx = pathToFileURL(createRequire(import.meta.url).resolve('tsx')).href;
const env = { TF_CPP_MIN_LOG_LEVEL: '3' };

function parse(lines: string[]): Record<string, unknown> {
  const l = lines.find((x) => x.includes('@@BENCH@@'));
  if (!l) throw new Error(`bench worker printed no result:\n${lines.slice(-10).join('\n')}`);
  return JSON.parse(l.slice(l.indexOf('@@BENCH@@') + 9)) as Record<string, unknown>;
}

async function two(extra: Record<string, string>) {
  const lines: string[] = [];
  const r = await launchWorkers({ workers: 2, command: process.execPath, args: ['--import', tsx, worker], env: { ...env, ...extra }, onLine: (_r, _s, l) => lines.push(l) });
  if (!r.ok) throw new Error(`${r.message}\n${lines.slice(-10).join('\n')}`);
  return parse(lines);
}

function one(extra: Record<string, string>) {
  const { TF_CONFIG: _drop, ...rest } = process.env;
  const r = spawnSync(process.execPath, ['--import', tsx, worker], { env: { ...rest, ...env, ...extra }, encoding: 'utf8' });
  return parse(`${r.stdout}`.split('\n'));
}

process.stdout.write(`load average before: ${os.loadavg().map((x) => x.toFixed(2)).join(' ')} (${os.cpus().length} cores)\n`);
const ar = (await two({ MODE: 'allreduce' })).allreduce as Array<{ mb: number; ms: number }>;
const rows: BenchRow[] = ar.map((r) => {
  const algbw = (r.mb * 2 ** 20) / (r.ms / 1000) / 1e9;
  return { name: `all-reduce ${r.mb} MB, 2 tasks`, value: r.ms, unit: 'ms', note: `algbw ${algbw.toFixed(2)} GB/s, busbw ${(algbw * 1).toFixed(2)} GB/s (×2(N−1)/N = 1 at N=2)` };
});
printBenchTable('all-reduce over loopback (TensorFlow collective runtime, ring)', rows);

const steps: BenchRow[] = [];
for (const model of ['tiny', 'mid']) {
  const base = one({ MODE: 'train', MODEL: model, BATCH: '1' });
  const dp = await two({ MODE: 'train', MODEL: model, BATCH: '1' });
  const mb = ((base.params as number) * 4) / 2 ** 20;
  steps.push({ name: `${model}: 1 task × batch 1 (baseline)`, value: base.stepMs as number, unit: 'ms/step', note: `${(base.params as number).toLocaleString('en')} trainable params, ${mb.toFixed(2)} MB of gradients` });
  steps.push({
    name: `${model}: 2 tasks × batch 1`,
    value: dp.stepMs as number,
    unit: 'ms/step',
    note: `${((dp.stepMs as number) / (base.stepMs as number)).toFixed(2)}× the baseline step; all-reduce ${(dp.allreduceMs as number).toFixed(1)} ms (${((100 * (dp.allreduceMs as number)) / (dp.stepMs as number)).toFixed(0)} % of the step)`,
  });
}
printBenchTable('data-parallel step overhead (2 processes on this machine)', steps);
process.stdout.write(`load average after: ${os.loadavg().map((x) => x.toFixed(2)).join(' ')}\n`);

/**
 * Real processes over loopback: TensorFlow's collective runtime through the patched binding. Needs the native
 * backend built by `vrepa backend install-native` (test-all builds it; like the other native tests these are
 * skipped only where the binding cannot be built, e.g. off linux-x64).
 */
import { spawn, spawnSync } from 'node:child_process';
import { createRequire } from 'node:module';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { describe, expect, it } from 'vitest';
import { nativeBindingBuilt } from '../backends/probe.js';
import { freeLoopbackPorts, launchWorkers } from './launch.js';
import { workerTfConfig } from './tf-config.js';

const worker = path.join(import.meta.dirname, '__testdata__', 'collective-worker.ts');
const tsx = pathToFileURL(createRequire(import.meta.url).resolve('tsx')).href;

async function runPair(mode: string, env: Record<string, string> = {}, graceMs = 20_000) {
  const results: Array<Record<string, unknown>> = [];
  const lines: string[] = [];
  const t0 = Date.now();
  const r = await launchWorkers({
    workers: 2,
    command: process.execPath,
    args: ['--import', tsx, worker],
    env: { MODE: mode, TF_CPP_MIN_LOG_LEVEL: '3', VREPA_DIST_CONNECT_TIMEOUT_S: '30', ...env },
    graceMs,
    onLine: (rank, _s, line) => {
      lines.push(`[${rank}] ${line}`);
      if (line.startsWith('@@RESULT@@')) results[rank] = JSON.parse(line.slice('@@RESULT@@'.length));
    },
  });
  return { r, results, lines, seconds: (Date.now() - t0) / 1000 };
}

describe.skipIf(!nativeBindingBuilt('@tensorflow/tfjs-node'))('collectives between processes', () => {
  it('all-reduce mean/sum and broadcast agree with hand-derived values, without leaking tensors', async () => {
    const { r, results, lines } = await runPair('basic');
    expect(r.ok, lines.join('\n')).toBe(true);
    for (const rank of [0, 1]) {
      const o = results[rank]!;
      expect(o.error, lines.join('\n')).toBeUndefined();
      expect([o.rank, o.worldSize]).toEqual([rank, 2]);
      // mean of [1,10] and [2,20]; of 0.25 and 0.5
      expect(o.mean).toEqual([[1.5, 15], [0.375, 0.375, 0.375, 0.375], [2, 2]]);
      expect(o.sum).toEqual([3]);
      expect(o.broadcast).toEqual([[1, 1.5], [1, 2]]); // rank 1's [[1, 1.5]]
      expect(o.leaked).toBe(0);
    }
  }, 60_000);

  it('a peer that dies mid-run makes the other stop with one clear error, fast', async () => {
    const { r, results, lines, seconds } = await runPair('die-after-first');
    expect(r.codes[1], lines.join('\n')).toBe(0);
    const err = String(results[0]!.error);
    expect(err).toMatch(/^DistributedError: \/job:worker\/replica:0\/task:0 \(rank 0 of 2, localhost:\d+\): allReduceSum failed: a peer stopped/);
    expect(seconds).toBeLessThan(45);
  }, 60_000);

  it('a peer that hangs makes the collective fail after the collective timeout', async () => {
    const { results, lines, seconds } = await runPair('hang-peer', { VREPA_COLLECTIVE_TIMEOUT_S: '3' }, 1000);
    expect(String(results[0]?.error), lines.join('\n')).toMatch(/allReduceSum failed: no progress within 3 s/);
    expect(seconds).toBeLessThan(45);
  }, 60_000);

  it('tasks started with different clusters (world sizes 2 and 3) each give one clear error', async () => {
    const ports = await freeLoopbackPorts(3);
    const addrs = ports.map((p) => `localhost:${p}`);
    const configs = [workerTfConfig(addrs.slice(0, 2), 0), workerTfConfig(addrs, 1), workerTfConfig(addrs, 2)];
    const results = await Promise.all(
      configs.map(
        (tfConfig) =>
          new Promise<string>((resolve) => {
            const c = spawn(process.execPath, ['--import', tsx, worker], { env: { ...process.env, TF_CPP_MIN_LOG_LEVEL: '3', VREPA_DIST_CONNECT_TIMEOUT_S: '20', VREPA_COLLECTIVE_TIMEOUT_S: '30', TF_CONFIG: tfConfig } });
            let out = '';
            c.stdout.on('data', (d) => (out += d));
            c.on('close', () => resolve(out));
          }),
      ),
    );
    // The connect timeout is long because a task's start (tsx + the native TensorFlow library) takes several
    // seconds on a loaded 2-core machine: with 8 s, task 1 could give up on a task 2 that had not started yet
    // (seen in CI). The cost: the last task may wait this long for peers that already stopped.
    const errors = results.map((out) => JSON.parse(out.split('\n').find((l) => l.startsWith('@@RESULT@@'))!.slice(10)).error as string);
    // Task 0 (cluster of 2) and task 1 (cluster of 3) meet in the first collective and TensorFlow refuses the
    // group. Which task sees that first depends on scheduling: a task whose peer already stopped on the mismatch
    // reports the peer gone instead. Each task gives exactly one error naming itself, and the mismatch is named.
    const causes = '(the tasks were started with different TF_CONFIG clusters \\(this task sees (\\d) tasks|peer /job:worker/replica:0/task:\\d at .* did not answer within 20 s|the cluster check failed: a peer stopped)';
    errors.forEach((e, i) => expect(e).toMatch(new RegExp(`^DistributedError: /job:worker/replica:0/task:${i} \\(rank ${i} of ${i === 0 ? 2 : 3}, localhost:\\d+\\): ${causes}`)));
    const mismatches = errors.map((e) => /different TF_CONFIG clusters \(this task sees (\d) tasks/.exec(e)?.[1]);
    expect(mismatches.some((m) => m !== undefined)).toBe(true);
    // A task that names the mismatch counts its own cluster: 2 for task 0, 3 for the others.
    mismatches.forEach((m, i) => m !== undefined && expect(m).toBe(i === 0 ? '2' : '3'));
  }, 120_000);

  it('an unreachable peer gives one clear error within the connect timeout', () => {
    return freeLoopbackPorts(2).then(([p0, p1]) => {
      // Task 0 of a two-task cluster whose task 1 never starts.
      const r = spawnSync(process.execPath, ['--import', tsx, worker], {
        encoding: 'utf8',
        timeout: 50_000,
        env: { ...process.env, TF_CPP_MIN_LOG_LEVEL: '3', VREPA_DIST_CONNECT_TIMEOUT_S: '2', TF_CONFIG: workerTfConfig([`localhost:${p0}`, `localhost:${p1}`], 0) },
      });
      const line = r.stdout.split('\n').find((l) => l.startsWith('@@RESULT@@'));
      expect(line, r.stderr).toBeDefined();
      expect(JSON.parse(line!.slice(10)).error).toMatch(new RegExp(`^DistributedError: .*peer /job:worker/replica:0/task:1 at localhost:${p1} did not answer within 2 s`));
    });
  }, 60_000);
});

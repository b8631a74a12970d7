/**
 * A small benchmark harness: time a function (median of runs after warm-up) and print one table with
 * ratios against a baseline row measured in the same run, plus the backend and the machine.
 */
import os from 'node:os';
import * as tf from '@tensorflow/tfjs';

export interface BenchTiming {
  medianMs: number;
  minMs: number;
  runs: number;
}

/** Median wall time of `fn` (awaited; tensors it returns are read back and disposed). */
export async function timeIt(fn: () => unknown, opts: { warmup?: number; runs?: number; maxMs?: number } = {}): Promise<BenchTiming> {
  const warmup = opts.warmup ?? 1;
  const runs = opts.runs ?? 5;
  const maxMs = opts.maxMs ?? 30_000;
  const once = async () => {
    const t0 = performance.now();
    const out = await fn();
    await settle(out);
    return performance.now() - t0;
  };
  for (let i = 0; i < warmup; i++) await once();
  const times: number[] = [];
  let total = 0;
  while (times.length < runs && (times.length === 0 || total < maxMs)) {
    const t = await once();
    times.push(t);
    total += t;
  }
  times.sort((a, b) => a - b);
  return { medianMs: times[Math.floor(times.length / 2)]!, minMs: times[0]!, runs: times.length };
}

async function settle(out: unknown): Promise<void> {
  const list = out instanceof tf.Tensor ? [out] : Array.isArray(out) ? out.filter((x) => x instanceof tf.Tensor) : [];
  for (const t of list as tf.Tensor[]) {
    await t.data();
    t.dispose();
  }
}

export interface BenchRow {
  name: string;
  /** columns in display order */
  [column: string]: string | number | undefined;
}

/** The environment line printed above each table. */
export function benchEnvironment(): string {
  const cpu = os.cpus()[0]?.model ?? 'unknown cpu';
  return `backend ${tf.getBackend()} · ${os.cpus().length} cores (${cpu}) · ${(os.totalmem() / 2 ** 30).toFixed(0)} GiB · node ${process.version}`;
}

/** Print a markdown table. Numbers are shown with 3 significant digits. */
export function printBenchTable(title: string, rows: BenchRow[], out: (s: string) => void = (s) => process.stdout.write(s)): void {
  const cols = [...new Set(rows.flatMap((r) => Object.keys(r)))];
  const fmt = (v: unknown) =>
    typeof v === 'number' ? (Number.isFinite(v) ? (Math.abs(v) >= 100 ? v.toFixed(0) : v.toPrecision(3)) : String(v)) : v === undefined ? '' : String(v);
  const lines = [
    `\n### ${title}`,
    benchEnvironment(),
    '',
    `| ${cols.join(' | ')} |`,
    `| ${cols.map(() => '---').join(' | ')} |`,
    ...rows.map((r) => `| ${cols.map((c) => fmt(r[c])).join(' | ')} |`),
    '',
  ];
  out(lines.join('\n') + '\n');
}

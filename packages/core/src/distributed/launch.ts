/**
 * Start N local tasks of one command with TensorFlow's TF_CONFIG (as torchrun does for PyTorch): free loopback
 * ports, output forwarded line by line with a rank prefix, and when one task fails the others get a grace
 * period to report their own error and are then stopped — no orphan keeps waiting on a collective.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import net from 'node:net';
import { workerTfConfig } from './tf-config.js';

/** `n` distinct TCP ports free on 127.0.0.1 right now. */
export async function freeLoopbackPorts(n: number): Promise<number[]> {
  const servers: net.Server[] = [];
  try {
    const ports: number[] = [];
    for (let i = 0; i < n; i++) {
      const s = net.createServer();
      servers.push(s);
      await new Promise<void>((res, rej) => s.once('error', rej).listen(0, '127.0.0.1', () => res()));
      ports.push((s.address() as net.AddressInfo).port);
    }
    return ports;
  } finally {
    await Promise.all(servers.map((s) => new Promise((res) => s.close(res))));
  }
}

export interface LaunchOptions {
  /** Number of tasks (≥ 1). */
  workers: number;
  /** Executable and its arguments, run once per task. */
  command: string;
  args: string[];
  cwd?: string;
  /** Extra environment for every task (TF_CONFIG is set per task). */
  env?: NodeJS.ProcessEnv;
  /** Host name in TF_CONFIG (default localhost). */
  host?: string;
  /** Ports to use (default: free loopback ports). */
  ports?: number[];
  /** Each output line (default: written to this process's stdout/stderr as `[rank i] line`). */
  onLine?: (rank: number, stream: 'stdout' | 'stderr', line: string) => void;
  /** After a task fails, how long the others may take to stop by themselves before SIGTERM (default 20 s). */
  graceMs?: number;
}

export interface LaunchResult {
  ok: boolean;
  /** Exit code per rank (null when ended by a signal). */
  codes: Array<number | null>;
  signals: Array<NodeJS.Signals | null>;
  /** The first task that failed. */
  failed?: number;
  /** Ranks this launcher had to stop. */
  stopped: number[];
  /** One line: what happened. */
  message: string;
  tfConfigs: string[];
}

/** Run `workers` copies of a command with TF_CONFIG; resolves when all have ended. */
export async function launchWorkers(o: LaunchOptions): Promise<LaunchResult> {
  if (!Number.isInteger(o.workers) || o.workers < 1) throw new Error(`launch: --workers must be a positive integer (got ${o.workers})`);
  const ports = o.ports ?? (await freeLoopbackPorts(o.workers));
  if (ports.length !== o.workers) throw new Error(`launch: ${ports.length} ports for ${o.workers} workers`);
  const addrs = ports.map((p) => `${o.host ?? 'localhost'}:${p}`);
  const tfConfigs = addrs.map((_, i) => workerTfConfig(addrs, i));
  const onLine =
    o.onLine ??
    ((rank: number, stream: 'stdout' | 'stderr', line: string) => (stream === 'stdout' ? process.stdout : process.stderr).write(`[rank ${rank}] ${line}\n`));
  const codes: Array<number | null> = new Array(o.workers).fill(null);
  const signals: Array<NodeJS.Signals | null> = new Array(o.workers).fill(null);
  const stopped: number[] = [];
  let failed: number | undefined;
  let graceTimer: NodeJS.Timeout | undefined;
  const children: ChildProcess[] = [];
  const running = new Set<number>();

  const stopOthers = () => {
    for (const r of running) {
      stopped.push(r);
      children[r]!.kill('SIGTERM');
      setTimeout(() => running.has(r) && children[r]!.kill('SIGKILL'), 5000).unref();
    }
  };
  const forwarding = (onSig: NodeJS.Signals) => () => {
    for (const r of running) children[r]!.kill(onSig);
  };
  const onInt = forwarding('SIGINT');
  const onTerm = forwarding('SIGTERM');
  process.on('SIGINT', onInt);
  process.on('SIGTERM', onTerm);

  await new Promise<void>((resolve) => {
    for (let rank = 0; rank < o.workers; rank++) {
      const child = spawn(o.command, o.args, {
        cwd: o.cwd,
        env: { ...process.env, ...o.env, TF_CONFIG: tfConfigs[rank] },
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      children.push(child);
      running.add(rank);
      for (const stream of ['stdout', 'stderr'] as const) {
        let buf = '';
        child[stream]!.setEncoding('utf8');
        child[stream]!.on('data', (chunk: string) => {
          buf += chunk;
          let nl: number;
          while ((nl = buf.indexOf('\n')) >= 0) {
            onLine(rank, stream, buf.slice(0, nl));
            buf = buf.slice(nl + 1);
          }
        });
        child[stream]!.on('end', () => buf && onLine(rank, stream, buf));
      }
      child.on('error', (e) => {
        onLine(rank, 'stderr', `launch: could not start ${o.command}: ${e.message}`);
      });
      child.on('close', (code, signal) => {
        running.delete(rank);
        codes[rank] = code;
        signals[rank] = signal;
        if ((code !== 0 || signal) && failed === undefined && !stopped.includes(rank)) {
          failed = rank;
          graceTimer = setTimeout(stopOthers, o.graceMs ?? 20_000);
        }
        if (running.size === 0) resolve();
      });
    }
  });
  if (graceTimer) clearTimeout(graceTimer);
  process.off('SIGINT', onInt);
  process.off('SIGTERM', onTerm);
  const ok = codes.every((c) => c === 0) && signals.every((x) => x === null);
  const how = (r: number) => (signals[r] ? `was killed by ${signals[r]}` : `exited with code ${codes[r]}`);
  const bad = codes.map((c, r) => r).filter((r) => (codes[r] !== 0 || signals[r]) && !stopped.includes(r));
  const message = ok
    ? `launch: all ${o.workers} workers finished`
    : `launch: ${bad.map((r) => `worker ${r} ${how(r)}`).join(', ')}${bad.length > 1 ? ` (first: worker ${failed})` : ''}` +
      (stopped.length ? `; stopped worker${stopped.length > 1 ? 's' : ''} ${stopped.join(', ')} that did not end within ${((o.graceMs ?? 20_000) / 1000).toFixed(0)} s` : '');
  return { ok, codes, signals, failed, stopped, message, tfConfigs };
}

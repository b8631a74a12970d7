/**
 * TF_CONFIG: the cluster description TensorFlow's multi-worker training reads from the environment, in exactly
 * TensorFlow's format, so that Slurm / Kubernetes operators / TF's own launch tooling set it the same way for vrepa
 * as for Python TensorFlow:
 *
 *   {"cluster": {"worker": ["host0:port", "host1:port"]}, "task": {"type": "worker", "index": 1}}
 *
 * An optional "chief" job (one task) is rank 0 and the workers follow, as in MultiWorkerMirroredStrategy.
 * Jobs that take no part in data-parallel training ("ps", "evaluator") are rejected with a clear error.
 */

/** One task of the cluster, in rank order. */
export interface ClusterTask {
  /** 'chief' or 'worker'. */
  job: string;
  index: number;
  /** host:port its gRPC server listens on. */
  address: string;
  /** TensorFlow's task name, `/job:<job>/replica:0/task:<index>`. */
  name: string;
}

export interface ClusterConfig {
  /** The cluster as TF_CONFIG gives it: job name → addresses. */
  cluster: Record<string, string[]>;
  /** Every task in rank order: the chief (if any), then the workers by index. */
  tasks: ClusterTask[];
  /** This process's task. */
  task: ClusterTask;
  /** This process's rank (its position in `tasks`). */
  rank: number;
  worldSize: number;
  /** The task that leads collective group resolution (rank 0), `/job:…/replica:0/task:…`. */
  groupLeader: string;
  /** This task's port (the gRPC server binds it on all interfaces). */
  port: number;
}

/** A bad TF_CONFIG or cluster: the message names what was wrong. */
export class TfConfigError extends Error {
  override name = 'TfConfigError';
}

const JOBS = ['chief', 'worker'] as const;

/** `/job:<job>/replica:0/task:<index>` — how TensorFlow names a task. */
export function taskName(job: string, index: number): string {
  return `/job:${job}/replica:0/task:${index}`;
}

/** The port of `host:port` (IPv6 as `[::1]:port`); throws when there is none. */
export function addressPort(address: string, what = 'address'): number {
  const m = /^(\[[0-9a-fA-F:.]+\]|[^:[\]\s]+):(\d{1,5})$/.exec(address);
  const port = m ? Number(m[2]) : NaN;
  if (!m || !(port > 0 && port < 65536)) throw new TfConfigError(`TF_CONFIG: ${what} '${address}' is not host:port (e.g. "localhost:23456" or "[::1]:23456")`);
  return port;
}

/**
 * Parse and check a TF_CONFIG value (the JSON text, or the parsed object). Returns undefined when `value` is
 * undefined or empty (no cluster: single-process training). Throws TfConfigError naming what is wrong.
 */
export function parseTfConfig(value: string | object | undefined): ClusterConfig | undefined {
  if (value === undefined || (typeof value === 'string' && value.trim() === '')) return undefined;
  let cfg: unknown;
  if (typeof value === 'string') {
    try {
      cfg = JSON.parse(value);
    } catch (e) {
      throw new TfConfigError(`TF_CONFIG is not JSON (${(e as Error).message}); expected {"cluster": {"worker": ["host:port", …]}, "task": {"type": "worker", "index": 0}}`);
    }
  } else cfg = value;
  if (!cfg || typeof cfg !== 'object' || Array.isArray(cfg)) throw new TfConfigError('TF_CONFIG must be a JSON object with "cluster" and "task"');
  const { cluster, task } = cfg as { cluster?: unknown; task?: unknown };
  if (!cluster || typeof cluster !== 'object' || Array.isArray(cluster)) {
    throw new TfConfigError('TF_CONFIG has no "cluster" object (expected {"cluster": {"worker": ["host:port", …]}, …})');
  }
  const jobs: Record<string, string[]> = {};
  for (const [job, addrs] of Object.entries(cluster as Record<string, unknown>)) {
    if (!(JOBS as readonly string[]).includes(job)) {
      throw new TfConfigError(`TF_CONFIG: cluster job '${job}' is not supported for data-parallel training (jobs: ${JOBS.join(', ')})`);
    }
    if (!Array.isArray(addrs) || addrs.length === 0 || addrs.some((a) => typeof a !== 'string')) {
      throw new TfConfigError(`TF_CONFIG: cluster.${job} must be a non-empty list of "host:port" strings`);
    }
    addrs.forEach((a: string, i: number) => addressPort(a, `cluster.${job}[${i}]`));
    jobs[job] = addrs as string[];
  }
  if (!jobs.worker && !jobs.chief) throw new TfConfigError('TF_CONFIG: cluster has no "worker" job');
  if (jobs.chief && jobs.chief.length !== 1) throw new TfConfigError(`TF_CONFIG: cluster.chief has ${jobs.chief.length} tasks; TensorFlow allows exactly one`);
  const seen = new Map<string, string>();
  for (const job of JOBS) {
    (jobs[job] ?? []).forEach((a, i) => {
      const prev = seen.get(a);
      if (prev) throw new TfConfigError(`TF_CONFIG: address ${a} is given twice (${prev} and ${job}[${i}])`);
      seen.set(a, `${job}[${i}]`);
    });
  }
  if (!task || typeof task !== 'object') throw new TfConfigError('TF_CONFIG has no "task" object (expected "task": {"type": "worker", "index": 0})');
  const { type, index } = task as { type?: unknown; index?: unknown };
  if (typeof type !== 'string' || !jobs[type]) {
    throw new TfConfigError(`TF_CONFIG: task type ${JSON.stringify(type)} is not a job of the cluster (jobs: ${Object.keys(jobs).join(', ')})`);
  }
  const idx = index === undefined ? 0 : index;
  if (typeof idx !== 'number' || !Number.isInteger(idx) || idx < 0 || idx >= jobs[type]!.length) {
    throw new TfConfigError(`TF_CONFIG: task index ${JSON.stringify(index)} is out of range for job '${type}' with ${jobs[type]!.length} task(s) (0…${jobs[type]!.length - 1})`);
  }
  const tasks: ClusterTask[] = [];
  for (const job of JOBS) (jobs[job] ?? []).forEach((address, i) => tasks.push({ job, index: i, address, name: taskName(job, i) }));
  const rank = tasks.findIndex((t) => t.job === type && t.index === idx);
  const me = tasks[rank]!;
  return { cluster: jobs, tasks, task: me, rank, worldSize: tasks.length, groupLeader: tasks[0]!.name, port: addressPort(me.address) };
}

/** The TF_CONFIG for task `index` of a worker-only cluster (what `vrepa launch` sets). */
export function workerTfConfig(addresses: string[], index: number): string {
  return JSON.stringify({ cluster: { worker: addresses }, task: { type: 'worker', index } });
}

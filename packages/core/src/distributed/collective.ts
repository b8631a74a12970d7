/**
 * Data parallelism on TensorFlow's collective runtime — the engine under MultiWorkerMirroredStrategy (gRPC
 * between tasks, ring all-reduce on CPU, NCCL on GPU) — reached through the native binding's
 * `enableCollectiveOps` (native-patches/20-collective-ops.patch, i.e. TFE_EnableCollectiveOps) and the ordinary
 * ops CollectiveReduceV2 / CollectiveBcastSendV2 / CollectiveBcastRecvV2.
 *
 * Every task must issue the same collectives in the same order (instance keys are a counter shared by
 * construction). A peer that dies makes the pending collective fail within milliseconds (gRPC reports the
 * closed connection); a peer that hangs fails it after `collectiveTimeoutS`. Either way: one DistributedError.
 */
import * as tf from '@tensorflow/tfjs';
import { serverDefForCluster } from './server-def.js';
import { type ClusterConfig, parseTfConfig } from './tf-config.js';

export interface DistributedOptions {
  /** TF_CONFIG text or object (default: process.env.TF_CONFIG). */
  tfConfig?: string | object;
  /** How long every peer may take to answer at start (default $VREPA_DIST_CONNECT_TIMEOUT_S or 120 s). */
  connectTimeoutS?: number;
  /** Each collective fails after this many seconds without progress (default $VREPA_COLLECTIVE_TIMEOUT_S or 600 s). */
  collectiveTimeoutS?: number;
  /** Collective implementation hint: 'auto' (ring on CPU, NCCL on GPU), 'ring' or 'nccl'. */
  communication?: 'auto' | 'ring' | 'nccl';
  /** Tensors per collective are packed into buckets of about this many bytes (default 64 MiB). */
  bucketBytes?: number;
  /**
   * A native thread checks every peer this often and aborts the collectives when one is gone, so that a pending
   * collective fails at once (default 1000 ms; 0 turns it off and leaves only collectiveTimeoutS).
   */
  healthCheckIntervalMs?: number;
}

/** A collective failed or the cluster could not be formed; the message says which peer/what to do. */
export class DistributedError extends Error {
  override name = 'DistributedError';
  constructor(
    message: string,
    /** TensorFlow's status code name when it came from TensorFlow (e.g. 'UNAVAILABLE', 'DEADLINE_EXCEEDED'). */
    readonly code?: string,
  ) {
    super(message);
  }
}

/** The data-parallel group of this process: rank, world size and the collectives. */
export interface Distributed {
  /** 0 … worldSize-1; rank 0 (the chief, or worker 0) writes checkpoints and logs. */
  readonly rank: number;
  readonly worldSize: number;
  /** rank === 0. */
  readonly isChief: boolean;
  /** The parsed TF_CONFIG (undefined when single-process). */
  readonly cluster?: ClusterConfig;
  /** Mean over all tasks of each tensor (float32; shapes must agree across tasks). Returns new tensors. */
  allReduceMean(tensors: tf.Tensor[]): tf.Tensor[];
  /** Sum over all tasks of each tensor (float32). Returns new tensors. */
  allReduceSum(tensors: tf.Tensor[]): tf.Tensor[];
  /** Rank `from`'s values of `tensors` on every task (float32; every task passes tensors of the same shapes). */
  broadcast(tensors: tf.Tensor[], from?: number): tf.Tensor[];
  /** Returns when every task has reached it (one tiny all-reduce). */
  barrier(): void;
  /** Number of collectives issued so far (instance keys used). */
  readonly collectives: number;
  /**
   * Stop watching the peers (call after the last collective, before exiting normally, so that a peer that
   * finishes first is not taken for a failure).
   */
  shutdown(): void;
}

/** What the native binding adds with the collective patch. */
interface CollectiveBinding {
  enableCollectiveOps?(serverDef: Uint8Array): string;
  checkPeerHealth?(task: string, timeoutMs: number): void;
  abortCollectiveOps?(message: string): void;
  startHealthCheck?(tasks: string[], intervalMs: number, timeoutMs: number): void;
  stopHealthCheck?(): void;
  getNumOfTensors(): number;
  TF_ATTR_STRING: number;
  TF_ATTR_INT: number;
  TF_ATTR_FLOAT: number;
  TF_ATTR_TYPE: number;
  TF_FLOAT: number;
  TF_INT32: number;
}
interface OpAttr {
  name: string;
  type: number;
  value: unknown;
}
interface NativeBackend {
  binding: CollectiveBinding;
  executeSingleOutput(name: string, attrs: OpAttr[], inputs: tf.Tensor[]): tf.Tensor;
}

const GROUP_KEY = 1;
let active: Distributed | undefined;

function envNumber(name: string): number | undefined {
  const v = process.env[name];
  if (v === undefined || v === '') return undefined;
  const n = Number(v);
  if (!(n > 0)) throw new DistributedError(`${name}=${v} is not a positive number of seconds`);
  return n;
}

/** The distributed group initDistributed made, if any. */
export function distributed(): Distributed | undefined {
  return active;
}

/** A single-process group: collectives are identities (copies). */
export function localDistributed(): Distributed {
  return {
    rank: 0,
    worldSize: 1,
    isChief: true,
    collectives: 0,
    allReduceMean: (ts) => ts.map((t) => tf.clone(t)),
    allReduceSum: (ts) => ts.map((t) => tf.clone(t)),
    broadcast: (ts) => ts.map((t) => tf.clone(t)),
    barrier: () => {},
    shutdown: () => {},
  };
}

function nativeBackend(): NativeBackend {
  const b = tf.backend() as unknown as Partial<NativeBackend>;
  if (tf.getBackend() !== 'tensorflow' || !b.binding || typeof b.executeSingleOutput !== 'function') {
    throw new DistributedError(
      `data-parallel training runs on TensorFlow's collective runtime, which needs the native 'tensorflow' backend; the active backend is '${tf.getBackend()}'. Run \`vrepa backend install-native\` and unset VREPA_BACKEND (or set it to tensorflow).`,
    );
  }
  if (typeof b.binding.enableCollectiveOps !== 'function') {
    throw new DistributedError(
      'the native binding was built without the collective-ops patch (no enableCollectiveOps); run `vrepa backend install-native` again to rebuild it with vrepa\'s native patches.',
    );
  }
  return b as NativeBackend;
}

/** TensorFlow's status code from a binding error ("Invalid TF_Status: 14\nMessage: …" or error.code). */
function tfCode(e: unknown): string | undefined {
  const err = e as { code?: unknown; message?: string };
  if (typeof err?.code === 'string') return err.code;
  const m = /Invalid TF_Status: (\d+)/.exec(err?.message ?? '');
  const names = ['OK', 'CANCELLED', 'UNKNOWN', 'INVALID_ARGUMENT', 'DEADLINE_EXCEEDED', 'NOT_FOUND', 'ALREADY_EXISTS', 'PERMISSION_DENIED', 'RESOURCE_EXHAUSTED', 'FAILED_PRECONDITION', 'ABORTED', 'OUT_OF_RANGE', 'UNIMPLEMENTED', 'INTERNAL', 'UNAVAILABLE', 'DATA_LOSS', 'UNAUTHENTICATED'];
  return m ? names[Number(m[1])] : undefined;
}

/** The first meaningful line of TensorFlow's message. */
function tfMessage(e: unknown): string {
  const msg = (e as Error)?.message ?? String(e);
  const body = msg.replace(/^Invalid TF_Status: \d+\nMessage: /, '');
  return body.split('\n')[0]!.trim();
}

/**
 * Join the cluster TF_CONFIG describes: start this task's gRPC server, wait until every peer answers, check that
 * all tasks see the same cluster. Without TF_CONFIG (or with one task) returns a single-process group. Call once,
 * after initBackend and before training; a second call returns the same group.
 */
export function initDistributed(opts: DistributedOptions = {}): Distributed {
  if (active) return active;
  const cluster = parseTfConfig(opts.tfConfig ?? process.env.TF_CONFIG);
  if (!cluster || cluster.worldSize === 1) {
    active = { ...localDistributed(), cluster };
    return active;
  }
  const backend = nativeBackend();
  const binding = backend.binding;
  const connectTimeoutS = opts.connectTimeoutS ?? envNumber('VREPA_DIST_CONNECT_TIMEOUT_S') ?? 120;
  const timeoutS = opts.collectiveTimeoutS ?? envNumber('VREPA_COLLECTIVE_TIMEOUT_S') ?? 600;
  const hint = opts.communication ?? 'auto';
  const bucketBytes = opts.bucketBytes ?? 64 * 2 ** 20;
  const who = `${cluster.task.name} (rank ${cluster.rank} of ${cluster.worldSize}, ${cluster.task.address})`;

  try {
    binding.enableCollectiveOps!(serverDefForCluster(cluster));
  } catch (e) {
    throw new DistributedError(
      `${who}: TensorFlow could not start this task's server on port ${cluster.port}: ${tfMessage(e)}${/address|bind|in use/i.test(String(e)) ? ' (is another process using that port?)' : ''}`,
      tfCode(e),
    );
  }

  // Every peer must answer within connectTimeoutS (peers start at different times: retry).
  const deadline = Date.now() + connectTimeoutS * 1000;
  for (const peer of cluster.tasks) {
    if (peer.name === cluster.task.name) continue;
    for (;;) {
      try {
        binding.checkPeerHealth!(peer.name, 2000);
        break;
      } catch (e) {
        if (Date.now() >= deadline) {
          throw new DistributedError(
            `${who}: peer ${peer.name} at ${peer.address} did not answer within ${connectTimeoutS} s (${tfMessage(e)}). Check that every task of TF_CONFIG is started and that the address is reachable.`,
            tfCode(e),
          );
        }
        Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 250);
      }
    }
  }

  let instanceKey = 0;
  const i32 = (v: number) => tf.scalar(v, 'int32');
  const common = (): OpAttr[] => [
    { name: 'T', type: binding.TF_ATTR_TYPE, value: binding.TF_FLOAT },
    { name: 'communication_hint', type: binding.TF_ATTR_STRING, value: hint },
    { name: 'timeout_seconds', type: binding.TF_ATTR_FLOAT, value: timeoutS },
  ];
  /** Run one collective op; TensorFlow's failure becomes one DistributedError naming what happened. */
  const run = (what: string, op: string, attrs: OpAttr[], inputs: tf.Tensor[]): tf.Tensor => {
    const key = ++instanceKey;
    const keys = [i32(cluster.worldSize), i32(GROUP_KEY), i32(key)];
    try {
      return backend.executeSingleOutput(op, attrs, op === 'CollectiveBcastRecvV2' ? [...keys, ...inputs] : [...inputs, ...keys]);
    } catch (e) {
      const code = tfCode(e);
      const why =
        code === 'DEADLINE_EXCEEDED'
          ? `no progress within ${timeoutS} s: a peer hangs or is too slow (VREPA_COLLECTIVE_TIMEOUT_S raises the limit)`
          : code === 'UNAVAILABLE' || code === 'ABORTED' || code === 'CANCELLED'
            ? 'a peer stopped (its process died or its connection closed)'
            : code === 'INVALID_ARGUMENT' || code === 'INTERNAL'
              ? 'the tasks disagree about the collective (different TF_CONFIG, model or batch shapes across tasks?)'
              : 'TensorFlow reported an error';
      throw new DistributedError(`${who}: ${what} failed: ${why}. TensorFlow: ${tfMessage(e)}`, code);
    } finally {
      keys.forEach((k) => k.dispose());
    }
  };

  const reduceFlat = (flat: tf.Tensor, mergeOp: 'Add' | 'Max', finalOp: 'Id' | 'Div', what: string) =>
    run(what, 'CollectiveReduceV2', [...common(), { name: 'merge_op', type: binding.TF_ATTR_STRING, value: mergeOp }, { name: 'final_op', type: binding.TF_ATTR_STRING, value: finalOp }], [flat]);

  /** Apply `collective` to float32 tensors packed into buckets of ≈bucketBytes; returns tensors shaped as given. */
  const packed = (tensors: tf.Tensor[], what: string, collective: (flat: tf.Tensor) => tf.Tensor): tf.Tensor[] => {
    for (const t of tensors) {
      if (t.dtype !== 'float32') throw new DistributedError(`${what}: only float32 tensors are supported (got ${t.dtype} of shape [${t.shape}])`);
    }
    const out: tf.Tensor[] = [];
    let i = 0;
    while (i < tensors.length) {
      let j = i;
      let bytes = 0;
      do bytes += tensors[j++]!.size * 4;
      while (j < tensors.length && bytes + tensors[j]!.size * 4 <= bucketBytes);
      const group = tensors.slice(i, j);
      out.push(
        ...tf.tidy(() => {
          const flat = group.length === 1 ? group[0]!.reshape([-1]) : tf.concat(group.map((t) => t.reshape([-1])));
          const reduced = collective(flat);
          const parts = group.length === 1 ? [reduced] : tf.split(reduced, group.map((t) => t.size));
          return parts.map((p, k) => p.reshape(group[k]!.shape));
        }),
      );
      i = j;
    }
    return out;
  };

  const group: Distributed = {
    rank: cluster.rank,
    worldSize: cluster.worldSize,
    isChief: cluster.rank === 0,
    cluster,
    get collectives() {
      return instanceKey;
    },
    allReduceMean: (ts) => packed(ts, 'allReduceMean', (flat) => reduceFlat(flat, 'Add', 'Div', 'allReduceMean')),
    allReduceSum: (ts) => packed(ts, 'allReduceSum', (flat) => reduceFlat(flat, 'Add', 'Id', 'allReduceSum')),
    broadcast: (ts, from = 0) => {
      if (!Number.isInteger(from) || from < 0 || from >= cluster.worldSize) throw new DistributedError(`broadcast: source rank ${from} is not in 0…${cluster.worldSize - 1}`);
      return packed(ts, 'broadcast', (flat) =>
        cluster.rank === from
          ? run('broadcast (send)', 'CollectiveBcastSendV2', common(), [flat])
          : run('broadcast (receive)', 'CollectiveBcastRecvV2', [...common(), { name: 'Tshape', type: binding.TF_ATTR_TYPE, value: binding.TF_INT32 }], [tf.tensor1d([flat.size], 'int32')]),
      );
    },
    barrier: () => {
      tf.tidy(() => reduceFlat(tf.zeros([1]), 'Add', 'Id', 'barrier'));
    },
    shutdown: () => binding.stopHealthCheck?.(),
  };

  // From here on a peer that goes away aborts the pending collective (instead of waiting for the timeout).
  const interval = opts.healthCheckIntervalMs ?? 1000;
  if (interval > 0 && binding.startHealthCheck) {
    binding.startHealthCheck(cluster.tasks.filter((t) => t.name !== cluster.task.name).map((t) => t.name), interval, Math.max(2000, interval));
  }

  // Every task must see the same cluster: all-reduce-max of [size, fingerprint] and of its negation (min).
  const fp = fingerprint(JSON.stringify(cluster.cluster));
  const mine = [cluster.worldSize, ...fp];
  let seen: Float32Array | Int32Array | Uint8Array;
  try {
    seen = tf.tidy(() => reduceFlat(tf.tensor1d([...mine, ...mine.map((v) => -v)]), 'Max', 'Id', 'the cluster check').dataSync());
  } catch (e) {
    // TensorFlow itself refuses a group whose tasks give different sizes.
    if (e instanceof DistributedError && /group with size|group has size/i.test(e.message)) {
      throw new DistributedError(
        `${who}: the tasks were started with different TF_CONFIG clusters (this task sees ${cluster.worldSize} tasks: ${cluster.tasks.map((t) => t.address).join(', ')}). Give every task the same "cluster" and its own "task". TensorFlow: ${e.message.split('TensorFlow: ')[1] ?? ''}`,
        e.code,
      );
    }
    throw e;
  }
  const max = Array.from(seen.slice(0, mine.length));
  const min = Array.from(seen.slice(mine.length)).map((v) => -v);
  if (max.some((v, k) => v !== min[k])) {
    throw new DistributedError(
      `${who}: the tasks were started with different TF_CONFIG clusters (world sizes between ${min[0]} and ${max[0]}; this task: ${JSON.stringify(cluster.cluster)}). Give every task the same "cluster" and its own "task".`,
    );
  }
  active = group;
  return group;
}

/** 32 bits of FNV-1a as two exact 16-bit float32 values. */
function fingerprint(s: string): [number, number] {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i);
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return [h >>> 16, h & 0xffff];
}

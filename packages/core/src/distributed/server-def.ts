/**
 * A minimal protobuf encoder for the one message the collective runtime needs: tensorflow.ServerDef
 * (tensorflow/core/protobuf/tensorflow_server.proto) with its ClusterDef and the two ConfigProto fields
 * MultiWorkerMirroredStrategy sets for collectives. Byte-identical to TensorFlow's Python
 * `ServerDef.SerializeToString(deterministic=True)` (server-def.test.ts checks it against bytes made by
 * __testdata__/make-server-defs.py), including its map-entry order (descending task index).
 */
import type { ClusterConfig } from './tf-config.js';

// Field numbers from TensorFlow's .proto files.
const SERVER_DEF = { cluster: 1, jobName: 2, taskIndex: 3, defaultSessionConfig: 4, protocol: 5, port: 6 } as const;
const CLUSTER_DEF_JOB = 1;
const JOB_DEF = { name: 1, tasks: 2 } as const; // tasks: map<int32, string>
const MAP_ENTRY = { key: 1, value: 2 } as const;
const CONFIG_PROTO = { deviceFilters: 4, experimental: 16 } as const;
const EXPERIMENTAL = { collectiveGroupLeader: 1 } as const;

const VARINT = 0;
const LEN = 2;

function varint(n: number): number[] {
  if (!Number.isInteger(n) || n < 0 || n > Number.MAX_SAFE_INTEGER) throw new RangeError(`varint: ${n} is not a non-negative safe integer`);
  const out: number[] = [];
  while (n >= 0x80) {
    out.push((n % 0x80) | 0x80);
    n = Math.floor(n / 0x80);
  }
  out.push(n);
  return out;
}

const key = (field: number, wire: number) => varint(field * 8 + wire);
const bytesField = (field: number, b: number[]) => [...key(field, LEN), ...varint(b.length), ...b];
const stringField = (field: number, s: string) => bytesField(field, [...new TextEncoder().encode(s)]);
// proto3 scalars: a zero is not written.
const intField = (field: number, v: number) => (v === 0 ? [] : [...key(field, VARINT), ...varint(v)]);

export interface ServerDefInput {
  /** job name → task addresses, index = position. */
  cluster: Record<string, string[]>;
  jobName: string;
  taskIndex: number;
  protocol?: string;
  port: number;
  /** ConfigProto.experimental.collective_group_leader. */
  collectiveGroupLeader: string;
  /** ConfigProto.device_filters. */
  deviceFilters: string[];
}

/** Serialize a tensorflow.ServerDef. Jobs in name order, as TensorFlow's ClusterSpec writes them. */
export function encodeServerDef(d: ServerDefInput): Uint8Array {
  const jobs = Object.keys(d.cluster)
    .sort()
    .map((name) => {
      const addrs = d.cluster[name]!;
      const tasks: number[] = [];
      // Map entries key-descending, as Python's deterministic serializer writes them; a map entry writes its key
      // even when it is 0.
      for (let i = addrs.length - 1; i >= 0; i--) {
        tasks.push(...bytesField(JOB_DEF.tasks, [...key(MAP_ENTRY.key, VARINT), ...varint(i), ...stringField(MAP_ENTRY.value, addrs[i]!)]));
      }
      return bytesField(CLUSTER_DEF_JOB, [...stringField(JOB_DEF.name, name), ...tasks]);
    });
  const config = [
    ...d.deviceFilters.flatMap((f) => stringField(CONFIG_PROTO.deviceFilters, f)),
    ...bytesField(CONFIG_PROTO.experimental, stringField(EXPERIMENTAL.collectiveGroupLeader, d.collectiveGroupLeader)),
  ];
  return Uint8Array.from([
    ...bytesField(SERVER_DEF.cluster, jobs.flat()),
    ...stringField(SERVER_DEF.jobName, d.jobName),
    ...intField(SERVER_DEF.taskIndex, d.taskIndex),
    ...bytesField(SERVER_DEF.defaultSessionConfig, config),
    ...stringField(SERVER_DEF.protocol, d.protocol ?? 'grpc'),
    ...intField(SERVER_DEF.port, d.port),
  ]);
}

/** The ServerDef for this task of a parsed TF_CONFIG (what MultiWorkerMirroredStrategy would send). */
export function serverDefForCluster(c: ClusterConfig): Uint8Array {
  return encodeServerDef({
    cluster: c.cluster,
    jobName: c.task.job,
    taskIndex: c.task.index,
    port: c.port,
    collectiveGroupLeader: c.groupLeader,
    deviceFilters: [`/job:${c.task.job}/task:${c.task.index}`],
  });
}

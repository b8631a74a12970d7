/**
 * One API over every checkpoint format the model packages load: a safetensors file, a sharded
 * safetensors index (diffusers layout) or a PyTorch zip checkpoint (`.pth`/`.pt`/`.bin`).
 * Real checkpoints nest the state dict (`module`, `model`, `state_dict`, `encoder`) and prefix the keys
 * (`module.`, `encoder.`): `openCheckpoint` never guesses — pass `key` and `stripPrefix`, or explicitly
 * `key: findStateDict`. Reads stay lazy: each `CheckpointTensor.read()` reads one tensor from disk.
 */
import fs from 'node:fs';
import path from 'node:path';
import { PickleDict, PickleGlobal, PickleOpaque, TorchStorageRef, TorchTensorRef, type PickleValue } from './pickle.js';
import { PthFile, collectTensors, keyText, sniffTorchFormat } from './pth.js';
import { DTYPE_BYTES, SafetensorsFile } from './safetensors.js';
import { ShardedSafetensors, findShardIndex } from './sharded.js';
import {
  CheckpointError,
  checkpointFromSafetensors,
  findStateDict,
  stripCheckpointPrefix,
  type Checkpoint,
  type CheckpointFormat,
  type CheckpointTensor,
  type OpenCheckpointOptions,
} from './checkpoint-source.js';

export * from './checkpoint-source.js';

/** What a path holds, from its name and first bytes. `path` may be a folder with one shard index. */
export function detectCheckpointFormat(p: string): { format: CheckpointFormat; file: string } {
  let st: fs.Stats;
  try {
    st = fs.statSync(p);
  } catch (e) {
    throw new CheckpointError(p, `cannot open (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
  }
  if (st.isDirectory()) {
    const idx = findShardIndex(p);
    if (idx) return { format: 'safetensors-sharded', file: idx };
    const single = fs.readdirSync(p).filter((f) => f.endsWith('.safetensors'));
    if (single.length === 1) return { format: 'safetensors', file: path.join(p, single[0]!) };
    throw new CheckpointError(p, 'is a folder without exactly one *.safetensors.index.json or *.safetensors file');
  }
  if (p.endsWith('.index.json')) return { format: 'safetensors-sharded', file: p };
  const head = new Uint8Array(512);
  const fd = fs.openSync(p, 'r');
  let got: number;
  try {
    got = fs.readSync(fd, head, 0, 512, 0);
  } finally {
    fs.closeSync(fd);
  }
  const kind = sniffTorchFormat(head.subarray(0, got));
  if (kind !== 'unknown') return { format: 'pytorch', file: p };
  if (got >= 9 && head[8] === 0x7b /* { */) return { format: 'safetensors', file: p };
  if (p.endsWith('.safetensors')) return { format: 'safetensors', file: p };
  throw new CheckpointError(p, 'is neither safetensors, a safetensors shard index, nor a PyTorch zip checkpoint');
}

/** Open a checkpoint for lazy, tensor-by-tensor reading. Call `close()` when done. */
export function openCheckpoint(p: string, opts: OpenCheckpointOptions = {}): Checkpoint {
  const { format, file } = detectCheckpointFormat(p);
  if (format === 'pytorch') return openPth(file, opts);
  return checkpointFromSafetensors(format === 'safetensors' ? SafetensorsFile.open(file) : ShardedSafetensors.open(file), file, format, opts);
}


function openPth(file: string, opts: OpenCheckpointOptions): Checkpoint {
  const pth = PthFile.open(file, { allowGlobals: opts.allowGlobals });
  try {
    const tree = summarizeTree(pth.root);
    const key = typeof opts.key === 'function' ? opts.key(tree) : opts.key;
    let node: PickleValue;
    let base = '';
    if (key === undefined) {
      if (!isFlatStateDict(pth.root)) {
        const suggestion = safeFind(tree);
        throw new CheckpointError(
          file,
          `the state dict is nested, not at the top level; top-level keys: ${describeTopLevel(pth.root)}. ` +
            `Pass key (e.g. { key: '${suggestion ?? 'model'}' }, CLI --key ${suggestion ?? 'model'}) to say where it sits` +
            (suggestion !== undefined ? ` — '${suggestion}' holds the most tensors` : '') +
            ', or key: findStateDict to pick it automatically',
        );
      }
      node = pth.root;
    } else {
      const r = resolveKey(file, pth.root, key);
      node = r.node;
      base = r.path;
    }
    if (node instanceof TorchTensorRef || !(node instanceof PickleDict || Array.isArray(node))) {
      throw new CheckpointError(file, `key '${key}' selects ${summarizeTree(node)}, not a dict of tensors`);
    }
    const refs = collectTensors(node);
    if (refs.size === 0) throw new CheckpointError(file, `key '${key ?? ''}' selects a ${describeShort(node)} without any tensor`);
    const raw: CheckpointTensor[] = [...refs].map(([name, ref]) => ({
      name,
      sourceName: base ? `${base}.${name}` : name,
      dtype: ref.dtype,
      shape: [...ref.shape],
      byteLength: ref.numel * DTYPE_BYTES[ref.dtype],
      read: () => pth.readTensor(ref),
    }));
    const tensors = stripCheckpointPrefix(file, raw, opts.stripPrefix);
    return { path: file, format: 'pytorch', metadata: {}, tree, tensors, close: () => pth.close() };
  } catch (e) {
    pth.close();
    throw e;
  }
}


/** A dict whose values are all tensors (at least one). */
function isFlatStateDict(v: PickleValue): boolean {
  if (!(v instanceof PickleDict) || v.map.size === 0) return false;
  for (const x of v.map.values()) if (!(x instanceof TorchTensorRef)) return false;
  return true;
}

/**
 * Follow a dotted path through dicts (and list indices). Dict keys may themselves contain dots
 * (`'module.blocks.0'`), so the longest key that matches the next part of the path wins.
 */
function resolveKey(file: string, root: PickleValue, key: string): { node: PickleValue; path: string } {
  if (key === '') return { node: root, path: '' };
  const parts = key.split('.');
  let node = root;
  let i = 0;
  const walked: string[] = [];
  while (i < parts.length) {
    let matched = false;
    for (let j = parts.length; j > i; j--) {
      const k = parts.slice(i, j).join('.');
      let next: PickleValue | undefined;
      if (node instanceof PickleDict) {
        next = node.map.get(k);
        if (next === undefined) for (const [kk, vv] of node.map) if (keyText(kk) === k) next = vv;
      } else if (Array.isArray(node) && /^\d+$/.test(k) && Number(k) < node.length) next = node[Number(k)];
      if (next !== undefined) {
        node = next;
        walked.push(k);
        i = j;
        matched = true;
        break;
      }
    }
    if (!matched) {
      const here = walked.length ? `'${walked.join('.')}'` : 'the top level';
      const keys = node instanceof PickleDict ? describeTopLevel(node) : `a ${describeShort(node)}`;
      throw new CheckpointError(file, `key '${key}' not found: at ${here} there is no '${parts.slice(i).join('.')}' (keys there: ${keys})`);
    }
  }
  return { node, path: walked.join('.') };
}

function describeShort(v: PickleValue): string {
  if (v instanceof PickleDict) return `dict of ${v.map.size}`;
  if (Array.isArray(v)) return `list of ${v.length}`;
  const s = summarizeTree(v);
  return typeof s === 'string' ? s : String(s);
}

function describeTopLevel(v: PickleValue): string {
  if (!(v instanceof PickleDict)) return `(not a dict: ${describeShort(v)})`;
  const parts: string[] = [];
  for (const [k, x] of v.map) {
    let d: string;
    if (x instanceof TorchTensorRef) d = `tensor [${x.shape.join(', ')}]`;
    else if (x instanceof PickleDict || Array.isArray(x)) {
      const n = collectTensors(x).size;
      d = `${describeShort(x)}, ${n} tensors`;
    } else d = String(summarizeTree(x));
    parts.push(`'${keyText(k)}' (${d})`);
    if (parts.length >= 12) {
      parts.push(`… ${v.map.size - 12} more`);
      break;
    }
  }
  return parts.join(', ');
}


/** Most nodes a structure summary holds; the rest is shown as '<…>'. */
export const MAX_SUMMARY_NODES = 200_000;

/**
 * The structure of an unpickled object for people and for `findStateDict`: dicts become objects,
 * lists arrays, tensors the string `tensor [shape] dtype`, strings are JSON-quoted, numbers stay numbers.
 */
export function summarizeTree(v: PickleValue, depth = 0, seen = new Set<unknown>(), budget = { left: MAX_SUMMARY_NODES }): unknown {
  if (--budget.left < 0) return '<…>';
  if (v instanceof TorchTensorRef) return `tensor [${v.shape.join(', ')}] ${v.dtype}`;
  if (v === null || typeof v === 'boolean' || typeof v === 'number') return v;
  if (typeof v === 'bigint') return v.toString();
  if (typeof v === 'string') return JSON.stringify(v);
  if (v instanceof Uint8Array) return `bytes(${v.length})`;
  if (v instanceof TorchStorageRef) return `storage ${v.storageType}`;
  if (v instanceof PickleGlobal) return `<${v.global}>`;
  if (v instanceof PickleOpaque) return `<${v.global} object>`;
  if (seen.has(v) || depth > 64) return '<cycle>';
  seen.add(v);
  let out: unknown;
  if (Array.isArray(v)) out = v.map((x) => summarizeTree(x, depth + 1, seen, budget));
  else {
    const o: Record<string, unknown> = {};
    for (const [k, x] of v.map) o[keyText(k)] = summarizeTree(x, depth + 1, seen, budget);
    out = o;
  }
  seen.delete(v);
  return out;
}


function safeFind(tree: unknown): string | undefined {
  try {
    return findStateDict(tree);
  } catch {
    return undefined;
  }
}


/** Open, run `fn`, close. */
export function withCheckpoint<T>(p: string, opts: OpenCheckpointOptions, fn: (c: Checkpoint) => T): T {
  const c = openCheckpoint(p, opts);
  try {
    return fn(c);
  } finally {
    c.close();
  }
}

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
import { DTYPE_BYTES, SafetensorsFile, type HostTensor, type SafetensorsDtype } from './safetensors.js';
import { ShardedSafetensors, findShardIndex } from './sharded.js';

export type CheckpointFormat = 'safetensors' | 'safetensors-sharded' | 'pytorch';

export interface CheckpointTensor {
  /** name after key selection and prefix stripping */
  name: string;
  /** the name inside the file (full dotted path for .pth) */
  sourceName: string;
  /** dtype as stored (F16/BF16 are widened to float32 by `read`) */
  dtype: SafetensorsDtype;
  shape: number[];
  /** stored bytes (elements × dtype size) */
  byteLength: number;
  read(): HostTensor;
}

export interface Checkpoint {
  path: string;
  format: CheckpointFormat;
  metadata: Record<string, string>;
  /** nested structure summary for .pth (keys → 'tensor [shape] dtype' | sub-tree | scalar; strings quoted) */
  tree?: unknown;
  /** after key selection and prefix stripping, in file order */
  tensors: Map<string, CheckpointTensor>;
  close(): void;
}

export class CheckpointError extends Error {
  constructor(
    readonly file: string,
    message: string,
  ) {
    super(`${file}: ${message}`);
    this.name = 'CheckpointError';
  }
}

export interface OpenCheckpointOptions {
  /**
   * Where the state dict sits: a dotted path (`module`, `model`, `state_dict`, `model.encoder`), or a
   * function of the structure summary that returns one (e.g. `findStateDict`). For safetensors files the
   * key selects the tensors named `<key>.…` (and removes that part). '' means the top level.
   */
  key?: string | ((tree: unknown) => string);
  /** removed from every tensor name that starts with it; an error if no name does */
  stripPrefix?: string;
  /** extra pickle globals to accept as inert data (e.g. 'argparse.Namespace'); never called */
  allowGlobals?: string[];
}

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
  const src = format === 'safetensors' ? SafetensorsFile.open(file) : ShardedSafetensors.open(file);
  try {
    const raw: CheckpointTensor[] = src.keys().map((name) => {
      const info = src.info(name);
      return {
        name,
        sourceName: name,
        dtype: info.dtype,
        shape: [...info.shape],
        byteLength: info.end - info.begin,
        read: () => src.read(name),
      };
    });
    let selected = raw;
    const key = typeof opts.key === 'function' ? opts.key(flatTree(raw)) : opts.key;
    if (key) {
      const pre = `${key}.`;
      selected = raw.filter((t) => t.name.startsWith(pre)).map((t) => ({ ...t, name: t.name.slice(pre.length) }));
      if (!selected.length) {
        throw new CheckpointError(file, `key '${key}' selects nothing: no tensor name starts with '${pre}' (top-level names: ${topLevel(raw.map((t) => t.name))})`);
      }
    }
    const tensors = strip(file, selected, opts.stripPrefix);
    return { path: file, format, metadata: { ...src.metadata }, tensors, close: () => src.close() };
  } catch (e) {
    src.close();
    throw e;
  }
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
    const tensors = strip(file, raw, opts.stripPrefix);
    return { path: file, format: 'pytorch', metadata: {}, tree, tensors, close: () => pth.close() };
  } catch (e) {
    pth.close();
    throw e;
  }
}

function strip(file: string, list: CheckpointTensor[], prefix: string | undefined): Map<string, CheckpointTensor> {
  const out = new Map<string, CheckpointTensor>();
  if (prefix && !list.some((t) => t.name.startsWith(prefix))) {
    throw new CheckpointError(
      file,
      `stripPrefix '${prefix}' matches no tensor name (${list.length} names, e.g. ${list.slice(0, 3).map((t) => `'${t.name}'`).join(', ')})`,
    );
  }
  for (const t of list) {
    const name = prefix && t.name.startsWith(prefix) ? t.name.slice(prefix.length) : t.name;
    if (out.has(name)) {
      throw new CheckpointError(file, `after stripping '${prefix}', '${out.get(name)!.sourceName}' and '${t.sourceName}' both become '${name}'`);
    }
    out.set(name, { ...t, name });
  }
  return out;
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

function topLevel(names: string[]): string {
  const tops = [...new Set(names.map((n) => n.split('.')[0]!))];
  return tops.slice(0, 12).join(', ') + (tops.length > 12 ? ', …' : '');
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

/** A safetensors file as a summary tree: flat, one entry per tensor (it is a state dict at the top level). */
function flatTree(list: CheckpointTensor[]): unknown {
  const root: Record<string, unknown> = {};
  for (const t of list) root[t.name] = `tensor [${t.shape.join(', ')}] ${t.dtype}`;
  return root;
}

const isTensorLeaf = (x: unknown) => typeof x === 'string' && x.startsWith('tensor [');

/** Every dict in a summary tree that directly holds tensors: dotted path and tensor count, in order. */
export function stateDictCandidates(tree: unknown): { key: string; tensors: number }[] {
  const out: { key: string; tensors: number }[] = [];
  const walk = (node: unknown, p: string, depth: number) => {
    if (typeof node !== 'object' || node === null || depth > 64) return;
    const values = Array.isArray(node) ? node : Object.values(node);
    const n = values.filter(isTensorLeaf).length;
    if (n > 0 && !Array.isArray(node)) out.push({ key: p, tensors: n });
    const entries = Array.isArray(node) ? node.map((x, i) => [String(i), x] as const) : Object.entries(node);
    for (const [k, x] of entries) walk(x, p ? `${p}.${k}` : k, depth + 1);
  };
  walk(tree, '', 0);
  return out;
}

/**
 * The dotted key of the most likely state dict in a structure summary (`Checkpoint.tree`, or what
 * `key` functions receive): the dict with the most tensors directly inside it; the first one wins a tie
 * (so `encoder` before `target_encoder`). '' is the top level. Throws when no dict holds tensors.
 * Only used when called explicitly — `openCheckpoint` never guesses.
 */
export function findStateDict(tree: unknown): string {
  const c = stateDictCandidates(tree);
  if (!c.length) throw new Error('findStateDict: no dict in the checkpoint holds tensors');
  let best = c[0]!;
  for (const x of c) if (x.tensors > best.tensors) best = x;
  return best.key;
}

function safeFind(tree: unknown): string | undefined {
  try {
    return findStateDict(tree);
  } catch {
    return undefined;
  }
}

/** Read every tensor of a checkpoint into memory (float types widened to float32, F64 kept). */
export function loadHostTensors(ckpt: Checkpoint): Map<string, HostTensor> {
  const out = new Map<string, HostTensor>();
  for (const [name, t] of ckpt.tensors) out.set(name, t.read());
  return out;
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

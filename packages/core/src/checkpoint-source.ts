/**
 * The format-independent half of checkpoints: the `Checkpoint` view, key selection and prefix stripping
 * over a safetensors source, state-dict discovery in a structure summary, and `openCheckpointBytes`
 * for a safetensors file held in memory (browsers: a dropped or fetched file). No file system here;
 * `checkpoint.ts` adds files, shards and `.pth` for Node.
 */
import { SafetensorsBytes, type HostTensor, type SafetensorsDtype, type TensorInfo } from './safetensors-bytes.js';

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

/** What `checkpointFromSafetensors` reads from: a safetensors file, shard set, or bytes. */
export interface SafetensorsSource {
  keys(): string[];
  info(name: string): Pick<TensorInfo, 'dtype' | 'shape' | 'begin' | 'end'>;
  read(name: string): HostTensor;
  metadata: Record<string, string>;
  close(): void;
}

/**
 * A safetensors source as a Checkpoint: `opts.key` selects the tensors named `<key>.…` (and removes that
 * part), `opts.stripPrefix` is removed from every name. Closes `src` when it throws.
 */
export function checkpointFromSafetensors(src: SafetensorsSource, file: string, format: CheckpointFormat, opts: OpenCheckpointOptions = {}): Checkpoint {
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
    const tensors = stripCheckpointPrefix(file, selected, opts.stripPrefix);
    return { path: file, format, metadata: { ...src.metadata }, tensors, close: () => src.close() };
  } catch (e) {
    src.close();
    throw e;
  }
}

/**
 * A checkpoint held in memory: the bytes of a safetensors file (a `.pth` zip needs Node's file reader).
 * `name` is used in error messages and as the checkpoint's `path`.
 */
export function openCheckpointBytes(data: ArrayBuffer | ArrayBufferView, opts: OpenCheckpointOptions & { name?: string } = {}): Checkpoint {
  const name = opts.name ?? 'checkpoint bytes';
  const bytes = data instanceof ArrayBuffer ? new Uint8Array(data) : new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  if (bytes.length >= 4 && bytes[0] === 0x50 && bytes[1] === 0x4b) {
    throw new CheckpointError(name, 'is a PyTorch zip checkpoint; in memory only safetensors bytes are read (convert it with `vrepa convert`, or open the file with openCheckpoint in Node)');
  }
  return checkpointFromSafetensors(SafetensorsBytes.from(bytes, name), name, 'safetensors', opts);
}

/** Remove `prefix` from every name (an error if none has it or two names collide). */
export function stripCheckpointPrefix(file: string, list: CheckpointTensor[], prefix: string | undefined): Map<string, CheckpointTensor> {
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

function topLevel(names: string[]): string {
  const tops = [...new Set(names.map((n) => n.split('.')[0]!))];
  return tops.slice(0, 12).join(', ') + (tops.length > 12 ? ', …' : '');
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

/** Read every tensor of a checkpoint into memory (float types widened to float32, F64 kept). */
export function loadHostTensors(ckpt: Checkpoint): Map<string, HostTensor> {
  const out = new Map<string, HostTensor>();
  for (const [name, t] of ckpt.tensors) out.set(name, t.read());
  return out;
}

/**
 * PyTorch checkpoint reader for the zip format `torch.save` writes since torch 1.6 (`.pth`, `.pt`, `.bin`):
 * `<archive>/data.pkl` (the pickled object, read with the restricted unpickler in pickle.ts) and one
 * `<archive>/data/<key>` entry per storage. Tensors are read lazily, one at a time; strided views are
 * materialised in C order. Legacy (pre-1.6) files are recognised and refused with a conversion recipe.
 */
import fs from 'node:fs';
import os from 'node:os';
import { DTYPE_BYTES, decodeBytes, decodeOwnedBytes, type HostTensor, type TensorArray } from './safetensors.js';
import { PickleDict, TorchTensorRef, unpickle, type PickleValue, type UnpickleOptions } from './pickle.js';
import { ZipError, ZipReader } from './zip.js';

export class PthError extends Error {
  constructor(
    readonly file: string,
    message: string,
  ) {
    super(`${file}: ${message}`);
    this.name = 'PthError';
  }
}

/** The pickled magic number that starts a legacy (non-zip) torch file: 0x1950a86a20f9469cfc6c as LONG1. */
const LEGACY_MAGIC = [0x8a, 0x0a, 0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19];

export const LEGACY_ADVICE =
  'convert it once with torch >= 1.6: `torch.save(torch.load(path, map_location="cpu", weights_only=True), new_path)` ' +
  '(the zip format is the default since 1.6; with older code pass `_use_new_zipfile_serialization=True`)';

/** What kind of file the first bytes say this is. */
export function sniffTorchFormat(head: Uint8Array): 'zip' | 'legacy' | 'legacy-tar' | 'unknown' {
  if (ZipReader.isZip(head)) return 'zip';
  // pickle PROTO n then the magic number as LONG1
  if (head.length >= 2 + LEGACY_MAGIC.length && head[0] === 0x80 && LEGACY_MAGIC.every((b, i) => head[2 + i] === b)) return 'legacy';
  if (head.length >= 262 && String.fromCharCode(...head.subarray(257, 262)) === 'ustar') return 'legacy-tar';
  return 'unknown';
}

export interface PthOptions extends Pick<UnpickleOptions, 'allowGlobals'> {}

export class PthFile {
  private constructor(
    readonly path: string,
    private zip: ZipReader,
    /** the archive's top folder (`archive/` or the file stem), with a trailing slash */
    readonly prefix: string,
    /** the unpickled object: dicts, lists, scalars and `TorchTensorRef`s */
    readonly root: PickleValue,
  ) {}

  static open(path: string, opts: PthOptions = {}): PthFile {
    let head: Uint8Array;
    try {
      const fd = fs.openSync(path, 'r');
      try {
        head = new Uint8Array(512);
        const got = fs.readSync(fd, head, 0, 512, 0);
        head = head.subarray(0, got);
      } finally {
        fs.closeSync(fd);
      }
    } catch (e) {
      throw new PthError(path, `cannot open (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
    }
    const kind = sniffTorchFormat(head);
    if (kind === 'legacy' || kind === 'legacy-tar') {
      throw new PthError(path, `is a legacy (pre-1.6, non-zip${kind === 'legacy-tar' ? ', tar' : ''}) PyTorch checkpoint, which is not supported; ${LEGACY_ADVICE}`);
    }
    if (kind !== 'zip') throw new PthError(path, 'is not a PyTorch zip checkpoint (no zip header; expected a file written by torch.save with torch >= 1.6)');
    if (os.endianness() !== 'LE') throw new PthError(path, 'reading PyTorch checkpoints needs a little-endian machine');
    let zip: ZipReader;
    try {
      zip = ZipReader.open(path);
    } catch (e) {
      if (e instanceof ZipError) throw new PthError(path, `is not a readable zip archive: ${e.message.slice(path.length + 2)}`);
      throw e;
    }
    try {
      const pkls = zip.names().filter((n) => /^[^/]+\/data\.pkl$/.test(n));
      if (pkls.length !== 1) {
        throw new PthError(path, `expected exactly one '<archive>/data.pkl' entry in the zip, found ${pkls.length} (is this a torch.save file?)`);
      }
      const prefix = pkls[0]!.slice(0, -'data.pkl'.length);
      const order = zip.entries.get(`${prefix}byteorder`);
      if (order) {
        const bo = new TextDecoder().decode(zip.read(`${prefix}byteorder`)).trim();
        if (bo !== 'little') throw new PthError(path, `storages are ${bo}-endian; only little-endian checkpoints are supported`);
      }
      const root = unpickle(zip.read(pkls[0]!), { file: `${path}:${pkls[0]}`, allowGlobals: opts.allowGlobals });
      const f = new PthFile(path, zip, prefix, root);
      f.checkStorages(root);
      return f;
    } catch (e) {
      zip.close();
      throw e;
    }
  }

  /** Every storage the pickle references must exist with at least the declared bytes. */
  private checkStorages(root: PickleValue): void {
    for (const [name, t] of collectTensors(root, '', this.path)) {
      const entry = `${this.prefix}data/${t.storage.key}`;
      const e = this.zip.entries.get(entry);
      const need = t.storage.numel * DTYPE_BYTES[t.dtype];
      if (!e) throw new PthError(this.path, `tensor '${name}' uses storage '${t.storage.key}', but the archive has no entry '${entry}'`);
      if (e.size < need) {
        throw new PthError(this.path, `storage '${entry}' of tensor '${name}' has ${e.size} bytes, its ${t.storage.numel} ${t.storage.storageType} elements need ${need}`);
      }
    }
  }

  /** Read one tensor: C-order data, floats widened to float32 (F64 kept), like the safetensors reader. */
  readTensor(t: TorchTensorRef): HostTensor {
    const esz = DTYPE_BYTES[t.dtype];
    const entry = `${this.prefix}data/${t.storage.key}`;
    const numel = t.numel;
    if (numel === 0) return { dtype: t.dtype, shape: [...t.shape], data: decodeBytes(t.dtype, new Uint8Array(0)) };
    if (t.isContiguous()) {
      const bytes = this.zip.readRange(entry, t.offset * esz, numel * esz, Buffer.allocUnsafeSlow(numel * esz));
      return { dtype: t.dtype, shape: [...t.shape], data: decodeOwnedBytes(t.dtype, bytes) };
    }
    // Strided view: read the covering run of the storage, then gather in C order.
    let hi = t.offset;
    for (let i = 0; i < t.shape.length; i++) hi += (t.shape[i]! - 1) * t.stride[i]!;
    const span = hi - t.offset + 1;
    const covering = decodeOwnedBytes(t.dtype, this.zip.readRange(entry, t.offset * esz, span * esz, Buffer.allocUnsafeSlow(span * esz)));
    const out = new (covering.constructor as new (n: number) => TensorArray)(numel);
    const rank = t.shape.length;
    const idx = new Array<number>(rank).fill(0);
    let src = 0;
    for (let k = 0; k < numel; k++) {
      (out as unknown as ArrayLike<unknown> & Record<number, unknown>)[k] = covering[src];
      for (let d = rank - 1; d >= 0; d--) {
        idx[d]!++;
        src += t.stride[d]!;
        if (idx[d]! < t.shape[d]!) break;
        src -= t.stride[d]! * t.shape[d]!;
        idx[d] = 0;
      }
    }
    return { dtype: t.dtype, shape: [...t.shape], data: out };
  }

  close(): void {
    this.zip.close();
  }
}

/**
 * Most nodes a walk over an unpickled structure visits. Pickles can share sub-structures, so a small
 * file can describe a structure with exponentially many paths (a "pickle bomb"); walks stop here.
 */
export const MAX_TREE_VISITS = 1_000_000;

/** Every tensor in an unpickled tree with its dotted path (dict keys and list indices joined by '.'). */
export function collectTensors(root: PickleValue, prefix = '', file = 'checkpoint'): Map<string, TorchTensorRef> {
  const out = new Map<string, TorchTensorRef>();
  const seen = new Set<unknown>();
  let visits = 0;
  const walk = (v: PickleValue, path: string) => {
    if (++visits > MAX_TREE_VISITS) {
      throw new PthError(file, `the pickled structure has more than ${MAX_TREE_VISITS} nodes once shared parts are expanded (a pickle bomb?); refusing to walk it`);
    }
    if (v instanceof TorchTensorRef) {
      out.set(path, v);
      return;
    }
    if (v === null || typeof v !== 'object' || seen.has(v)) return;
    seen.add(v);
    if (v instanceof PickleDict) {
      for (const [k, x] of v.map) walk(x, path ? `${path}.${keyText(k)}` : keyText(k));
    } else if (Array.isArray(v)) {
      v.forEach((x, i) => walk(x, path ? `${path}.${i}` : String(i)));
    }
    seen.delete(v);
  };
  walk(root, prefix);
  return out;
}

export function keyText(k: unknown): string {
  if (typeof k === 'string') return k;
  if (Array.isArray(k)) return `(${k.map(keyText).join(', ')})`;
  return String(k);
}

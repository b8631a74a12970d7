/**
 * PyTorch checkpoint writer: the zip format `torch.save` writes (torch ≥ 1.6), readable by `torch.load`
 * (also with `weights_only=True`) and by `PthFile`.
 *
 * Archive `archive/`: `data.pkl` (pickle protocol 2 of the object), `byteorder` (`little`), one
 * `data/<i>` entry per tensor (its little-endian C-order bytes) and `version` (`3`). Tensors are
 * pickled as `torch._utils._rebuild_tensor_v2(storage, 0, size, stride, False, OrderedDict())` with
 * the storage as a persistent id `('storage', torch.<Type>Storage, '<i>', 'cpu', numel)`, exactly the
 * globals a weights-only load allows. Entries are stored (not deflated); the file is written to a temp
 * name in the same folder, fsynced and renamed, so a failed write leaves nothing behind.
 */
import fs from 'node:fs';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { TORCH_STORAGE_DTYPES } from './pickle.js';
import { DTYPE_BYTES, hostToStreamEntry, type HostTensor, type SafetensorsDtype } from './safetensors.js';
import { writeZip, type ZipInput } from './zip.js';

/**
 * What `writePth` can pickle: `Map` → `collections.OrderedDict` (state dicts), plain objects → dict,
 * arrays → list, tensors (tf or host) → torch tensors, strings, finite numbers (integers → int, others →
 * float), booleans, null.
 */
export type PthValue = null | boolean | number | string | tf.Tensor | HostTensor | PthValue[] | Map<string, PthValue> | { [key: string]: PthValue };

const STORAGE_OF: Partial<Record<SafetensorsDtype, string>> = Object.fromEntries(Object.entries(TORCH_STORAGE_DTYPES).map(([s, d]) => [d, s]));

const isHost = (x: unknown): x is HostTensor => !!x && typeof x === 'object' && !(x instanceof tf.Tensor) && 'dtype' in x && 'shape' in x && 'data' in x && ArrayBuffer.isView((x as HostTensor).data);

/** Growable byte buffer with the pickle opcodes we emit. */
class PickleWriter {
  private buf = new Uint8Array(1024);
  private n = 0;
  private ensure(k: number) {
    if (this.n + k <= this.buf.length) return;
    const next = new Uint8Array(Math.max(this.buf.length * 2, this.n + k));
    next.set(this.buf.subarray(0, this.n));
    this.buf = next;
  }
  byte(...bs: number[]) {
    this.ensure(bs.length);
    for (const b of bs) this.buf[this.n++] = b;
  }
  bytes(b: Uint8Array) {
    this.ensure(b.length);
    this.buf.set(b, this.n);
    this.n += b.length;
  }
  op(c: string) {
    this.byte(c.charCodeAt(0));
  }
  global(mod: string, name: string) {
    this.op('c');
    this.bytes(new TextEncoder().encode(`${mod}\n${name}\n`));
  }
  str(s: string) {
    const b = new TextEncoder().encode(s);
    this.op('X');
    const len = new Uint8Array(4);
    new DataView(len.buffer).setUint32(0, b.length, true);
    this.bytes(len);
    this.bytes(b);
  }
  int(v: number) {
    if (v >= 0 && v < 256) return this.byte(0x4b /* K */, v);
    if (v >= 0 && v < 65536) return this.byte(0x4d /* M */, v & 0xff, v >> 8);
    if (v >= -(2 ** 31) && v < 2 ** 31) {
      const b = new Uint8Array(5);
      b[0] = 0x4a; /* J */
      new DataView(b.buffer).setInt32(1, v, true);
      return this.bytes(b);
    }
    // LONG1: little-endian two's complement, 8 bytes is enough for safe integers
    const b = new Uint8Array(10);
    b[0] = 0x8a;
    b[1] = 8;
    new DataView(b.buffer).setBigInt64(2, BigInt(v), true);
    this.bytes(b);
  }
  float(v: number) {
    const b = new Uint8Array(9);
    b[0] = 0x47; /* G */
    new DataView(b.buffer).setFloat64(1, v, false);
    this.bytes(b);
  }
  result(): Uint8Array {
    return this.buf.slice(0, this.n);
  }
}

const MARK = '(';

/** Serialise `root` as pickle protocol 2; tensors are handed to `onTensor`, which returns their storage key. */
function pickleTorch(root: PthValue, onTensor: (t: tf.Tensor | HostTensor, where: string) => { key: string; dtype: SafetensorsDtype; shape: number[] }): Uint8Array {
  const w = new PickleWriter();
  w.byte(0x80, 2);
  const seen = new Set<object>();
  const emit = (v: PthValue, where: string): void => {
    if (v === null || v === undefined) return w.op('N');
    if (typeof v === 'boolean') return w.byte(v ? 0x88 : 0x89);
    if (typeof v === 'number') {
      if (!Number.isFinite(v)) throw new Error(`writePth: ${where} is ${v}; only finite numbers can be written`);
      return Number.isSafeInteger(v) ? w.int(v) : w.float(v);
    }
    if (typeof v === 'string') return w.str(v);
    if (v instanceof tf.Tensor || isHost(v)) {
      const { key, dtype, shape } = onTensor(v, where);
      const storage = STORAGE_OF[dtype];
      if (!storage) throw new Error(`writePth: ${where} has dtype ${dtype}, which has no torch storage type`);
      const numel = shape.reduce((a, b) => a * b, 1);
      const stride = shape.map((_, i) => shape.slice(i + 1).reduce((a, b) => a * b, 1));
      w.global('torch._utils', '_rebuild_tensor_v2');
      w.op(MARK);
      // persistent id ('storage', torch.<Type>Storage, key, 'cpu', numel)
      w.op(MARK);
      w.str('storage');
      w.global('torch', storage);
      w.str(key);
      w.str('cpu');
      w.int(numel);
      w.op('t');
      w.op('Q');
      w.int(0);
      w.op(MARK);
      for (const d of shape) w.int(d);
      w.op('t');
      w.op(MARK);
      for (const s of stride) w.int(s);
      w.op('t');
      w.byte(0x89);
      w.global('collections', 'OrderedDict');
      w.op(')');
      w.op('R');
      w.op('t');
      w.op('R');
      return;
    }
    if (typeof v !== 'object') throw new Error(`writePth: ${where} is a ${typeof v}, which cannot be written`);
    if (seen.has(v)) throw new Error(`writePth: ${where} refers back to a container that holds it (cycles cannot be written)`);
    seen.add(v);
    try {
      if (Array.isArray(v)) {
        w.op(']');
        if (v.length) {
          w.op(MARK);
          v.forEach((x, i) => emit(x, `${where}[${i}]`));
          w.op('e');
        }
        return;
      }
      const entries: Array<[string, PthValue]> = v instanceof Map ? [...v.entries()] : Object.entries(v);
      if (v instanceof Map) {
        w.global('collections', 'OrderedDict');
        w.op(')');
        w.op('R');
      } else w.op('}');
      if (entries.length) {
        w.op(MARK);
        for (const [k, x] of entries) {
          if (typeof k !== 'string') throw new Error(`writePth: ${where} has a non-string key`);
          w.str(k);
          emit(x, where ? `${where}.${k}` : k);
        }
        w.op('u');
      }
    } finally {
      seen.delete(v);
    }
  };
  emit(root, '');
  w.op('.');
  return w.result();
}

function tensorBytes(t: tf.Tensor | HostTensor, where: string): { dtype: SafetensorsDtype; shape: number[]; bytes: Uint8Array } {
  if (t instanceof tf.Tensor) {
    if (t.isDisposed) throw new Error(`writePth: tensor ${where} is disposed`);
    if (t.dtype === 'float32') return { dtype: 'F32', shape: t.shape.slice(), bytes: new Uint8Array(Float32Array.from(t.dataSync() as Float32Array).buffer) };
    if (t.dtype === 'int32') return { dtype: 'I32', shape: t.shape.slice(), bytes: new Uint8Array(Int32Array.from(t.dataSync() as Int32Array).buffer) };
    if (t.dtype === 'bool') return { dtype: 'BOOL', shape: t.shape.slice(), bytes: Uint8Array.from(t.dataSync() as Uint8Array) };
    throw new Error(`writePth: tensor ${where} has dtype ${t.dtype}, which cannot be written`);
  }
  if (!Object.hasOwn(DTYPE_BYTES, t.dtype)) throw new Error(`writePth: tensor ${where} has unknown dtype ${JSON.stringify(t.dtype)}`);
  const e = hostToStreamEntry(where, t);
  return { dtype: e.dtype, shape: e.shape, bytes: e.bytes() };
}

/**
 * Write `root` (typically `{ model: Map<name, tensor>, ... }`) as a PyTorch zip checkpoint at `file`,
 * atomically. Tensors are written as contiguous float32/… storages, one per tensor.
 */
export function writePth(file: string, root: PthValue): void {
  const entries: ZipInput[] = [];
  const data: ZipInput[] = [];
  const pkl = pickleTorch(root, (t, where) => {
    const key = String(data.length);
    const { dtype, shape, bytes } = tensorBytes(t, where || 'root');
    data.push({ name: `archive/data/${key}`, data: bytes });
    return { key, dtype, shape };
  });
  const enc = new TextEncoder();
  entries.push({ name: 'archive/data.pkl', data: pkl }, { name: 'archive/byteorder', data: enc.encode('little') }, ...data, { name: 'archive/version', data: enc.encode('3\n') });
  const dir = path.dirname(path.resolve(file));
  const tmp = path.join(dir, `.${path.basename(file)}.${process.pid}.${Date.now()}.tmp`);
  try {
    writeZip(tmp, entries);
    const fd = fs.openSync(tmp, 'r+');
    try {
      fs.fsyncSync(fd);
    } finally {
      fs.closeSync(fd);
    }
    fs.renameSync(tmp, file);
  } catch (e) {
    fs.rmSync(tmp, { force: true });
    throw e;
  }
}

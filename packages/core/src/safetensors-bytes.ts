/**
 * safetensors as bytes: the format (header parsing and validation, dtype decoding and encoding) and an
 * in-memory reader/writer. No file system: this is what browsers use (`SafetensorsBytes` over a fetched or
 * dropped file's ArrayBuffer); `safetensors.ts` adds the lazy file reader and atomic file writers for Node.
 * Format: u64 LE header length N, N bytes of JSON {name: {dtype, shape, data_offsets}, __metadata__},
 * then the raw little-endian C-order bytes.
 */
import * as tf from '@tensorflow/tfjs';

export type SafetensorsDtype = 'F64' | 'F32' | 'F16' | 'BF16' | 'I64' | 'I32' | 'I16' | 'I8' | 'U8' | 'BOOL';

export const DTYPE_BYTES: Record<SafetensorsDtype, number> = {
  F64: 8, F32: 4, F16: 2, BF16: 2, I64: 8, I32: 4, I16: 2, I8: 1, U8: 1, BOOL: 1,
};

/** A header entry. `begin`/`end` are byte offsets into the data section. */
export interface TensorInfo {
  name: string;
  dtype: SafetensorsDtype;
  shape: number[];
  begin: number;
  end: number;
}

/** Decoded tensor data: floats widened to Float32Array (F64 kept), integers as Int32Array/BigInt64Array. */
export type TensorArray = Float32Array | Float64Array | Int32Array | BigInt64Array | Uint8Array;

export interface HostTensor {
  dtype: SafetensorsDtype;
  shape: number[];
  data: TensorArray;
}

/** Largest header we accept (the reference implementation uses 100 MB). */
export const MAX_HEADER_BYTES = 100_000_000;

export class SafetensorsError extends Error {
  constructor(
    readonly file: string,
    message: string,
  ) {
    super(`${file}: ${message}`);
    this.name = 'SafetensorsError';
  }
}

export function parseSafetensorsHeader(
  file: string,
  headerBytes: Uint8Array,
  dataBytes: number,
): { tensors: Map<string, TensorInfo>; metadata: Record<string, string> } {
  let json: unknown;
  try {
    json = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(headerBytes));
  } catch (e) {
    throw new SafetensorsError(file, `header is not valid UTF-8 JSON (${(e as Error).message})`);
  }
  if (typeof json !== 'object' || json === null || Array.isArray(json)) {
    throw new SafetensorsError(file, 'header JSON is not an object');
  }
  const tensors = new Map<string, TensorInfo>();
  let metadata: Record<string, string> = {};
  for (const [name, raw] of Object.entries(json as Record<string, unknown>)) {
    if (name === '__metadata__') {
      if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) {
        throw new SafetensorsError(file, '__metadata__ is not an object of strings');
      }
      for (const [k, v] of Object.entries(raw)) {
        if (typeof v !== 'string') throw new SafetensorsError(file, `__metadata__.${k} is not a string`);
      }
      metadata = raw as Record<string, string>;
      continue;
    }
    const e = raw as { dtype?: unknown; shape?: unknown; data_offsets?: unknown };
    if (typeof e !== 'object' || e === null || Array.isArray(e)) throw new SafetensorsError(file, `tensor '${name}': entry is not an object`);
    if (typeof e.dtype !== 'string' || !Object.hasOwn(DTYPE_BYTES, e.dtype)) {
      throw new SafetensorsError(
        file,
        `tensor '${name}': unknown dtype ${JSON.stringify(e.dtype)} (supported: ${Object.keys(DTYPE_BYTES).join(', ')})`,
      );
    }
    const dtype = e.dtype as SafetensorsDtype;
    if (!Array.isArray(e.shape) || !e.shape.every((d) => Number.isSafeInteger(d) && d >= 0)) {
      throw new SafetensorsError(file, `tensor '${name}': shape ${JSON.stringify(e.shape)} is not a list of non-negative integers`);
    }
    const shape = e.shape as number[];
    const off = e.data_offsets;
    if (!Array.isArray(off) || off.length !== 2 || !off.every((o) => Number.isSafeInteger(o) && o >= 0)) {
      throw new SafetensorsError(file, `tensor '${name}': data_offsets ${JSON.stringify(off)} is not [begin, end]`);
    }
    const [begin, end] = off as [number, number];
    if (end < begin) throw new SafetensorsError(file, `tensor '${name}': data_offsets [${begin}, ${end}] end before begin`);
    if (end > dataBytes) {
      throw new SafetensorsError(file, `tensor '${name}': data_offsets [${begin}, ${end}] run past the ${dataBytes}-byte data section (out of range, or the file is truncated)`);
    }
    const count = shape.reduce((a, b) => a * b, 1);
    const expected = count * DTYPE_BYTES[dtype]; // may be inexact when huge, but then it cannot equal end - begin
    if (expected !== end - begin) {
      throw new SafetensorsError(
        file,
        `tensor '${name}': shape [${shape.join(', ')}] of ${dtype} needs ${expected} bytes, data_offsets give ${end - begin}`,
      );
    }
    tensors.set(name, { name, dtype, shape, begin, end });
  }
  // Offsets must tile the data section: sorted, contiguous, non-overlapping, covering every byte.
  const sorted = [...tensors.values()].sort((a, b) => a.begin - b.begin || a.end - b.end);
  let cursor = 0;
  for (const t of sorted) {
    if (t.begin < cursor) throw new SafetensorsError(file, `tensor '${t.name}': data_offsets [${t.begin}, ${t.end}] overlap another tensor`);
    if (t.begin > cursor) throw new SafetensorsError(file, `tensor '${t.name}': gap before data_offsets [${t.begin}, ${t.end}] (data is not contiguous)`);
    cursor = t.end;
  }
  if (cursor !== dataBytes) {
    throw new SafetensorsError(file, `data section has ${dataBytes} bytes but the tensors cover ${cursor} (trailing bytes after the last tensor)`);
  }
  return { tensors, metadata };
}

/** Decode raw little-endian bytes of one dtype; F16/BF16 are widened to float32. */
export function decodeBytes(dtype: SafetensorsDtype, bytes: Uint8Array): TensorArray {
  if (dtype === 'BF16' || dtype === 'F16' || dtype === 'I16' || dtype === 'I8') {
    // Widening types: read through a view (copy first only when the view would be misaligned).
    const src = bytes.byteOffset % 2 === 0 ? bytes : bytes.slice();
    const n = src.byteLength >> 1;
    switch (dtype) {
      case 'BF16': {
        const u16 = new Uint16Array(src.buffer, src.byteOffset, n);
        const out = new Int32Array(n); // bf16 bits in the top half of an int32 = the float32 bits
        for (let i = 0; i < n; i++) out[i] = u16[i]! << 16;
        return new Float32Array(out.buffer);
      }
      case 'F16': {
        const u16 = new Uint16Array(src.buffer, src.byteOffset, n);
        const out = new Float32Array(n);
        const table = f16ToF32Table();
        for (let i = 0; i < n; i++) out[i] = table[u16[i]!]!;
        return out;
      }
      case 'I16': {
        const i16 = new Int16Array(src.buffer, src.byteOffset, n);
        const out = new Int32Array(n);
        for (let i = 0; i < n; i++) out[i] = i16[i]!;
        return out;
      }
      case 'I8': {
        const i8 = new Int8Array(src.buffer, src.byteOffset, src.byteLength);
        const out = new Int32Array(i8.length);
        for (let i = 0; i < i8.length; i++) out[i] = i8[i]!;
        return out;
      }
    }
  }
  // Copy into a fresh aligned buffer so typed views are valid whatever the source offset.
  const buf = new ArrayBuffer(bytes.byteLength);
  new Uint8Array(buf).set(bytes);
  switch (dtype) {
    case 'F32':
      return new Float32Array(buf);
    case 'F64':
      return new Float64Array(buf);
    case 'I64':
      return new BigInt64Array(buf);
    case 'I32':
      return new Int32Array(buf);
    default: // U8, BOOL
      return new Uint8Array(buf);
  }
}

/**
 * Like `decodeBytes`, but views the buffer without copying when `bytes` covers a whole ArrayBuffer
 * (as `readBytes` returns): F32, F64, I32, I64, U8, BOOL.
 */
export function decodeOwnedBytes(dtype: SafetensorsDtype, bytes: Uint8Array): TensorArray {
  if (bytes.byteOffset === 0 && bytes.byteLength === bytes.buffer.byteLength && !(typeof SharedArrayBuffer !== 'undefined' && bytes.buffer instanceof SharedArrayBuffer)) {
    const buf = bytes.buffer as ArrayBuffer;
    switch (dtype) {
      case 'F32':
        return new Float32Array(buf);
      case 'F64':
        return new Float64Array(buf);
      case 'I32':
        return new Int32Array(buf);
      case 'I64':
        return new BigInt64Array(buf);
      case 'U8':
      case 'BOOL':
        return new Uint8Array(buf); // a plain Uint8Array even when `bytes` is a Buffer
      default:
        break;
    }
  }
  return decodeBytes(dtype, bytes);
}

let f16Table: Float32Array | undefined;
function f16ToF32Table(): Float32Array {
  if (!f16Table) {
    f16Table = new Float32Array(65536);
    for (let h = 0; h < 65536; h++) f16Table[h] = halfToFloat(h);
  }
  return f16Table;
}

export function halfToFloat(h: number): number {
  const s = h & 0x8000 ? -1 : 1;
  const e = (h >> 10) & 0x1f;
  const f = h & 0x3ff;
  if (e === 0) return s * f * 2 ** -24;
  if (e === 31) return f ? NaN : s * Infinity;
  return s * (1 + f / 1024) * 2 ** (e - 15);
}

export function hostToTensor(h: HostTensor, what = 'tensor'): tf.Tensor {
  const d = h.data;
  if (d instanceof BigInt64Array) {
    const out = new Int32Array(d.length);
    for (let i = 0; i < d.length; i++) {
      const v = d[i]!;
      if (v > 2147483647n || v < -2147483648n) throw new Error(`${what}: int64 value ${v} does not fit int32`);
      out[i] = Number(v);
    }
    return tf.tensor(out, h.shape, 'int32');
  }
  if (h.dtype === 'BOOL') return tf.tensor(d as Uint8Array, h.shape, 'bool');
  if (d instanceof Float64Array) return tf.tensor(new Float32Array(d), h.shape, 'float32');
  if (d instanceof Uint8Array) return tf.tensor(new Int32Array(d), h.shape, 'int32');
  return tf.tensor(d, h.shape, d instanceof Int32Array ? 'int32' : 'float32');
}

/** One entry to write: a tf tensor or host data with an explicit dtype. */
export type WritableTensor = tf.Tensor | HostTensor;

/** A tensor to stream into a file: the header is written from dtype/shape, `bytes()` is called once, in order. */
export interface SafetensorsStreamEntry {
  name: string;
  dtype: SafetensorsDtype;
  shape: number[];
  /** exactly shape × dtype-size little-endian C-order bytes */
  bytes(): Uint8Array;
}

const FLOAT_DTYPES = new Set<SafetensorsDtype>(['F32', 'F64', 'F16', 'BF16']);

/** One tensor (tf or host) as a stream entry; `dtype` converts float tensors (F32/F16/BF16). */
export function safetensorsStreamEntry(name: string, t: WritableTensor, dtype?: 'F32' | 'F16' | 'BF16'): SafetensorsStreamEntry {
  if (t instanceof tf.Tensor) {
    const shape = t.shape.slice();
    if (t.dtype === 'float32') return { name, dtype: dtype ?? 'F32', shape, bytes: () => encodeFloat(t.dataSync() as Float32Array, dtype ?? 'F32') };
    if (t.dtype === 'int32') return { name, dtype: 'I32', shape, bytes: () => new Uint8Array(Int32Array.from(t.dataSync() as Int32Array).buffer) };
    if (t.dtype === 'bool') return { name, dtype: 'BOOL', shape, bytes: () => Uint8Array.from(t.dataSync() as Uint8Array) };
    throw new Error(`writeSafetensors: tensor '${name}' has dtype ${t.dtype}, which safetensors cannot hold`);
  }
  if (!Object.hasOwn(DTYPE_BYTES, t.dtype)) throw new Error(`writeSafetensors: tensor '${name}' has unknown dtype ${JSON.stringify(t.dtype)}`);
  return hostToStreamEntry(name, t, dtype);
}

/**
 * A host tensor as a stream entry. Float tensors (F32/F64/F16/BF16) become `dtype` when given (else keep
 * theirs); integer and bool tensors keep their dtype.
 */
export function hostToStreamEntry(name: string, x: HostTensor, dtype?: 'F32' | 'F16' | 'BF16'): SafetensorsStreamEntry {
  const count = x.shape.reduce((a, b) => a * b, 1);
  if (count !== x.data.length) {
    throw new Error(`writeSafetensors: tensor '${name}' has shape [${x.shape.join(', ')}] (${count} values) but ${x.data.length} values`);
  }
  const out: SafetensorsDtype = dtype && FLOAT_DTYPES.has(x.dtype) ? dtype : x.dtype;
  return { name, dtype: out, shape: [...x.shape], bytes: () => encodeHost(x, out) };
}

function encodeHost(x: HostTensor, dtype: SafetensorsDtype): Uint8Array {
  if (dtype === 'F32' || dtype === 'F16' || dtype === 'BF16') {
    const f = x.data instanceof Float32Array ? x.data : new Float32Array(x.data as ArrayLike<number>);
    return encodeFloat(f, dtype);
  }
  let arr: ArrayBufferView;
  switch (dtype) {
    case 'F64': arr = new Float64Array(x.data as ArrayLike<number>); break;
    case 'I64': arr = x.data instanceof BigInt64Array ? x.data.slice() : BigInt64Array.from(Array.from(x.data as ArrayLike<number>, (v) => BigInt(v))); break;
    case 'I32': arr = new Int32Array(x.data as ArrayLike<number>); break;
    case 'I16': arr = new Int16Array(x.data as ArrayLike<number>); break;
    case 'I8': arr = new Int8Array(x.data as ArrayLike<number>); break;
    case 'U8': case 'BOOL': arr = new Uint8Array(x.data as ArrayLike<number>); break;
  }
  return new Uint8Array(arr.buffer, arr.byteOffset, arr.byteLength);
}

export function floatToHalf(v: number): number {
  const f32 = new Float32Array([v]);
  const x = new Uint32Array(f32.buffer)[0]!;
  const sign = (x >>> 16) & 0x8000;
  const exp = (x >>> 23) & 0xff;
  let mant = x & 0x7fffff;
  if (exp === 0xff) return sign | 0x7c00 | (mant ? 0x200 : 0);
  const e = exp - 127 + 15;
  if (e >= 0x1f) return sign | 0x7c00;
  if (e <= 0) {
    if (e < -10) return sign;
    mant |= 0x800000;
    const shift = 14 - e;
    let half = mant >>> shift;
    const rem = mant & ((1 << shift) - 1);
    const mid = 1 << (shift - 1);
    if (rem > mid || (rem === mid && half & 1)) half++;
    return sign | half;
  }
  let half = (e << 10) | (mant >>> 13);
  const rem = mant & 0x1fff;
  if (rem > 0x1000 || (rem === 0x1000 && half & 1)) half++;
  return sign | half;
}

function encodeFloat(data: Float32Array, dtype: 'F32' | 'F16' | 'BF16'): Uint8Array {
  if (dtype === 'F32') return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  const out = new Uint16Array(data.length);
  const u32 = new Uint32Array(data.buffer, data.byteOffset, data.length);
  if (dtype === 'BF16') {
    for (let i = 0; i < u32.length; i++) {
      const x = u32[i]!;
      if ((x & 0x7f800000) === 0x7f800000 && x & 0x7fffff) out[i] = (x >>> 16) | 0x40; // NaN stays NaN
      else out[i] = (x + 0x7fff + ((x >>> 16) & 1)) >>> 16; // round to nearest even
    }
  } else {
    for (let i = 0; i < data.length; i++) out[i] = floatToHalf(data[i]!);
  }
  return new Uint8Array(out.buffer);
}

/** `file` for messages: a header length read from the first 8 bytes, checked against the limit and the size. */
export function checkSafetensorsHeaderLength(file: string, n: bigint, size: number): number {
  if (n > BigInt(MAX_HEADER_BYTES)) throw new SafetensorsError(file, `header length ${n} exceeds the ${MAX_HEADER_BYTES}-byte limit`);
  if (n > BigInt(size - 8)) throw new SafetensorsError(file, `header length ${n} runs past the end of the ${size}-byte file (truncated?)`);
  return Number(n);
}

/**
 * The bytes before the data section for `entries` (in order): u64 LE length + JSON header padded with
 * spaces to a multiple of 8, and each entry's [begin, end) in the data section. Checks names, dtypes
 * and shapes (one error naming the entry).
 */
export function encodeSafetensorsHeader(
  entries: ReadonlyArray<Pick<SafetensorsStreamEntry, 'name' | 'dtype' | 'shape'>>,
  metadata?: Record<string, string>,
): { prefix: Uint8Array; offsets: Map<string, [number, number]>; dataBytes: number } {
  const header: Record<string, unknown> = {};
  if (metadata && Object.keys(metadata).length) {
    for (const [k, v] of Object.entries(metadata)) {
      if (typeof v !== 'string') throw new Error(`writeSafetensors: metadata '${k}' is ${typeof v}, safetensors metadata values must be strings`);
    }
    header.__metadata__ = metadata;
  }
  const offsets = new Map<string, [number, number]>();
  let offset = 0;
  for (const e of entries) {
    if (e.name === '__metadata__') throw new Error(`writeSafetensors: '__metadata__' is reserved and cannot name a tensor`);
    if (offsets.has(e.name)) throw new Error(`writeSafetensors: tensor name '${e.name}' appears twice`);
    if (!Object.hasOwn(DTYPE_BYTES, e.dtype)) throw new Error(`writeSafetensors: tensor '${e.name}' has unknown dtype ${JSON.stringify(e.dtype)}`);
    if (!e.shape.every((d) => Number.isSafeInteger(d) && d >= 0)) throw new Error(`writeSafetensors: tensor '${e.name}' has an invalid shape [${e.shape.join(', ')}]`);
    const len = e.shape.reduce((a, b) => a * b, 1) * DTYPE_BYTES[e.dtype];
    offsets.set(e.name, [offset, offset + len]);
    header[e.name] = { dtype: e.dtype, shape: e.shape, data_offsets: [offset, offset + len] };
    offset += len;
  }
  const json = new TextEncoder().encode(JSON.stringify(header));
  const padded = json.length + ((8 - (json.length % 8)) % 8); // align the data section to 8 bytes
  const prefix = new Uint8Array(8 + padded).fill(0x20, 8 + json.length);
  new DataView(prefix.buffer).setBigUint64(0, BigInt(padded), true);
  prefix.set(json, 8);
  return { prefix, offsets, dataBytes: offset };
}

/** The bytes of one entry, checked against the length its header promised. */
export function safetensorsEntryBytes(e: SafetensorsStreamEntry, want: [number, number]): Uint8Array {
  const bytes = e.bytes();
  if (bytes.byteLength !== want[1] - want[0]) {
    throw new Error(`writeSafetensors: tensor '${e.name}' produced ${bytes.byteLength} bytes, its shape [${e.shape.join(', ')}] of ${e.dtype} needs ${want[1] - want[0]}`);
  }
  return bytes;
}

/**
 * A whole safetensors file in memory (for a download, a fetch body, or a test): same header and bytes
 * as `writeSafetensors` writes. `dtype` converts float tensors; integer and bool tensors keep theirs.
 */
export function serializeSafetensors(
  tensors: Record<string, WritableTensor> | Map<string, WritableTensor>,
  opts: { metadata?: Record<string, string>; dtype?: 'F32' | 'F16' | 'BF16' } = {},
): Uint8Array {
  const list = tensors instanceof Map ? [...tensors.entries()] : Object.entries(tensors);
  const entries = list.map(([name, t]) => safetensorsStreamEntry(name, t, opts.dtype));
  const { prefix, offsets, dataBytes } = encodeSafetensorsHeader(entries, opts.metadata);
  const out = new Uint8Array(prefix.length + dataBytes);
  out.set(prefix, 0);
  for (const e of entries) {
    const at = offsets.get(e.name)!;
    out.set(safetensorsEntryBytes(e, at), prefix.length + at[0]);
  }
  return out;
}

/**
 * What every safetensors reader shares once the header is parsed (the Node file reader and the in-memory one):
 * the tensor table, lookups with one clear error, decoding. Subclasses say where a tensor's bytes come from.
 */
export abstract class SafetensorsReader {
  protected constructor(
    readonly path: string,
    readonly dataStart: number,
    readonly tensors: Map<string, TensorInfo>,
    readonly metadata: Record<string, string>,
  ) {}

  keys(): string[] {
    return [...this.tensors.keys()];
  }

  has(name: string): boolean {
    return this.tensors.has(name);
  }

  info(name: string): TensorInfo {
    const t = this.tensors.get(name);
    if (!t) throw new SafetensorsError(this.path, `no tensor named '${name}' (has ${this.tensors.size}: ${this.keys().slice(0, 8).join(', ')}${this.tensors.size > 8 ? ', …' : ''})`);
    return t;
  }

  /** The raw bytes of one tensor, in a fresh ArrayBuffer of their own (offset 0). */
  abstract readBytes(name: string): Uint8Array;

  read(name: string): HostTensor {
    const t = this.info(name);
    return { dtype: t.dtype, shape: [...t.shape], data: decodeOwnedBytes(t.dtype, this.readBytes(name)) };
  }

  /** A tf tensor: floats as float32 (F64 narrowed), integers as int32 (I64 checked to fit), BOOL as bool. */
  tensor(name: string): tf.Tensor {
    return hostToTensor(this.read(name), `${this.path}:${name}`);
  }

  abstract close(): void;
}

/**
 * A safetensors file held in memory (an ArrayBuffer from `fetch`, a dropped File, or a Node Buffer): the
 * same reading API as the Node file reader (`keys`, `has`, `info`, `readBytes`, `read`, `tensor`), checked
 * the same way. `name` is used in error messages.
 */
export class SafetensorsBytes extends SafetensorsReader {
  private constructor(
    path: string,
    private bytes: Uint8Array | undefined,
    dataStart: number,
    tensors: Map<string, TensorInfo>,
    metadata: Record<string, string>,
  ) {
    super(path, dataStart, tensors, metadata);
  }

  static from(data: ArrayBuffer | ArrayBufferView, name = 'safetensors bytes'): SafetensorsBytes {
    const bytes = data instanceof ArrayBuffer ? new Uint8Array(data) : new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
    const size = bytes.byteLength;
    if (size < 8) throw new SafetensorsError(name, `file is ${size} bytes, shorter than the 8-byte header length (truncated?)`);
    const n = new DataView(bytes.buffer, bytes.byteOffset, 8).getBigUint64(0, true);
    const headerLen = checkSafetensorsHeaderLength(name, n, size);
    const { tensors, metadata } = parseSafetensorsHeader(name, bytes.subarray(8, 8 + headerLen), size - 8 - headerLen);
    return new SafetensorsBytes(name, bytes, 8 + headerLen, tensors, metadata);
  }

  /** The raw bytes of one tensor, copied into a fresh ArrayBuffer of their own (offset 0). */
  readBytes(name: string): Uint8Array {
    const t = this.info(name);
    if (!this.bytes) throw new SafetensorsError(this.path, 'is closed');
    return this.bytes.slice(this.dataStart + t.begin, this.dataStart + t.end);
  }

  /** Drops the reference to the bytes. */
  close(): void {
    this.bytes = undefined;
  }
}

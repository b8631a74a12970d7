/**
 * safetensors read/write. Reads are lazy and positional: the header is parsed once, each tensor is
 * read from disk only when asked for, so a 10 GB file never needs 10 GB of memory.
 * Format: u64 LE header length N, N bytes of JSON {name: {dtype, shape, data_offsets}, __metadata__},
 * then the raw little-endian C-order bytes.
 */
import fs from 'node:fs';
import * as tf from '@tensorflow/tfjs';
import {
  checkSafetensorsHeaderLength,
  encodeSafetensorsHeader,
  parseSafetensorsHeader,
  safetensorsEntryBytes,
  safetensorsStreamEntry,
  SafetensorsError,
  SafetensorsReader,
  type SafetensorsStreamEntry,
  type TensorInfo,
  type WritableTensor,
} from './safetensors-bytes.js';

export * from './safetensors-bytes.js';

function readFully(fd: number, file: string, buf: Uint8Array, position: number, what: string): void {
  let done = 0;
  while (done < buf.length) {
    const got = fs.readSync(fd, buf, done, buf.length - done, position + done);
    if (got === 0) throw new SafetensorsError(file, `file ended while reading ${what} (truncated?)`);
    done += got;
  }
}

/** An open safetensors file. Call `close()` when done (or use `withSafetensors`). */
export class SafetensorsFile extends SafetensorsReader {
  private constructor(
    path: string,
    private fd: number | undefined,
    dataStart: number,
    tensors: Map<string, TensorInfo>,
    metadata: Record<string, string>,
  ) {
    super(path, dataStart, tensors, metadata);
  }

  static open(path: string): SafetensorsFile {
    let fd: number;
    try {
      fd = fs.openSync(path, 'r');
    } catch (e) {
      throw new SafetensorsError(path, `cannot open (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
    }
    try {
      const st = fs.fstatSync(fd);
      if (!st.isFile()) throw new SafetensorsError(path, 'is not a regular file');
      const size = st.size;
      if (size < 8) throw new SafetensorsError(path, `file is ${size} bytes, shorter than the 8-byte header length (truncated?)`);
      const lenBuf = Buffer.alloc(8);
      readFully(fd, path, lenBuf, 0, 'the header length');
      const n = lenBuf.readBigUInt64LE(0);
      const headerLen = checkSafetensorsHeaderLength(path, n, size);
      const header = Buffer.alloc(headerLen);
      readFully(fd, path, header, 8, 'the header');
      const { tensors, metadata } = parseSafetensorsHeader(path, header, size - 8 - headerLen);
      return new SafetensorsFile(path, fd, 8 + headerLen, tensors, metadata);
    } catch (e) {
      fs.closeSync(fd);
      throw e;
    }
  }

  /**
   * The raw bytes of one tensor, in a fresh ArrayBuffer of their own (offset 0), so typed views need no
   * copy. `into` (at least the tensor's byte length) is filled instead when given.
   */
  readBytes(name: string, into?: Uint8Array): Uint8Array {
    const t = this.info(name);
    if (this.fd === undefined) throw new SafetensorsError(this.path, 'file is closed');
    const len = t.end - t.begin;
    if (into && into.length < len) throw new SafetensorsError(this.path, `tensor '${name}': target buffer has ${into.length} bytes, needs ${len}`);
    // An own, unzeroed buffer at offset 0 (fully overwritten below), as a plain Uint8Array (not a Buffer,
    // whose slice() would alias).
    const out = into ? into.subarray(0, len) : new Uint8Array(Buffer.allocUnsafeSlow(len).buffer, 0, len);
    readFully(this.fd, this.path, out, this.dataStart + t.begin, `tensor '${name}'`);
    return out;
  }

  close(): void {
    if (this.fd !== undefined) fs.closeSync(this.fd);
    this.fd = undefined;
  }
}

export function withSafetensors<T>(path: string, fn: (f: SafetensorsFile) => T): T {
  const f = SafetensorsFile.open(path);
  try {
    return fn(f);
  } finally {
    f.close();
  }
}


/**
 * Write a safetensors file atomically (temp file in the same folder + fsync + rename): a failed write
 * leaves no partial file and any existing file at `path` untouched. `dtype` converts float tensors
 * (F16/BF16 round to nearest even); integer and bool tensors keep their dtype.
 */
export function writeSafetensors(
  path: string,
  tensors: Record<string, WritableTensor> | Map<string, WritableTensor>,
  opts: { metadata?: Record<string, string>; dtype?: 'F32' | 'F16' | 'BF16' } = {},
): void {
  const entries = tensors instanceof Map ? [...tensors.entries()] : Object.entries(tensors);
  writeSafetensorsStream(path, entries.map(([name, t]) => safetensorsStreamEntry(name, t, opts.dtype)), opts);
}

/**
 * Stream tensors into one safetensors file, one tensor in memory at a time (for converting checkpoints
 * larger than memory). Atomic like `writeSafetensors`.
 */
export function writeSafetensorsStream(path: string, entries: SafetensorsStreamEntry[], opts: { metadata?: Record<string, string> } = {}): void {
  const { prefix, offsets } = encodeSafetensorsHeader(entries, opts.metadata);
  const tmp = `${path}.tmp-${process.pid}-${Date.now()}-${Math.random().toString(36).slice(2, 8)}`;
  const fd = fs.openSync(tmp, 'wx');
  let closed = false;
  try {
    writeAll(fd, prefix);
    for (const e of entries) writeAll(fd, safetensorsEntryBytes(e, offsets.get(e.name)!));
    fs.fsyncSync(fd);
    fs.closeSync(fd);
    closed = true;
    fs.renameSync(tmp, path);
  } catch (err) {
    if (!closed) {
      try {
        fs.closeSync(fd);
      } catch {
        /* already closed */
      }
    }
    fs.rmSync(tmp, { force: true });
    throw err;
  }
}

function writeAll(fd: number, bytes: Uint8Array): void {
  let done = 0;
  while (done < bytes.byteLength) done += fs.writeSync(fd, bytes, done, bytes.byteLength - done);
}

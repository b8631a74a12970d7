/**
 * A small read-only zip reader (what PyTorch ≥ 1.6 checkpoints are): the central directory is parsed once,
 * entries are read on demand with positional reads. Stored (method 0) entries can be read by byte range
 * without touching the rest of the entry, so a multi-GB tensor storage is never buffered whole unless asked.
 * Deflate (method 8) entries are inflated with node:zlib. Zip64 sizes and offsets are understood.
 * Encryption, multi-disk archives and other compression methods are refused with a clear error.
 */
import fs from 'node:fs';
import zlib from 'node:zlib';

export class ZipError extends Error {
  constructor(
    readonly file: string,
    message: string,
  ) {
    super(`${file}: ${message}`);
    this.name = 'ZipError';
  }
}

export interface ZipEntry {
  name: string;
  /** 0 stored, 8 deflate */
  method: number;
  crc32: number;
  compressedSize: number;
  size: number;
  /** offset of the local file header */
  localHeaderOffset: number;
  flags: number;
}

const SIG_EOCD = 0x06054b50;
const SIG_EOCD64 = 0x06064b50;
const SIG_EOCD64_LOCATOR = 0x07064b50;
const SIG_CENTRAL = 0x02014b50;
const SIG_LOCAL = 0x04034b50;

/** Largest entry we inflate into memory in one piece (node Buffers top out near this anyway). */
const MAX_INFLATE_BYTES = 2 ** 31 - 1;

let crcTable: Uint32Array | undefined;
/** CRC-32 (IEEE), node's native one when available. */
export function crc32(bytes: Uint8Array, seed = 0): number {
  const native = (zlib as unknown as { crc32?: (d: Uint8Array, v?: number) => number }).crc32;
  if (native) return native(bytes, seed) >>> 0;
  if (!crcTable) {
    crcTable = new Uint32Array(256);
    for (let n = 0; n < 256; n++) {
      let c = n;
      for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
      crcTable[n] = c >>> 0;
    }
  }
  let c = ~seed >>> 0;
  for (let i = 0; i < bytes.length; i++) c = crcTable[(c ^ bytes[i]!) & 0xff]! ^ (c >>> 8);
  return ~c >>> 0;
}

function readFully(fd: number, file: string, buf: Uint8Array, position: number, what: string): void {
  let done = 0;
  while (done < buf.length) {
    const got = fs.readSync(fd, buf, done, buf.length - done, position + done);
    if (got === 0) throw new ZipError(file, `file ended while reading ${what} at byte ${position + done} (truncated?)`);
    done += got;
  }
}

function u64(view: DataView, at: number, file: string, what: string): number {
  const v = view.getBigUint64(at, true);
  if (v > BigInt(Number.MAX_SAFE_INTEGER)) throw new ZipError(file, `${what} ${v} is too large`);
  return Number(v);
}

export class ZipReader {
  private fd: number | undefined;
  readonly entries: Map<string, ZipEntry>;
  private dataOffsets = new Map<string, number>();

  private constructor(
    readonly path: string,
    fd: number,
    readonly size: number,
    entries: Map<string, ZipEntry>,
  ) {
    this.fd = fd;
    this.entries = entries;
  }

  /** True when the first bytes are a zip local header (or an empty archive). */
  static isZip(head: Uint8Array): boolean {
    return head.length >= 4 && head[0] === 0x50 && head[1] === 0x4b && ((head[2] === 3 && head[3] === 4) || (head[2] === 5 && head[3] === 6));
  }

  static open(path: string): ZipReader {
    let fd: number;
    try {
      fd = fs.openSync(path, 'r');
    } catch (e) {
      throw new ZipError(path, `cannot open (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
    }
    try {
      const st = fs.fstatSync(fd);
      if (!st.isFile()) throw new ZipError(path, 'is not a regular file');
      const size = st.size;
      const entries = ZipReader.readCentralDirectory(path, fd, size);
      return new ZipReader(path, fd, size, entries);
    } catch (e) {
      fs.closeSync(fd);
      throw e;
    }
  }

  private static readCentralDirectory(file: string, fd: number, size: number): Map<string, ZipEntry> {
    if (size < 22) throw new ZipError(file, `file is ${size} bytes, too short for a zip archive (truncated?)`);
    // The end-of-central-directory record sits in the last 22 + 65535 (comment) bytes.
    const tailLen = Math.min(size, 22 + 65535);
    const tail = new Uint8Array(tailLen);
    readFully(fd, file, tail, size - tailLen, 'the end of the archive');
    const tv = new DataView(tail.buffer);
    let eocd = -1;
    for (let i = tailLen - 22; i >= 0; i--) {
      if (tv.getUint32(i, true) === SIG_EOCD && i + 22 + tv.getUint16(i + 20, true) <= tailLen) {
        eocd = i;
        break;
      }
    }
    if (eocd < 0) throw new ZipError(file, 'no end-of-central-directory record found (not a zip archive, or truncated)');
    const disk = tv.getUint16(eocd + 4, true);
    const cdDisk = tv.getUint16(eocd + 6, true);
    let count = tv.getUint16(eocd + 10, true);
    let cdSize = tv.getUint32(eocd + 12, true);
    let cdOffset = tv.getUint32(eocd + 16, true);
    const eocdPos = size - tailLen + eocd;
    if (count === 0xffff || cdSize === 0xffffffff || cdOffset === 0xffffffff || disk === 0xffff) {
      // zip64: the locator sits right before the EOCD record.
      if (eocdPos < 20) throw new ZipError(file, 'zip64 archive without a zip64 end-of-central-directory locator');
      const loc = new Uint8Array(20);
      readFully(fd, file, loc, eocdPos - 20, 'the zip64 locator');
      const lv = new DataView(loc.buffer);
      if (lv.getUint32(0, true) !== SIG_EOCD64_LOCATOR) throw new ZipError(file, 'zip64 end-of-central-directory locator missing');
      const rec64At = u64(lv, 8, file, 'zip64 record offset');
      if (rec64At + 56 > size) throw new ZipError(file, `zip64 end-of-central-directory record offset ${rec64At} is beyond the file`);
      const rec = new Uint8Array(56);
      readFully(fd, file, rec, rec64At, 'the zip64 end-of-central-directory record');
      const rv = new DataView(rec.buffer);
      if (rv.getUint32(0, true) !== SIG_EOCD64) throw new ZipError(file, 'zip64 end-of-central-directory record has a bad signature');
      count = u64(rv, 32, file, 'zip64 entry count');
      cdSize = u64(rv, 40, file, 'zip64 central directory size');
      cdOffset = u64(rv, 48, file, 'zip64 central directory offset');
    } else if (disk !== 0 || cdDisk !== 0) {
      throw new ZipError(file, 'multi-disk zip archives are not supported');
    }
    if (cdOffset + cdSize > size) {
      throw new ZipError(file, `central directory [${cdOffset}, ${cdOffset + cdSize}) runs past the end of the ${size}-byte file (truncated?)`);
    }
    const cd = new Uint8Array(cdSize);
    readFully(fd, file, cd, cdOffset, 'the central directory');
    const cv = new DataView(cd.buffer);
    const entries = new Map<string, ZipEntry>();
    let p = 0;
    const dec = new TextDecoder('utf-8');
    for (let i = 0; i < count; i++) {
      if (p + 46 > cdSize || cv.getUint32(p, true) !== SIG_CENTRAL) {
        throw new ZipError(file, `central directory entry ${i} of ${count} is malformed (bad signature at byte ${cdOffset + p})`);
      }
      const flags = cv.getUint16(p + 8, true);
      const method = cv.getUint16(p + 10, true);
      const crc = cv.getUint32(p + 16, true);
      let compressedSize = cv.getUint32(p + 20, true);
      let uncompressed = cv.getUint32(p + 24, true);
      const nameLen = cv.getUint16(p + 28, true);
      const extraLen = cv.getUint16(p + 30, true);
      const commentLen = cv.getUint16(p + 32, true);
      let localHeaderOffset = cv.getUint32(p + 42, true);
      if (p + 46 + nameLen + extraLen + commentLen > cdSize) throw new ZipError(file, `central directory entry ${i} runs past the directory`);
      const name = dec.decode(cd.subarray(p + 46, p + 46 + nameLen));
      // zip64 extended information: the fields that are 0xffffffff in the record, in this order.
      let e = p + 46 + nameLen;
      const eEnd = e + extraLen;
      while (e + 4 <= eEnd) {
        const id = cv.getUint16(e, true);
        const len = cv.getUint16(e + 2, true);
        if (id === 0x0001) {
          let q = e + 4;
          const take = (what: string) => {
            if (q + 8 > e + 4 + len) throw new ZipError(file, `entry '${name}': zip64 extra field lacks the ${what}`);
            const v = u64(cv, q, file, `entry '${name}' ${what}`);
            q += 8;
            return v;
          };
          if (uncompressed === 0xffffffff) uncompressed = take('size');
          if (compressedSize === 0xffffffff) compressedSize = take('compressed size');
          if (localHeaderOffset === 0xffffffff) localHeaderOffset = take('local header offset');
        }
        e += 4 + len;
      }
      if (flags & 1) throw new ZipError(file, `entry '${name}' is encrypted, which is not supported`);
      if (localHeaderOffset + 30 + compressedSize > size) {
        throw new ZipError(file, `entry '${name}' (${compressedSize} bytes at ${localHeaderOffset}) runs past the end of the ${size}-byte file (truncated?)`);
      }
      entries.set(name, { name, method, crc32: crc, compressedSize, size: uncompressed, localHeaderOffset, flags });
      p += 46 + nameLen + extraLen + commentLen;
    }
    return entries;
  }

  names(): string[] {
    return [...this.entries.keys()];
  }

  entry(name: string): ZipEntry {
    const e = this.entries.get(name);
    if (!e) throw new ZipError(this.path, `no entry named '${name}' in the archive`);
    return e;
  }

  private get openFd(): number {
    if (this.fd === undefined) throw new ZipError(this.path, 'archive is closed');
    return this.fd;
  }

  /** Absolute file offset of an entry's (compressed) data, from its local header. */
  dataOffset(name: string): number {
    const cached = this.dataOffsets.get(name);
    if (cached !== undefined) return cached;
    const e = this.entry(name);
    const lh = new Uint8Array(30);
    readFully(this.openFd, this.path, lh, e.localHeaderOffset, `the local header of '${name}'`);
    const lv = new DataView(lh.buffer);
    if (lv.getUint32(0, true) !== SIG_LOCAL) throw new ZipError(this.path, `entry '${name}': bad local header signature at byte ${e.localHeaderOffset}`);
    const off = e.localHeaderOffset + 30 + lv.getUint16(26, true) + lv.getUint16(28, true);
    if (off + e.compressedSize > this.size) throw new ZipError(this.path, `entry '${name}' data runs past the end of the file (truncated?)`);
    this.dataOffsets.set(name, off);
    return off;
  }

  /** The whole (decompressed) entry, CRC-checked. */
  read(name: string): Uint8Array {
    const e = this.entry(name);
    const raw = new Uint8Array(e.compressedSize);
    readFully(this.openFd, this.path, raw, this.dataOffset(name), `entry '${name}'`);
    let out: Uint8Array;
    if (e.method === 0) {
      if (e.compressedSize !== e.size) throw new ZipError(this.path, `stored entry '${name}' has compressed size ${e.compressedSize} but size ${e.size}`);
      out = raw;
    } else if (e.method === 8) {
      if (e.size > MAX_INFLATE_BYTES) throw new ZipError(this.path, `deflated entry '${name}' is ${e.size} bytes, too large to inflate in memory`);
      try {
        out = zlib.inflateRawSync(raw, { maxOutputLength: Math.max(1, e.size) });
      } catch (err) {
        throw new ZipError(this.path, `entry '${name}' does not inflate (${(err as Error).message})`);
      }
      if (out.length !== e.size) throw new ZipError(this.path, `entry '${name}' inflates to ${out.length} bytes, the directory says ${e.size}`);
    } else {
      throw new ZipError(this.path, `entry '${name}' uses compression method ${e.method}; only stored (0) and deflate (8) are supported`);
    }
    const c = crc32(out);
    if (c !== e.crc32) throw new ZipError(this.path, `entry '${name}' fails its CRC-32 check (corrupt file)`);
    return out;
  }

  /**
   * `length` bytes of an entry starting at `offset` (of the decompressed data), into `into` if given.
   * Stored entries are read positionally, CRC-checked when the range is the whole entry (a part alone
   * cannot be checked); deflated entries are inflated whole and always checked.
   */
  readRange(name: string, offset: number, length: number, into?: Uint8Array): Uint8Array {
    const e = this.entry(name);
    if (offset < 0 || length < 0 || offset + length > e.size) {
      throw new ZipError(this.path, `entry '${name}': byte range [${offset}, ${offset + length}) is outside its ${e.size} bytes`);
    }
    const out = into ?? new Uint8Array(length);
    if (e.method === 0) {
      const part = out.subarray(0, length);
      readFully(this.openFd, this.path, part, this.dataOffset(name) + offset, `entry '${name}'`);
      if (offset === 0 && length === e.size && crc32(part) !== e.crc32) throw new ZipError(this.path, `entry '${name}' fails its CRC-32 check (corrupt file)`);
      return out;
    }
    out.set(this.read(name).subarray(offset, offset + length));
    return out;
  }

  close(): void {
    if (this.fd !== undefined) fs.closeSync(this.fd);
    this.fd = undefined;
  }
}

/** One file to put in a zip written by `writeZip`. */
export interface ZipInput {
  name: string;
  data: Uint8Array;
  /** deflate the data (default: stored) */
  deflate?: boolean;
}

/**
 * Write a zip archive (stored or deflate entries; zip64 records when `zip64` is set or sizes need it).
 * Small and unoptimised; used to build test archives and by tools that need a plain zip.
 */
export function writeZip(path: string, files: ZipInput[], opts: { zip64?: boolean } = {}): void {
  const chunks: Uint8Array[] = [];
  const central: Uint8Array[] = [];
  let offset = 0;
  const enc = new TextEncoder();
  for (const f of files) {
    const name = enc.encode(f.name);
    const body = f.deflate ? zlib.deflateRawSync(f.data) : f.data;
    const crc = crc32(f.data);
    const z64 = opts.zip64 || body.length >= 0xffffffff || offset >= 0xffffffff;
    const localExtra = z64 ? new Uint8Array(20) : new Uint8Array(0);
    if (z64) {
      const v = new DataView(localExtra.buffer);
      v.setUint16(0, 1, true);
      v.setUint16(2, 16, true);
      v.setBigUint64(4, BigInt(f.data.length), true);
      v.setBigUint64(12, BigInt(body.length), true);
    }
    const lh = new Uint8Array(30);
    const lv = new DataView(lh.buffer);
    lv.setUint32(0, SIG_LOCAL, true);
    lv.setUint16(4, z64 ? 45 : 20, true);
    lv.setUint16(6, 0x0800, true);
    lv.setUint16(8, f.deflate ? 8 : 0, true);
    lv.setUint32(14, crc, true);
    lv.setUint32(18, z64 ? 0xffffffff : body.length, true);
    lv.setUint32(22, z64 ? 0xffffffff : f.data.length, true);
    lv.setUint16(26, name.length, true);
    lv.setUint16(28, localExtra.length, true);
    const cdExtra = z64 ? new Uint8Array(28) : new Uint8Array(0);
    if (z64) {
      const v = new DataView(cdExtra.buffer);
      v.setUint16(0, 1, true);
      v.setUint16(2, 24, true);
      v.setBigUint64(4, BigInt(f.data.length), true);
      v.setBigUint64(12, BigInt(body.length), true);
      v.setBigUint64(20, BigInt(offset), true);
    }
    const ch = new Uint8Array(46);
    const cv = new DataView(ch.buffer);
    cv.setUint32(0, SIG_CENTRAL, true);
    cv.setUint16(4, z64 ? 45 : 20, true);
    cv.setUint16(6, z64 ? 45 : 20, true);
    cv.setUint16(8, 0x0800, true);
    cv.setUint16(10, f.deflate ? 8 : 0, true);
    cv.setUint32(16, crc, true);
    cv.setUint32(20, z64 ? 0xffffffff : body.length, true);
    cv.setUint32(24, z64 ? 0xffffffff : f.data.length, true);
    cv.setUint16(28, name.length, true);
    cv.setUint16(30, cdExtra.length, true);
    cv.setUint32(42, z64 ? 0xffffffff : offset, true);
    chunks.push(lh, name, localExtra, body);
    central.push(ch, name, cdExtra);
    offset += lh.length + name.length + localExtra.length + body.length;
  }
  const cdSize = central.reduce((a, c) => a + c.length, 0);
  const cdOffset = offset;
  const z64 = opts.zip64 || cdOffset >= 0xffffffff || files.length >= 0xffff;
  const tail: Uint8Array[] = [];
  if (z64) {
    const r = new Uint8Array(56);
    const rv = new DataView(r.buffer);
    rv.setUint32(0, SIG_EOCD64, true);
    rv.setBigUint64(4, 44n, true);
    rv.setUint16(12, 45, true);
    rv.setUint16(14, 45, true);
    rv.setBigUint64(24, BigInt(files.length), true);
    rv.setBigUint64(32, BigInt(files.length), true);
    rv.setBigUint64(40, BigInt(cdSize), true);
    rv.setBigUint64(48, BigInt(cdOffset), true);
    const l = new Uint8Array(20);
    const lv = new DataView(l.buffer);
    lv.setUint32(0, SIG_EOCD64_LOCATOR, true);
    lv.setBigUint64(8, BigInt(cdOffset + cdSize), true);
    lv.setUint32(16, 1, true);
    tail.push(r, l);
  }
  const eo = new Uint8Array(22);
  const ev = new DataView(eo.buffer);
  ev.setUint32(0, SIG_EOCD, true);
  ev.setUint16(8, z64 ? 0xffff : files.length, true);
  ev.setUint16(10, z64 ? 0xffff : files.length, true);
  ev.setUint32(12, z64 ? 0xffffffff : cdSize, true);
  ev.setUint32(16, z64 ? 0xffffffff : cdOffset, true);
  tail.push(eo);
  fs.writeFileSync(path, Buffer.concat([...chunks, ...central, ...tail]));
}

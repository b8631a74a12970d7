/**
 * (Node only.) A TensorBoard event-file writer for scalars, without dependencies: TFRecord framing (u64 length,
 * masked crc32c of the length, the data, masked crc32c of the data) around hand-encoded protobuf
 * `Event` messages (wall_time = 1, step = 2, file_version = 3, summary = 5 → Summary.value = 1 →
 * Value{ tag = 1, simple_value = 2 }).
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

const CRC32C_TABLE = (() => {
  const t = new Uint32Array(256);
  for (let i = 0; i < 256; i++) {
    let c = i;
    for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ 0x82f63b78 : c >>> 1;
    t[i] = c >>> 0;
  }
  return t;
})();

/** CRC-32C (Castagnoli), as TFRecord uses it. crc32c("123456789") = 0xe3069283. */
export function crc32c(data: Uint8Array): number {
  let c = 0xffffffff;
  for (let i = 0; i < data.length; i++) c = CRC32C_TABLE[(c ^ data[i]!) & 0xff]! ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

export function maskedCrc32c(data: Uint8Array): number {
  const c = crc32c(data);
  return ((((c >>> 15) | (c << 17)) >>> 0) + 0xa282ead8) >>> 0;
}

function varint(n: number | bigint): number[] {
  let v = BigInt(n);
  const out: number[] = [];
  do {
    let b = Number(v & 0x7fn);
    v >>= 7n;
    if (v > 0n) b |= 0x80;
    out.push(b);
  } while (v > 0n);
  return out;
}

function key(field: number, wire: number): number[] {
  return varint((field << 3) | wire);
}

function lenDelimited(field: number, bytes: Uint8Array | number[]): number[] {
  return [...key(field, 2), ...varint(bytes.length), ...bytes];
}

function double(field: number, v: number): number[] {
  const b = Buffer.alloc(8);
  b.writeDoubleLE(v);
  return [...key(field, 1), ...b];
}

function float(field: number, v: number): number[] {
  const b = Buffer.alloc(4);
  b.writeFloatLE(v);
  return [...key(field, 5), ...b];
}

/** Encode an Event with a version string or one scalar. */
export function encodeEvent(e: { wallTime: number; step?: number; fileVersion?: string; scalar?: { tag: string; value: number } }): Uint8Array {
  const out: number[] = [...double(1, e.wallTime)];
  if (e.step !== undefined) out.push(...key(2, 0), ...varint(e.step));
  if (e.fileVersion !== undefined) out.push(...lenDelimited(3, Buffer.from(e.fileVersion, 'utf8')));
  if (e.scalar) {
    const value = [...lenDelimited(1, Buffer.from(e.scalar.tag, 'utf8')), ...float(2, e.scalar.value)];
    out.push(...lenDelimited(5, lenDelimited(1, value)));
  }
  return Uint8Array.from(out);
}

/** One TFRecord: length, masked crc of the length, data, masked crc of the data. */
export function frameRecord(data: Uint8Array): Buffer {
  const head = Buffer.alloc(12);
  head.writeBigUInt64LE(BigInt(data.length), 0);
  head.writeUInt32LE(maskedCrc32c(head.subarray(0, 8)), 8);
  const tail = Buffer.alloc(4);
  tail.writeUInt32LE(maskedCrc32c(data), 0);
  return Buffer.concat([head, Buffer.from(data), tail]);
}

/** Read back the records of an event file (checks both CRCs); for tests and tools. */
export function readRecords(file: string): Uint8Array[] {
  const b = fs.readFileSync(file);
  const out: Uint8Array[] = [];
  let o = 0;
  while (o < b.length) {
    if (o + 12 > b.length) throw new Error(`readRecords: ${file} ends inside a record header at byte ${o}`);
    const n = Number(b.readBigUInt64LE(o));
    if (b.readUInt32LE(o + 8) !== maskedCrc32c(b.subarray(o, o + 8))) throw new Error(`readRecords: ${file}: length CRC mismatch at byte ${o}`);
    const data = b.subarray(o + 12, o + 12 + n);
    if (b.readUInt32LE(o + 12 + n) !== maskedCrc32c(data)) throw new Error(`readRecords: ${file}: data CRC mismatch at byte ${o}`);
    out.push(new Uint8Array(data));
    o += 16 + n;
  }
  return out;
}

/** Appends scalars to `dir/events.out.tfevents.<secs>.<host>.<pid>.0`. */
export class TensorBoardWriter {
  readonly file: string;
  private fd: number;

  constructor(dir: string) {
    fs.mkdirSync(dir, { recursive: true });
    const secs = Math.floor(Date.now() / 1000);
    this.file = path.join(dir, `events.out.tfevents.${secs}.${os.hostname()}.${process.pid}.0`);
    this.fd = fs.openSync(this.file, 'a');
    fs.writeSync(this.fd, frameRecord(encodeEvent({ wallTime: Date.now() / 1000, fileVersion: 'brain.Event:2' })));
  }

  scalar(tag: string, value: number, step: number): void {
    fs.writeSync(this.fd, frameRecord(encodeEvent({ wallTime: Date.now() / 1000, step, scalar: { tag, value } })));
  }

  close(): void {
    if (this.fd >= 0) fs.closeSync(this.fd);
    this.fd = -1;
  }
}

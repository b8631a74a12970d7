/** Bad safetensors input: one clear SafetensorsError each, and a mutation property (no crash, hang or giant allocation). */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import fc from 'fast-check';
import { afterAll, describe, expect, it } from 'vitest';
import { MAX_HEADER_BYTES, SafetensorsError, SafetensorsFile, writeSafetensors } from './index.js';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'vrepa-st-bad-'));
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));
let counter = 0;

/** Raw file bytes: u64 LE header length, header JSON (as given, string or object), then data. */
function raw(header: unknown, data: Uint8Array | number, opts: { headerLen?: bigint } = {}): Uint8Array {
  const json = Buffer.from(typeof header === 'string' ? header : JSON.stringify(header), 'utf8');
  const body = typeof data === 'number' ? new Uint8Array(data) : data;
  const out = new Uint8Array(8 + json.length + body.length);
  new DataView(out.buffer).setBigUint64(0, opts.headerLen ?? BigInt(json.length), true);
  out.set(json, 8);
  out.set(body, 8 + json.length);
  return out;
}

function put(bytes: Uint8Array): string {
  const p = path.join(dir, `f${counter++}.safetensors`);
  fs.writeFileSync(p, bytes);
  return p;
}

/** Open and read every tensor; returns the error (or undefined when the file is valid). */
function attempt(p: string): unknown {
  try {
    const f = SafetensorsFile.open(p);
    try {
      for (const k of f.keys()) f.read(k);
    } finally {
      f.close();
    }
    return undefined;
  } catch (e) {
    return e;
  }
}

function expectRefused(bytes: Uint8Array, pattern: RegExp): void {
  const p = put(bytes);
  const e = attempt(p);
  expect(e, 'must be refused').toBeInstanceOf(SafetensorsError);
  const msg = (e as Error).message;
  expect(msg.startsWith(`${p}: `), msg).toBe(true);
  expect(msg).toMatch(pattern);
}

const ok = { a: { dtype: 'F32', shape: [2, 2], data_offsets: [0, 16] }, b: { dtype: 'I64', shape: [1], data_offsets: [16, 24] } };

describe('safetensors bad input: one clear error each', () => {
  it('accepts the well-formed base case', () => {
    expect(attempt(put(raw(ok, 24)))).toBeUndefined();
  });
  it('truncated file (data cut short)', () => {
    expectRefused(raw(ok, 24).subarray(0, 8 + JSON.stringify(ok).length + 20), /run past the 20-byte data section.*truncated/);
  });
  it('file shorter than the header length field', () => {
    expectRefused(new Uint8Array([1, 0, 0]), /3 bytes, shorter than the 8-byte header length/);
  });
  it('header length beyond the file', () => {
    expectRefused(raw(ok, 24, { headerLen: 10_000n }), /header length 10000 runs past the end of the \d+-byte file/);
  });
  it('header length above the limit (no giant allocation)', () => {
    expectRefused(raw(ok, 24, { headerLen: 2n ** 63n }), new RegExp(`exceeds the ${MAX_HEADER_BYTES}-byte limit`));
  });
  it('header that is not JSON', () => {
    expectRefused(raw('{"a": {', 0), /header is not valid UTF-8 JSON/);
  });
  it('header that is not an object', () => {
    expectRefused(raw('[1, 2]', 0), /header JSON is not an object/);
  });
  it('overlapping offsets', () => {
    expectRefused(raw({ a: { dtype: 'F32', shape: [2], data_offsets: [0, 8] }, b: { dtype: 'F32', shape: [2], data_offsets: [4, 12] } }, 12), /'b'.*\[4, 12\] overlap/);
  });
  it('out-of-range offsets', () => {
    expectRefused(raw({ a: { dtype: 'F32', shape: [4], data_offsets: [0, 16] } }, 8), /'a'.*\[0, 16\] run past the 8-byte data section/);
  });
  it('non-contiguous offsets (a gap)', () => {
    expectRefused(raw({ a: { dtype: 'F32', shape: [1], data_offsets: [4, 8] } }, 8), /'a'.*gap before/);
  });
  it('trailing bytes after the last tensor', () => {
    expectRefused(raw({ a: { dtype: 'F32', shape: [1], data_offsets: [0, 4] } }, 8), /8 bytes but the tensors cover 4/);
  });
  it('unknown dtype', () => {
    expectRefused(raw({ a: { dtype: 'F8_E4M3', shape: [1], data_offsets: [0, 1] } }, 1), /'a': unknown dtype "F8_E4M3" \(supported: F64, F32/);
    expectRefused(raw({ a: { dtype: 'constructor', shape: [1], data_offsets: [0, 1] } }, 1), /unknown dtype "constructor"/);
  });
  it('shape/byte-length mismatch', () => {
    expectRefused(raw({ a: { dtype: 'F32', shape: [3], data_offsets: [0, 8] } }, 8), /'a': shape \[3\] of F32 needs 12 bytes, data_offsets give 8/);
  });
  it('invalid shape and offsets', () => {
    expectRefused(raw({ a: { dtype: 'F32', shape: [-1], data_offsets: [0, 4] } }, 4), /'a': shape \[-1\] is not a list of non-negative integers/);
    expectRefused(raw({ a: { dtype: 'F32', shape: [1], data_offsets: [4, 0] } }, 4), /end before begin/);
    expectRefused(raw({ a: { dtype: 'F32', shape: [1], data_offsets: [0] } }, 4), /is not \[begin, end\]/);
  });
  it('metadata that is not strings', () => {
    expectRefused(raw({ __metadata__: { n: 1 } }, 0), /__metadata__.n is not a string/);
  });
  it('a missing file', () => {
    expect(() => SafetensorsFile.open(path.join(dir, 'nope.safetensors'))).toThrow(/nope\.safetensors: cannot open \(ENOENT\)/);
  });
});

/**
 * An independent statement of the format rules, for the property below: returns the tensors a
 * reader must report, or undefined when the bytes are not a valid file.
 */
function referenceParse(b: Uint8Array): Map<string, { dtype: string; shape: number[]; begin: number; end: number }> | undefined {
  const sizes: Record<string, number> = { F64: 8, F32: 4, F16: 2, BF16: 2, I64: 8, I32: 4, I16: 2, I8: 1, U8: 1, BOOL: 1 };
  if (b.length < 8) return undefined;
  const n = new DataView(b.buffer, b.byteOffset, b.byteLength).getBigUint64(0, true);
  if (n > BigInt(b.length - 8) || n > BigInt(MAX_HEADER_BYTES)) return undefined;
  let h: unknown;
  try {
    h = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(b.subarray(8, 8 + Number(n))));
  } catch {
    return undefined;
  }
  if (typeof h !== 'object' || h === null || Array.isArray(h)) return undefined;
  const dataLen = b.length - 8 - Number(n);
  const out = new Map<string, { dtype: string; shape: number[]; begin: number; end: number }>();
  for (const [k, v] of Object.entries(h as Record<string, any>)) {
    if (k === '__metadata__') {
      if (typeof v !== 'object' || v === null || Array.isArray(v) || Object.values(v).some((x) => typeof x !== 'string')) return undefined;
      continue;
    }
    if (typeof v !== 'object' || v === null || Array.isArray(v)) return undefined;
    if (!Object.hasOwn(sizes, v.dtype)) return undefined;
    if (!Array.isArray(v.shape) || v.shape.some((d: unknown) => !Number.isSafeInteger(d) || (d as number) < 0)) return undefined;
    const o = v.data_offsets;
    if (!Array.isArray(o) || o.length !== 2 || o.some((d: unknown) => !Number.isSafeInteger(d) || (d as number) < 0)) return undefined;
    if (o[1] < o[0] || o[1] > dataLen) return undefined;
    if (v.shape.reduce((a: number, d: number) => a * d, 1) * sizes[v.dtype]! !== o[1] - o[0]) return undefined;
    out.set(k, { dtype: v.dtype, shape: v.shape, begin: o[0], end: o[1] });
  }
  const sorted = [...out.values()].sort((a, c) => a.begin - c.begin || a.end - c.end);
  let cur = 0;
  for (const t of sorted) {
    if (t.begin !== cur) return undefined;
    cur = t.end;
  }
  return cur === dataLen ? out : undefined;
}

describe('safetensors mutation property', () => {
  const base = path.join(dir, 'base.safetensors');
  writeSafetensors(
    base,
    {
      w: { dtype: 'F32', shape: [3, 4], data: Float32Array.from({ length: 12 }, (_, i) => i / 7) },
      h: { dtype: 'F16', shape: [5], data: Float32Array.from([1, -2, 0.5, 65504, 0]) },
      ids: { dtype: 'I64', shape: [2], data: new BigInt64Array([3n, -4n]) },
      m: { dtype: 'BOOL', shape: [3], data: Uint8Array.from([1, 0, 1]) },
    },
    { metadata: { format: 'pt' } },
  );
  const good = new Uint8Array(fs.readFileSync(base));
  const headerLen = Number(new DataView(good.buffer, good.byteOffset).getBigUint64(0, true));

  const mutation = fc.oneof(
    fc.record({ kind: fc.constant('flip' as const), at: fc.nat(good.length - 1), xor: fc.integer({ min: 1, max: 255 }) }),
    fc.record({ kind: fc.constant('truncate' as const), at: fc.nat(good.length - 1) }),
    fc.record({ kind: fc.constant('headerLen' as const), value: fc.bigInt({ min: 0n, max: 2n ** 64n - 1n }) }),
    fc.record({ kind: fc.constant('number' as const), which: fc.nat(200), value: fc.oneof(fc.integer({ min: -5, max: 100 }), fc.constant(2 ** 53), fc.constant(1e300)) }),
    fc.record({ kind: fc.constant('append' as const), bytes: fc.uint8Array({ minLength: 1, maxLength: 16 }) }),
  );

  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  function mutate(m: any): Uint8Array {
    const b = good.slice();
    switch (m.kind) {
      case 'flip':
        b[m.at] ^= m.xor;
        return b;
      case 'truncate':
        return b.subarray(0, m.at);
      case 'headerLen':
        new DataView(b.buffer).setBigUint64(0, m.value, true);
        return b;
      case 'number': {
        // Replace the k-th number inside the header JSON (offsets, shape entries) keeping the length.
        const text = Buffer.from(b.subarray(8, 8 + headerLen)).toString('latin1');
        const nums = [...text.matchAll(/\d+/g)];
        const hit = nums[m.which % nums.length]!;
        const replaced = text.slice(0, hit.index) + String(m.value) + text.slice(hit.index! + hit[0].length);
        const json = Buffer.from(replaced, 'latin1');
        const out = new Uint8Array(8 + json.length + (b.length - 8 - headerLen));
        new DataView(out.buffer).setBigUint64(0, BigInt(json.length), true);
        out.set(json, 8);
        out.set(b.subarray(8 + headerLen), 8 + json.length);
        return out;
      }
      case 'append': {
        const out = new Uint8Array(b.length + m.bytes.length);
        out.set(b);
        out.set(m.bytes, b.length);
        return out;
      }
    }
    throw new Error('unknown mutation');
  }

  it('every mutated file is either parsed correctly or refused with a SafetensorsError', () => {
    const p = path.join(dir, 'mut.safetensors');
    fc.assert(
      fc.property(mutation, (m) => {
        const bytes = mutate(m);
        fs.writeFileSync(p, bytes);
        const want = referenceParse(bytes);
        let f: SafetensorsFile | undefined;
        try {
          f = SafetensorsFile.open(p);
        } catch (e) {
          if (!(e instanceof SafetensorsError)) throw e;
          expect(e.message.startsWith(`${p}: `)).toBe(true);
          expect(want, `refused a valid file: ${e.message}`).toBeUndefined();
          return;
        }
        try {
          expect(want, 'accepted an invalid file').toBeDefined();
          expect(new Set(f.keys())).toEqual(new Set(want!.keys()));
          for (const [k, t] of want!) {
            const info = f.info(k);
            expect([info.dtype, info.shape, info.begin, info.end]).toEqual([t.dtype, t.shape, t.begin, t.end]);
            const h = f.read(k);
            expect(h.data.length).toBe(t.shape.reduce((a, d) => a * d, 1));
          }
        } finally {
          f.close();
        }
      }),
      { numRuns: 250, seed: 20261125 },
    );
  });
});

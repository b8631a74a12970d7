/** The restricted unpickler on hand-assembled pickles: what it builds, and what it refuses. */
import fs from 'node:fs';
import path from 'node:path';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { PickleDict, PickleError, PickleGlobalRefusedError, PickleOpaque, TorchTensorRef, unpickle } from './index.js';

/** Assemble a pickle from opcodes: strings are latin-1 text, numbers single bytes. */
function P(...parts: (string | number | Uint8Array)[]): Uint8Array {
  const out: number[] = [];
  for (const p of parts) {
    if (typeof p === 'number') out.push(p);
    else if (typeof p === 'string') for (const c of p) out.push(c.charCodeAt(0));
    else out.push(...p);
  }
  return Uint8Array.from(out);
}
const u32 = (v: number) => Uint8Array.from([v & 255, (v >> 8) & 255, (v >> 16) & 255, (v >>> 24) & 255]);
const binunicode = (s: string) => {
  const b = new TextEncoder().encode(s);
  return P('X', u32(b.length), b);
};

describe('restricted unpickler', () => {
  it('builds dicts, lists, tuples, scalars and strings (protocol 2 opcodes)', () => {
    const v = unpickle(P(0x80, 2, '}', '(', binunicode('a'), 'K', 7, binunicode('b'), ']', '(', 'N', 0x88, 0x89, 'e', binunicode('ü'), 'G', Uint8Array.from([0x3f, 0xf8, 0, 0, 0, 0, 0, 0]), 'u', '.'));
    expect(v).toBeInstanceOf(PickleDict);
    const d = v as PickleDict;
    expect(d.map.get('a')).toBe(7);
    expect(d.map.get('b')).toEqual([null, true, false]);
    expect(d.map.get('ü')).toBe(1.5);
  });

  it('decodes LONG1 integers of any sign and size', () => {
    expect(unpickle(P(0x80, 2, 0x8a, 1, 0xff, '.'))).toBe(-1);
    expect(unpickle(P(0x80, 2, 0x8a, 2, 0x00, 0x80, '.'))).toBe(-32768);
    expect(unpickle(P(0x80, 2, 0x8a, 9, 0, 0, 0, 0, 0, 0, 0, 0, 1, '.'))).toBe(2n ** 64n);
  });

  it('refuses a non-allowlisted GLOBAL at the opcode that names it (before any REDUCE)', () => {
    const bytes = P(0x80, 2, 'c', 'builtins\neval\n', binunicode('1+1'), 0x85, 'R', '.');
    let err: unknown;
    try {
      unpickle(bytes, { file: 'evil.pkl' });
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(PickleGlobalRefusedError);
    expect((err as PickleGlobalRefusedError).global).toBe('builtins.eval');
    expect((err as PickleError).offset).toBe(2); // the GLOBAL opcode, not the REDUCE after it
    expect((err as Error).message).toMatch(/^evil\.pkl: the pickle names the global 'builtins\.eval'.*nothing was executed/);
  });

  it('refuses STACK_GLOBAL of os.system, INST/OBJ, and REDUCE of a non-global', () => {
    expect(() => unpickle(P(0x80, 4, 0x8c, 2, 'os', 0x8c, 6, 'system', 0x93, '.'))).toThrow(/'os\.system'/);
    expect(() => unpickle(P('(', 'i', 'os\nsystem\n', '.'))).toThrow(/INST/);
    expect(() => unpickle(P(0x80, 2, ']', ')', 'R', '.'))).toThrow(/REDUCE calls a tuple\/list/);
    expect(() => unpickle(P(0x80, 2, 'c', 'torch\nFloatStorage\n', ')', 'R', '.'))).toThrow(/'torch\.FloatStorage' cannot be called/);
  });

  it('accepts explicitly allowed globals as inert records, never calling them', () => {
    const bytes = P(0x80, 2, 'c', 'argparse\nNamespace\n', ')', 0x81, '}', '(', binunicode('lr'), 'K', 1, 'u', 'b', '.');
    expect(() => unpickle(bytes)).toThrow(/'argparse\.Namespace'/);
    const v = unpickle(bytes, { allowGlobals: ['argparse.Namespace'] });
    expect(v).toBeInstanceOf(PickleOpaque);
    expect((v as PickleOpaque).state).toBeInstanceOf(PickleDict);
  });

  it('rebuilds a tensor description from a persistent storage id', () => {
    // _rebuild_tensor_v2(('storage', FloatStorage, '0', 'cpu', 6), 1, (2, 2), (3, 1), False, OrderedDict())
    const bytes = P(
      0x80, 2, 'c', 'torch._utils\n_rebuild_tensor_v2\n',
      '(', '(', binunicode('storage'), 'c', 'torch\nFloatStorage\n', binunicode('0'), binunicode('cpu'), 'K', 6, 't', 'Q',
      'K', 1, 'K', 2, 'K', 2, 0x86, 'K', 3, 'K', 1, 0x86, 0x89, 'c', 'collections\nOrderedDict\n', ')', 'R', 't', 'R', '.',
    );
    const t = unpickle(bytes) as TorchTensorRef;
    expect(t).toBeInstanceOf(TorchTensorRef);
    expect([t.storage.key, t.dtype, t.offset, t.shape, t.stride, t.isContiguous()]).toEqual(['0', 'F32', 1, [2, 2], [3, 1], false]);
    // A view reaching past the declared storage is refused.
    const bad = bytes.slice();
    bad[bad.indexOf(0x51) + 2] = 9; // storage offset 9 of 6 elements
    expect(() => unpickle(bad)).toThrow(/reaches element \d+ of storage '0' which has 6/);
  });

  it('refuses truncated and malformed pickles with a PickleError', () => {
    expect(() => unpickle(P(0x80, 2, '}', 'X', u32(100), 'ab'))).toThrow(/truncated pickle/);
    expect(() => unpickle(P(0x80, 2, '}'))).toThrow(/ended without STOP/);
    expect(() => unpickle(P(0x80, 2, 'h', 5, '.'))).toThrow(/memo key 5 was never stored/);
    expect(() => unpickle(P(0x80, 2, 0xff))).toThrow(/unknown pickle opcode 0xff/);
  });

  it('random bytes and mutated real pickles never crash: a value or a PickleError (property)', () => {
    const real = fs.readFileSync(path.join(import.meta.dirname, '__testdata__', 'nested_p2.pth'));
    // take data.pkl out of the (stored) zip: it starts after its local header
    const start = real.indexOf(Buffer.from([0x80, 0x02]));
    const pkl = new Uint8Array(real.subarray(start, start + 3000));
    fc.assert(
      fc.property(fc.oneof(fc.uint8Array({ maxLength: 200 }), fc.tuple(fc.nat(pkl.length - 1), fc.integer({ min: 1, max: 255 })).map(([at, x]) => {
        const b = pkl.slice();
        b[at] ^= x;
        return b;
      })), (bytes) => {
        try {
          unpickle(bytes);
        } catch (e) {
          if (!(e instanceof PickleError)) throw e;
        }
      }),
      { numRuns: 500, seed: 11 },
    );
  });
});

describe('no code path to execution', () => {
  it('the checkpoint readers import nothing that can run code (no child_process, vm, eval, Function)', () => {
    for (const f of ['pickle.ts', 'pth.ts', 'zip.ts', 'checkpoint.ts', 'convert.ts', 'sharded.ts', 'safetensors.ts']) {
      const src = fs.readFileSync(path.join(import.meta.dirname, f), 'utf8');
      expect(src, f).not.toMatch(/child_process|node:vm|\beval\s*\(|new Function\b|\brequire\s*\(|import\s*\(/);
    }
  });
});

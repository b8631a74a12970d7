/**
 * The .pth reader against files written by torch.save (src/__testdata__, made by make_testdata.py with
 * torch 2.13): each `<name>.pth` must give exactly the tensors that Python's safetensors wrote into
 * `<name>.expected.safetensors` (contiguous copies as torch sees them) — every dtype, strided views,
 * shared storages, nested containers, pickle protocols 2/4/5, deflate + zip64 archives.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { PthError, PthFile, SafetensorsFile, ZipReader, collectTensors, writeZip } from './index.js';

const td = path.join(import.meta.dirname, '__testdata__');
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'vrepa-pth-'));
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

const cases = [
  ['dtypes.pth', 'dtypes.expected.safetensors'],
  ['dtypes_deflate_zip64.pth', 'dtypes.expected.safetensors'],
  ['views.pth', 'views.expected.safetensors'],
  ['nested_p2.pth', 'nested_p2.expected.safetensors'],
  ['nested_p4.pth', 'nested_p4.expected.safetensors'],
  ['nested_p5.pth', 'nested_p5.expected.safetensors'],
] as const;

describe('PthFile', () => {
  for (const [pth, expected] of cases) {
    it(`${pth} decodes exactly as torch sees it`, () => {
      const f = PthFile.open(path.join(td, pth));
      const e = SafetensorsFile.open(path.join(td, expected));
      try {
        const refs = collectTensors(f.root);
        expect(new Set(refs.keys())).toEqual(new Set(e.keys()));
        for (const [name, ref] of refs) {
          const got = f.readTensor(ref);
          const want = e.read(name);
          expect([got.dtype, got.shape], name).toEqual([want.dtype, want.shape]);
          expect(got.data.constructor, name).toBe(want.data.constructor);
          const same = got.data.length === want.data.length && Array.prototype.every.call(got.data, (v: unknown, i: number) => Object.is(v, want.data[i]));
          expect(same, `${pth}:${name} values`).toBe(true);
        }
      } finally {
        f.close();
        e.close();
      }
    });
  }

  it('views that are not contiguous are recognised as such (so the gather path is exercised)', () => {
    const f = PthFile.open(path.join(td, 'views.pth'));
    const refs = collectTensors(f.root);
    const nonContig = [...refs].filter(([, r]) => !r.isContiguous()).map(([n]) => n);
    expect(nonContig.sort()).toEqual(['channels_last', 'expanded', 'half_t', 'permuted_i64', 'sliced', 'transposed']);
    expect(refs.get('row')!.offset).toBeGreaterThan(0); // a contiguous view at a storage offset
    f.close();
  });

  it('refuses a legacy (non-zip) file with a conversion recipe', () => {
    const p = path.join(dir, 'legacy.pt');
    // what torch.save(..., _use_new_zipfile_serialization=False) starts with: PROTO 2, then the magic number
    fs.writeFileSync(p, Buffer.from([0x80, 0x02, 0x8a, 0x0a, 0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19, 0x2e]));
    expect(() => PthFile.open(p)).toThrow(PthError);
    expect(() => PthFile.open(p)).toThrow(/legacy.*pre-1\.6.*torch\.save\(torch\.load\(/);
  });

  it('refuses a file that is neither zip nor legacy', () => {
    const p = path.join(dir, 'junk.pth');
    fs.writeFileSync(p, 'hello, not a checkpoint');
    expect(() => PthFile.open(p)).toThrow(/junk\.pth: is not a PyTorch zip checkpoint/);
  });

  /** Re-pack dtypes.pth with a change to its entries. */
  function repack(edit: (name: string, data: Uint8Array) => Uint8Array | undefined, extra: { name: string; data: Uint8Array }[] = []): string {
    const src = ZipReader.open(path.join(td, 'dtypes.pth'));
    const files = src.names().flatMap((name) => {
      const d = edit(name, src.read(name));
      return d ? [{ name, data: d }] : [];
    });
    src.close();
    const p = path.join(dir, `repacked-${Math.random().toString(36).slice(2)}.pth`);
    writeZip(p, [...files, ...extra]);
    return p;
  }

  it('a storage entry that is missing or too short is a clear error naming it', () => {
    const missing = repack((n, d) => (n.endsWith('/data/0') ? undefined : d));
    expect(() => PthFile.open(missing)).toThrow(/uses storage '0', but the archive has no entry '.*\/data\/0'/);
    const short = repack((n, d) => (n.endsWith('/data/0') ? d.subarray(0, 4) : d));
    expect(() => PthFile.open(short)).toThrow(/storage '.*\/data\/0' of tensor '.*' has 4 bytes, its \d+ \w+Storage elements need \d+/);
  });

  it('refuses big-endian storages', () => {
    const p = repack((n, d) => (n.endsWith('/byteorder') ? new TextEncoder().encode('big') : d));
    expect(() => PthFile.open(p)).toThrow(/big-endian; only little-endian/);
  });

  it('closes its file when it refuses one (no descriptor leak)', () => {
    const fds = () => fs.readdirSync('/proc/self/fd').length;
    const before = fds();
    const bad = repack((n, d) => (n.endsWith('/data/0') ? undefined : d));
    for (let i = 0; i < 20; i++) expect(() => PthFile.open(bad)).toThrow();
    expect(fds()).toBe(before);
  });
});

describe('pickle bombs', () => {
  it('a tiny pickle whose shared lists expand to 2^40 paths is refused, not walked', () => {
    // L0 = []; Lk = [L(k-1), L(k-1)] for k = 1..40, all through the memo
    const ops: number[] = [0x80, 2, 0x5d, 0x71, 0];
    for (let k = 1; k <= 40; k++) ops.push(0x28, 0x68, k - 1, 0x68, k - 1, 0x6c, 0x71, k);
    ops.push(0x2e);
    const p = path.join(dir, 'bomb.pth');
    writeZip(p, [{ name: 'bomb/data.pkl', data: Uint8Array.from(ops) }]);
    const t0 = performance.now();
    expect(() => PthFile.open(p)).toThrow(/bomb\.pth: the pickled structure has more than \d+ nodes .*pickle bomb/);
    expect(performance.now() - t0).toBeLessThan(5000);
  });
});

describe('mutated .pth files', () => {
  it('every mutation of a real torch.save file is read or refused with a reader error (property)', async () => {
    const { default: fc } = await import('fast-check');
    const { PickleError, ZipError } = await import('./index.js');
    const good = new Uint8Array(fs.readFileSync(path.join(td, 'views.pth')));
    const p = path.join(dir, 'mutated.pth');
    fc.assert(
      fc.property(
        fc.oneof(
          fc.tuple(fc.nat(good.length - 1), fc.integer({ min: 1, max: 255 })).map(([at, x]) => {
            const b = good.slice();
            b[at] ^= x;
            return b;
          }),
          fc.nat(good.length - 1).map((at) => good.slice(0, at)),
        ),
        (bytes) => {
          fs.writeFileSync(p, bytes);
          try {
            const f = PthFile.open(p);
            try {
              for (const [, ref] of collectTensors(f.root)) {
                const h = f.readTensor(ref);
                expect(h.data.length).toBe(ref.numel);
              }
            } finally {
              f.close();
            }
          } catch (e) {
            if (!(e instanceof PthError || e instanceof ZipError || e instanceof PickleError)) throw e;
          }
        },
      ),
      { numRuns: 300, seed: 5 },
    );
  });
});

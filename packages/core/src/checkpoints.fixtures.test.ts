/**
 * Proof that the readers decode the shared fixture set, driven only by fixtures/index.json, the case
 * manifests and checkpoints/index.json (no file names or shapes in this test), so another fixture set
 * runs through it unchanged.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  PickleGlobalRefusedError,
  SafetensorsFile,
  findStateDict,
  fixturesDir,
  openCheckpoint,
  writeSafetensors,
  type HostTensor,
} from './index.js';

const fx = fixturesDir()!;
const index = JSON.parse(fs.readFileSync(path.join(fx, 'index.json'), 'utf8')) as {
  cases: { case: string; manifest: string; subcases: { name: string; file?: string; weights_file?: string }[] }[];
};
const ckIndexPath = path.join(fx, 'checkpoints', 'index.json');
const ckIndex = fs.existsSync(ckIndexPath)
  ? (JSON.parse(fs.readFileSync(ckIndexPath, 'utf8')) as { files: Record<string, unknown>[] })
  : { files: [] };

type Spec = Record<string, { shape: number[]; dtype: string }>;

function expectFileMatches(file: string, spec: Spec) {
  const f = SafetensorsFile.open(file);
  try {
    expect(new Set(f.keys()), file).toEqual(new Set(Object.keys(spec)));
    for (const [name, s] of Object.entries(spec)) {
      const info = f.info(name);
      expect(info.dtype, `${file}:${name}`).toBe(s.dtype);
      expect(info.shape, `${file}:${name}`).toEqual(s.shape);
      const h = f.read(name);
      expect(h.data.length, `${file}:${name}`).toBe(s.shape.reduce((a, b) => a * b, 1));
    }
  } finally {
    f.close();
  }
}

// Files the manifests name (collected up front so the coverage check does not depend on test order).
const covered = new Set<string>();
for (const c of index.cases) {
  const manifest = JSON.parse(fs.readFileSync(path.join(fx, c.manifest), 'utf8'));
  const dir = path.dirname(path.join(fx, c.manifest));
  for (const m of manifest.subcases as { file?: string; weights_file?: string }[]) {
    if (m.file) covered.add(path.resolve(dir, m.file));
    if (m.weights_file) covered.add(path.resolve(dir, m.weights_file));
  }
}
for (const entry of ckIndex.files) covered.add(path.resolve(path.join(fx, 'checkpoints', entry.file as string)));

describe('every fixture safetensors file decodes as its manifest says', () => {
  for (const c of index.cases) {
    it(`${c.case}`, () => {
      const manifest = JSON.parse(fs.readFileSync(path.join(fx, c.manifest), 'utf8'));
      const dir = path.dirname(path.join(fx, c.manifest));
      for (const sc of c.subcases) {
        const m = manifest.subcases.find((s: { name: string }) => s.name === sc.name);
        expect(m, `${c.case}/${sc.name} in its manifest`).toBeTruthy();
        if (m.file) expectFileMatches(path.join(dir, m.file), m.tensors);
        if (m.weights_file) expectFileMatches(path.join(dir, m.weights_file), m.weights);
      }
    });
  }
});

/** First word of an index.json text such as "encoder (also target_encoder)". */
const firstWord = (s: string) => s.trim().split(/\s+/)[0] ?? '';

/** An `expected` text: a path under the fixtures, or a case name whose only weights file is meant. */
function expectedWeightsFile(text: string): string {
  const w = firstWord(text);
  if (w.endsWith('.safetensors')) return path.join(fx, w);
  const c = index.cases.find((x) => x.case === w);
  const files = (c?.subcases ?? []).filter((s) => s.weights_file).map((s) => s.weights_file!);
  if (files.length !== 1) throw new Error(`checkpoints/index.json: cannot tell which weights '${text}' means`);
  return path.join(fx, files[0]!);
}

function readAll(file: string): Map<string, HostTensor> {
  const f = SafetensorsFile.open(file);
  try {
    return new Map(f.keys().map((k) => [k, f.read(k)]));
  } finally {
    f.close();
  }
}

function expectSameTensor(got: HostTensor, want: HostTensor, what: string) {
  expect(got.shape, what).toEqual(want.shape);
  expect(got.data.length, what).toBe(want.data.length);
  for (let i = 0; i < want.data.length; i++) {
    if (!Object.is(got.data[i], want.data[i])) throw new Error(`${what}: element ${i} is ${got.data[i]}, expected ${want.data[i]}`);
  }
}

describe('every file in fixtures/checkpoints yields what checkpoints/index.json says', () => {
  for (const entry of ckIndex.files) {
    const file = path.join(fx, 'checkpoints', entry.file as string);

    if (typeof entry.expect_error === 'string') {
      it(`${entry.file} is refused (${entry.expect_error})`, () => {
        const text = entry.expect_error as string;
        let err: unknown;
        try {
          openCheckpoint(file).close();
        } catch (e) {
          err = e;
        }
        expect(err, 'it must be refused').toBeInstanceOf(Error);
        const msg = (err as Error).message;
        expect(msg).toContain(file);
        const global = /\(([A-Za-z_][\w.]*\.[A-Za-z_]\w*)\)/.exec(text)?.[1];
        if (global) {
          // Refused at the opcode that NAMES the global, before any REDUCE could call it: nothing ran.
          expect(err).toBeInstanceOf(PickleGlobalRefusedError);
          const g = err as PickleGlobalRefusedError;
          expect(g.global).toBe(global);
          expect(msg).toContain(global);
        }
        if (/legacy/i.test(text)) {
          expect(msg).toMatch(/legacy/i);
          expect(msg).toMatch(/torch\.save/); // says how to convert
        }
      });
      continue;
    }

    if (typeof entry.state_dict_at === 'string' || typeof entry.layout === 'string') {
      it(`${entry.file} holds the expected tensors`, () => {
        const want = readAll(expectedWeightsFile(entry.expected as string));
        const extra = (entry.extra_keys as string[] | undefined) ?? [];
        const strip = (entry.strip_prefix as string | undefined) || undefined;
        const keys: (string | undefined)[] = typeof entry.state_dict_at === 'string' ? [firstWord(entry.state_dict_at)] : [undefined];
        const also = typeof entry.state_dict_at === 'string' ? /\(also ([\w.]+)\)/.exec(entry.state_dict_at)?.[1] : undefined;
        if (also) keys.push(also);
        for (const key of keys) {
          const ck = openCheckpoint(file, { key, stripPrefix: strip });
          try {
            expect(new Set(ck.tensors.keys()), `${entry.file} key ${key}`).toEqual(new Set([...want.keys(), ...extra]));
            for (const [name, w] of want) expectSameTensor(ck.tensors.get(name)!.read(), w, `${entry.file}:${key}:${name}`);
            if (key !== undefined && ck.tree !== undefined) expect(findStateDict(ck.tree)).toBe(keys[0]);
          } finally {
            ck.close();
          }
        }
        if (keys[0] && ck0IsPytorch(file)) {
          // Without `key` a nested checkpoint is an error that shows the structure and asks for `key`.
          expect(() => openCheckpoint(file)).toThrow(new RegExp(`nested.*'${keys[0]}'.*key`));
        }
      });
      continue;
    }

    if (typeof entry.dtype === 'string') {
      it(`${entry.file} holds the weights rounded to ${entry.dtype}`, () => {
        const want = readAll(expectedWeightsFile(entry.expected as string));
        // Our own rounding of the float32 weights must give the very same values as torch's.
        const rounded = path.join(os.tmpdir(), `vrepa-round-${process.pid}.safetensors`);
        writeSafetensors(rounded, want, { dtype: entry.dtype as 'F16' | 'BF16' });
        const ours = readAll(rounded);
        fs.rmSync(rounded);
        const ck = openCheckpoint(file);
        try {
          expect(new Set(ck.tensors.keys())).toEqual(new Set(want.keys()));
          const rel = entry.dtype === 'BF16' ? 2 ** -8 : 2 ** -11;
          for (const [name, w] of want) {
            const t = ck.tensors.get(name)!;
            expect(t.dtype).toBe(entry.dtype);
            const got = t.read();
            expectSameTensor(got, ours.get(name)!, `${entry.file}:${name}`);
            for (let i = 0; i < w.data.length; i++) {
              const a = got.data[i] as number;
              const b = w.data[i] as number;
              if (!(Math.abs(a - b) <= rel * Math.abs(b) + 2 ** -24)) throw new Error(`${entry.file}:${name}[${i}] = ${a} is not ${b} rounded`);
            }
          }
        } finally {
          ck.close();
        }
      });
    }
  }
});

function ck0IsPytorch(file: string): boolean {
  return !fs.statSync(file).isDirectory() && !file.endsWith('.safetensors');
}

describe('coverage', () => {
  it('every *.safetensors under the fixtures is named by a manifest or checkpoints/index.json', () => {
    const all: string[] = [];
    const walk = (d: string) => {
      for (const e of fs.readdirSync(d, { withFileTypes: true })) {
        const p = path.join(d, e.name);
        if (e.isDirectory()) walk(p);
        else if (e.name.endsWith('.safetensors')) all.push(path.resolve(p));
      }
    };
    walk(fx);
    const missing = all.filter((f) => !covered.has(f) && ![...covered].some((c) => f.startsWith(c + path.sep)));
    expect(missing).toEqual([]);
  });
});

import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import {
  CheckpointError,
  SafetensorsError,
  SafetensorsFile,
  ShardedSafetensors,
  findStateDict,
  loadHostTensors,
  openCheckpoint,
  writeSafetensors,
  type HostTensor,
} from './index.js';

const td = path.join(import.meta.dirname, '__testdata__');
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'vrepa-ckpt-'));
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

const vec = (...v: number[]): HostTensor => ({ dtype: 'F32', shape: [v.length], data: Float32Array.from(v) });
const values = (h: HostTensor) => Array.from(h.data as Float32Array);

describe('openCheckpoint on .pth', () => {
  const nested = path.join(td, 'nested_p2.pth');

  it('a nested checkpoint without key is an error that shows the structure and asks for key', () => {
    let msg = '';
    try {
      openCheckpoint(nested);
    } catch (e) {
      expect(e).toBeInstanceOf(CheckpointError);
      msg = (e as Error).message;
    }
    expect(msg).toContain(nested);
    expect(msg).toMatch(/state dict is nested/);
    expect(msg).toMatch(/'state_dict' \(dict of 9, 9 tensors\)/);
    expect(msg).toMatch(/'epoch' \(3\)/);
    expect(msg).toMatch(/Pass key .*'state_dict'/);
  });

  it('key selects the state dict; tensors equal what torch saved', () => {
    const ck = openCheckpoint(nested, { key: 'state_dict' });
    const exp = SafetensorsFile.open(path.join(td, 'nested_p2.expected.safetensors'));
    expect(ck.format).toBe('pytorch');
    expect([...ck.tensors.keys()]).toEqual(['0.weight', '0.bias', '1.weight', '1.bias', '2.weight', '2.bias', '2.running_mean', '2.running_var', '2.num_batches_tracked']);
    for (const [name, t] of ck.tensors) {
      expect(t.sourceName).toBe(`state_dict.${name}`);
      const want = exp.read(`state_dict.${name}`);
      expect(t.read()).toEqual(want);
    }
    expect(ck.tensors.get('2.num_batches_tracked')!.dtype).toBe('I64');
    exp.close();
    ck.close();
  });

  it('dotted keys walk nested dicts; tree summarises the structure', () => {
    const ck = openCheckpoint(nested, { key: 'ema.weights' });
    expect([...ck.tensors.keys()]).toEqual(['w0']);
    const tree = ck.tree as Record<string, unknown>;
    expect(tree.epoch).toBe(3);
    expect(tree.name).toBe('"tiny ünicode"');
    expect(tree.shape).toEqual([2, 3]);
    expect(tree.param).toBe('tensor [2, 2] F32');
    expect((tree.state_dict as Record<string, unknown>)['0.weight']).toBe('tensor [3, 4] F32');
    ck.close();
  });

  it('findStateDict picks the dict with the most tensors, only when asked', () => {
    const ck = openCheckpoint(nested, { key: findStateDict });
    expect(ck.tensors.size).toBe(9);
    expect(findStateDict(ck.tree)).toBe('state_dict');
    expect(findStateDict({ a: { x: 'tensor [1] F32' }, b: { x: 'tensor [1] F32', y: 'tensor [2] F32' }, c: '"tensor [1] F32"' })).toBe('b');
    expect(() => findStateDict({ a: 1 })).toThrow(/no dict in the checkpoint holds tensors/);
    ck.close();
  });

  it('a key that is not there names where it stopped and what is there', () => {
    expect(() => openCheckpoint(nested, { key: 'model' })).toThrow(/key 'model' not found: at the top level there is no 'model' \(keys there: 'state_dict'/);
    expect(() => openCheckpoint(nested, { key: 'ema.nope' })).toThrow(/at 'ema' there is no 'nope' \(keys there: 'decay' \(0\.999\), 'weights'/);
    expect(() => openCheckpoint(nested, { key: 'epoch' })).toThrow(/key 'epoch' selects 3, not a dict of tensors/);
  });

  it('a flat state dict is used as is; loadHostTensors reads everything', () => {
    const ck = openCheckpoint(path.join(td, 'dtypes.pth'));
    const all = loadHostTensors(ck);
    expect(all.size).toBe(12);
    expect(all.get('bf16')!.data).toBeInstanceOf(Float32Array);
    expect(all.get('i64')!.data).toBeInstanceOf(BigInt64Array);
    expect(ck.tensors.get('f16')!.byteLength).toBe(30);
    ck.close();
  });

  it('stripPrefix removes the prefix where present and must match something', () => {
    const ck = openCheckpoint(nested, { key: 'state_dict', stripPrefix: '2.' });
    expect([...ck.tensors.keys()]).toContain('running_mean');
    expect([...ck.tensors.keys()]).toContain('0.weight');
    ck.close();
    expect(() => openCheckpoint(nested, { key: 'state_dict', stripPrefix: 'module.' })).toThrow(/stripPrefix 'module\.' matches no tensor name \(9 names, e\.g\. '0\.weight'/);
  });
});

describe('openCheckpoint on safetensors', () => {
  const p = path.join(dir, 'm.safetensors');
  writeSafetensors(p, { 'model.a': vec(1, 2), 'model.b.c': vec(3), other: vec(4), a: vec(5) }, { metadata: { format: 'pt' } });

  it('reads every tensor lazily with metadata', () => {
    const ck = openCheckpoint(p);
    expect(ck.format).toBe('safetensors');
    expect(ck.metadata).toEqual({ format: 'pt' });
    expect([...ck.tensors.keys()]).toEqual(['model.a', 'model.b.c', 'other', 'a']);
    expect(values(ck.tensors.get('model.a')!.read())).toEqual([1, 2]);
    ck.close();
  });

  it('key selects a dotted sub-tree', () => {
    const ck = openCheckpoint(p, { key: 'model' });
    expect([...ck.tensors.keys()]).toEqual(['a', 'b.c']);
    ck.close();
    expect(() => openCheckpoint(p, { key: 'nope' })).toThrow(/key 'nope' selects nothing: no tensor name starts with 'nope\.' \(top-level names: model, other, a\)/);
  });

  it('stripping that makes two names equal is an error naming both', () => {
    expect(() => openCheckpoint(p, { stripPrefix: 'model.' })).toThrow(/'model\.a' and 'a' both become 'a'|'a' and 'model\.a' both become 'a'/);
  });

  it('an unknown file format is a clear error', () => {
    const q = path.join(dir, 'what.bin');
    fs.writeFileSync(q, 'plain text');
    expect(() => openCheckpoint(q)).toThrow(/what\.bin: is neither safetensors, a safetensors shard index, nor a PyTorch zip checkpoint/);
    expect(() => openCheckpoint(path.join(dir, 'absent.pth'))).toThrow(/absent\.pth: cannot open \(ENOENT\)/);
  });
});

describe('sharded safetensors (diffusers index layout)', () => {
  function makeSharded(name: string): string {
    const d = path.join(dir, name);
    fs.mkdirSync(d);
    writeSafetensors(path.join(d, 'model-00001-of-00002.safetensors'), { 'x.weight': vec(1, 2), 'x.bias': vec(3) });
    writeSafetensors(path.join(d, 'model-00002-of-00002.safetensors'), { 'y.weight': vec(4, 5, 6) });
    const index = {
      metadata: { total_size: 24 },
      weight_map: { 'x.weight': 'model-00001-of-00002.safetensors', 'x.bias': 'model-00001-of-00002.safetensors', 'y.weight': 'model-00002-of-00002.safetensors' },
    };
    fs.writeFileSync(path.join(d, 'model.safetensors.index.json'), JSON.stringify(index));
    return d;
  }

  it('reads through the index, from the index file or its folder', () => {
    const d = makeSharded('ok');
    for (const p of [path.join(d, 'model.safetensors.index.json'), d]) {
      const ck = openCheckpoint(p);
      expect(ck.format).toBe('safetensors-sharded');
      expect(ck.metadata).toEqual({ total_size: '24' });
      expect([...ck.tensors.keys()]).toEqual(['x.weight', 'x.bias', 'y.weight']);
      expect(values(ck.tensors.get('y.weight')!.read())).toEqual([4, 5, 6]);
      ck.close();
    }
  });

  it('a missing shard is a clear error naming it', () => {
    const d = makeSharded('missing');
    fs.rmSync(path.join(d, 'model-00002-of-00002.safetensors'));
    const idx = path.join(d, 'model.safetensors.index.json');
    expect(() => openCheckpoint(idx)).toThrow(SafetensorsError);
    expect(() => openCheckpoint(idx)).toThrow(/index\.json: shard 'model-00002-of-00002\.safetensors' is missing \(expected at .*; it holds 1 tensors, e\.g\. 'y\.weight'\)/);
  });

  it('a tensor absent from its shard, a shard outside the folder, or no weight_map are errors', () => {
    const d = makeSharded('bad');
    const idx = path.join(d, 'model.safetensors.index.json');
    const j = JSON.parse(fs.readFileSync(idx, 'utf8'));
    j.weight_map['z'] = 'model-00002-of-00002.safetensors';
    fs.writeFileSync(idx, JSON.stringify(j));
    expect(() => ShardedSafetensors.open(idx)).toThrow(/shard 'model-00002-of-00002\.safetensors' lacks 1 tensors the weight_map puts there, e\.g\. 'z'/);
    j.weight_map['z'] = '../../etc/passwd';
    fs.writeFileSync(idx, JSON.stringify(j));
    expect(() => ShardedSafetensors.open(idx)).toThrow(/names shard '\.\.\/\.\.\/etc\/passwd' outside the index's folder/);
    fs.writeFileSync(idx, JSON.stringify({ metadata: {} }));
    expect(() => ShardedSafetensors.open(idx)).toThrow(/no "weight_map" object/);
  });
});

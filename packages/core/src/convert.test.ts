import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { SafetensorsFile, convertCheckpoint, fixturesDir, floatToHalf, halfToFloat, inspectCheckpoint, writeSafetensors } from './index.js';

const td = path.join(import.meta.dirname, '__testdata__');
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'vrepa-convert-'));
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));
const fx = fixturesDir();

describe('convertCheckpoint', () => {
  it('.pth with key → one float32 safetensors file with the same tensors (ints keep their dtype)', () => {
    const out = path.join(dir, 'sd.safetensors');
    const r = convertCheckpoint(path.join(td, 'nested_p2.pth'), out, { key: 'state_dict' });
    expect(r).toMatchObject({ format: 'pytorch', tensors: 9 });
    const got = SafetensorsFile.open(out);
    const exp = SafetensorsFile.open(path.join(td, 'nested_p2.expected.safetensors'));
    expect(got.metadata).toEqual({ format: 'pt' });
    for (const k of got.keys()) expect(got.read(k)).toEqual(exp.read(`state_dict.${k}`));
    expect(got.info('2.num_batches_tracked').dtype).toBe('I64');
    expect(r.bytes).toBe(fs.statSync(out).size - 8 - (got.dataStart - 8));
    got.close();
    exp.close();
  });

  it('widens f16/bf16/f64 to f32 by default, or rounds floats to --dtype', () => {
    const f32 = path.join(dir, 'dtypes32.safetensors');
    convertCheckpoint(path.join(td, 'dtypes.pth'), f32);
    const a = SafetensorsFile.open(f32);
    const exp = SafetensorsFile.open(path.join(td, 'dtypes.expected.safetensors'));
    expect(['f32', 'f16', 'bf16', 'f64', 'i64', 'i8', 'bool'].map((k) => a.info(k).dtype)).toEqual(['F32', 'F32', 'F32', 'F32', 'I64', 'I8', 'BOOL']);
    expect(Array.from(a.read('f16').data as Float32Array)).toEqual(Array.from(exp.read('f16').data as Float32Array));
    expect(Array.from(a.read('f64').data as Float32Array)).toEqual(Array.from(exp.read('f64').data as Float64Array, Math.fround));
    const h = path.join(dir, 'dtypes16.safetensors');
    convertCheckpoint(path.join(td, 'dtypes.pth'), h, { dtype: 'f16' });
    const b = SafetensorsFile.open(h);
    expect(b.info('f32').dtype).toBe('F16');
    expect(b.info('i32').dtype).toBe('I32');
    const src = exp.read('f32').data as Float32Array;
    expect(Array.from(b.read('f32').data as Float32Array)).toEqual(Array.from(src, (v) => halfToFloat(floatToHalf(v))));
    for (const f of [a, b, exp]) f.close();
  });

  it('a refused input writes nothing and leaves an existing OUT untouched', () => {
    const before = fs.readdirSync(dir).sort();
    const out = path.join(dir, 'never.safetensors');
    const legacy = path.join(dir, 'legacy.pt');
    fs.writeFileSync(legacy, Buffer.from([0x80, 0x02, 0x8a, 0x0a, 0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19, 0x2e]));
    expect(() => convertCheckpoint(legacy, out)).toThrow(/legacy/);
    expect(() => convertCheckpoint(path.join(td, 'nested_p2.pth'), out)).toThrow(/nested/);
    if (fx) expect(() => convertCheckpoint(path.join(fx, 'checkpoints', 'refuse_global.pth'), out)).toThrow(/posix\.system/);
    expect(fs.existsSync(out)).toBe(false);
    const existing = path.join(dir, 'existing.safetensors');
    fs.writeFileSync(existing, 'keep me');
    expect(() => convertCheckpoint(legacy, existing)).toThrow();
    expect(fs.readFileSync(existing, 'utf8')).toBe('keep me');
    expect(fs.readdirSync(dir).sort()).toEqual([...before, 'existing.safetensors', 'legacy.pt'].sort());
  });

  it('a sharded index converts to one file', () => {
    const d = path.join(dir, 'shards');
    fs.mkdirSync(d);
    const v = (x: number[]) => ({ dtype: 'F32' as const, shape: [x.length], data: Float32Array.from(x) });
    writeSafetensors(path.join(d, 's1.safetensors'), { a: v([1]), b: v([2, 3]) });
    writeSafetensors(path.join(d, 's2.safetensors'), { c: v([4]) });
    fs.writeFileSync(path.join(d, 'm.safetensors.index.json'), JSON.stringify({ weight_map: { a: 's1.safetensors', b: 's1.safetensors', c: 's2.safetensors' } }));
    const out = path.join(dir, 'merged.safetensors');
    convertCheckpoint(path.join(d, 'm.safetensors.index.json'), out, { dtype: 'bf16' });
    const f = SafetensorsFile.open(out);
    expect(f.keys()).toEqual(['a', 'b', 'c']);
    expect(f.info('b').dtype).toBe('BF16');
    expect(Array.from(f.read('b').data as Float32Array)).toEqual([2, 3]);
    f.close();
  });
});

describe('inspectCheckpoint', () => {
  it('a nested .pth lists every tensor under its full path, the structure and the likely key', () => {
    const r = inspectCheckpoint(path.join(td, 'nested_p2.pth'));
    expect(r.format).toBe('pytorch');
    expect(r.rows.map((x) => x.name)).toContain('state_dict.0.weight');
    expect(r.rows.map((x) => x.name)).toContain('ema.weights.w0');
    expect(r.rows.find((x) => x.name === 'state_dict.0.weight')).toEqual({ name: 'state_dict.0.weight', dtype: 'F32', shape: [3, 4], bytes: 48 });
    expect(r.suggestedKey).toBe('state_dict');
    expect(r.stateDicts).toContainEqual({ key: 'state_dict', tensors: 9 });
    expect(r.totalBytes).toBe(r.rows.reduce((a, x) => a + x.bytes, 0));
    expect((r.tree as Record<string, unknown>).epoch).toBe(3);
  });

  it('with key/stripPrefix the rows are what openCheckpoint gives; safetensors rows carry metadata', () => {
    const r = inspectCheckpoint(path.join(td, 'nested_p2.pth'), { key: 'state_dict', stripPrefix: '0.' });
    expect(r.rows.slice(0, 2).map((x) => x.name)).toEqual(['weight', 'bias']);
    const s = inspectCheckpoint(path.join(td, 'dtypes.expected.safetensors'));
    expect(s.format).toBe('safetensors');
    expect(s.rows.find((x) => x.name === 'bf16')).toEqual({ name: 'bf16', dtype: 'BF16', shape: [3, 5], bytes: 30 });
  });
});

import fs from 'node:fs';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { fixturesDir, SafetensorsFile, writeSafetensors, type HostTensor } from '@vrepa/core';
import { recordingIO } from '../io.js';
import { runCli } from '../main.js';
import { removeTempDirs, tempDir } from '../test-helpers.js';

afterAll(removeTempDirs);

const host = (dtype: HostTensor['dtype'], shape: number[], values: number[]): HostTensor => ({
  dtype,
  shape,
  data: dtype === 'I32' ? Int32Array.from(values) : Float32Array.from(values),
});

function sampleFile(dir: string): string {
  const file = path.join(dir, 'sample.safetensors');
  writeSafetensors(
    file,
    {
      'module.blocks.0.attn.qkv.weight': host('F32', [2, 3], [1, 2, 3, 4, 5, 6]),
      'module.norm.bias': host('F16', [4], [0.5, -1, 2, 1 / 3]),
      'module.step': host('I32', [], [7]),
    },
    { metadata: { format: 'pt', note: 'sample' } },
  );
  return file;
}

async function cli(args: string[]) {
  const io = recordingIO();
  const code = await runCli(args, { io, packages: [] });
  return { code, out: io.stdout(), err: io.stderr() };
}

describe('vrepa inspect', () => {
  it('prints every tensor with dtype, shape and bytes, plus metadata and totals', async () => {
    const file = sampleFile(tempDir());
    const { code, out } = await cli(['inspect', file]);
    expect(code).toBe(0);
    // bytes = elements × dtype size: 6×4, 4×2, 1×4
    expect(out).toMatch(/module\.blocks\.0\.attn\.qkv\.weight\s+F32\s+\[2, 3\]\s+24\n/);
    expect(out).toMatch(/module\.norm\.bias\s+F16\s+\[4\]\s+8\n/);
    expect(out).toMatch(/module\.step\s+I32\s+\[\]\s+4\n/);
    expect(out).toContain('3 tensors · 11 values · 36 B');
    expect(out).toContain('format = pt');
    expect(out).toContain('note = sample');
  });

  it('--json, --filter and --strip-prefix', async () => {
    const file = sampleFile(tempDir());
    const { code, out } = await cli(['inspect', file, '--json', '--filter', 'norm', '--strip-prefix', 'module.']);
    expect(code).toBe(0);
    const j = JSON.parse(out);
    expect(j.tensors).toEqual([{ name: 'norm.bias', dtype: 'F16', shape: [4], bytes: 8 }]);
    expect(j).toMatchObject({ total_tensors: 1, total_params: 4, total_bytes: 8, metadata: { format: 'pt', note: 'sample' } });
  });

  it('a missing or corrupt file exits 1 with an error naming it', async () => {
    const dir = tempDir();
    const missing = await cli(['inspect', path.join(dir, 'nope.safetensors')]);
    expect(missing.code).toBe(1);
    expect(missing.err).toContain('nope.safetensors');
    const bad = path.join(dir, 'bad.safetensors');
    fs.writeFileSync(bad, Buffer.from([0xff, 0xff, 0, 0, 0, 0, 0, 0, 1, 2, 3]));
    const corrupt = await cli(['inspect', bad]);
    expect(corrupt.code).toBe(1);
    expect(corrupt.err).toContain('bad.safetensors');
    expect((await cli(['inspect'])).code).toBe(2);
  });

  it('reads a real fixture file: the bf16 checkpoint copy holds only BF16 tensors', async () => {
    const dir = fixturesDir();
    const file = dir && path.join(dir, 'checkpoints', 'videomaev2.bf16.safetensors');
    expect(file && fs.existsSync(file), 'shared fixtures present').toBe(true);
    const { code, out } = await cli(['inspect', file!, '--json']);
    expect(code).toBe(0);
    const j = JSON.parse(out);
    const f = SafetensorsFile.open(file!);
    try {
      expect(j.tensors.length).toBe(f.tensors.size);
      for (const t of j.tensors) {
        expect(t.dtype).toBe('BF16');
        expect(t.shape).toEqual(f.info(t.name).shape);
        expect(t.bytes).toBe(f.info(t.name).end - f.info(t.name).begin);
      }
    } finally {
      f.close();
    }
  });
});

describe('vrepa convert', () => {
  it('strips a prefix and narrows floats to --dtype bf16 (round to nearest even), integers unchanged', async () => {
    const dir = tempDir();
    const file = sampleFile(dir);
    const out = path.join(dir, 'converted.safetensors');
    const r = await cli(['convert', file, out, '--strip-prefix', 'module.', '--dtype', 'bf16']);
    expect(r.code).toBe(0);
    expect(r.out).toContain('wrote');
    const f = SafetensorsFile.open(out);
    try {
      expect(f.keys().sort()).toEqual(['blocks.0.attn.qkv.weight', 'norm.bias', 'step']);
      expect(f.info('blocks.0.attn.qkv.weight').dtype).toBe('BF16');
      expect(Array.from(f.read('blocks.0.attn.qkv.weight').data as Float32Array)).toEqual([1, 2, 3, 4, 5, 6]);
      // 1/3 as f16 is 0.333251953125; to bf16 (8 significant bits) it rounds to 0.333984375.
      const bias = Array.from(f.read('norm.bias').data as Float32Array);
      expect(bias.slice(0, 3)).toEqual([0.5, -1, 2]);
      expect(bias[3]).toBe(0.333984375);
      expect(f.info('step').dtype).toBe('I32');
    } finally {
      f.close();
    }
  });

  it('writes float32 by default', async () => {
    const dir = tempDir();
    const out = path.join(dir, 'f32.safetensors');
    expect((await cli(['convert', sampleFile(dir), out])).code).toBe(0);
    const f = SafetensorsFile.open(out);
    try {
      expect(f.info('module.norm.bias').dtype).toBe('F32');
      expect(f.info('module.blocks.0.attn.qkv.weight').dtype).toBe('F32');
    } finally {
      f.close();
    }
  });

  it('a refused input exits non-zero, writes nothing and leaves no partial output', async () => {
    const dir = tempDir();
    const bad = path.join(dir, 'truncated.safetensors');
    const good = fs.readFileSync(sampleFile(dir));
    fs.writeFileSync(bad, good.subarray(0, good.length - 5));
    const out = path.join(dir, 'never.safetensors');
    const r = await cli(['convert', bad, out]);
    expect(r.code).toBe(1);
    expect(r.err).toContain('truncated.safetensors');
    expect(fs.existsSync(out)).toBe(false);
    const wrongPrefix = await cli(['convert', sampleFile(dir), out, '--strip-prefix', 'encoder.']);
    expect(wrongPrefix.code).toBe(1);
    expect(wrongPrefix.err).toContain('encoder.');
    expect(fs.existsSync(out)).toBe(false);
    expect(fs.readdirSync(dir).filter((n) => n.includes('never'))).toEqual([]);
    const noFolder = await cli(['convert', sampleFile(dir), path.join(dir, 'missing', 'x.safetensors')]);
    expect(noFolder.code).toBe(1);
    expect(noFolder.err).toContain('does not exist');
    expect(fs.existsSync(path.join(dir, 'missing'))).toBe(false);
  });

  it('usage errors exit 2: bad --dtype, output not .safetensors, missing arguments', async () => {
    const dir = tempDir();
    const file = sampleFile(dir);
    const dtype = await cli(['convert', file, path.join(dir, 'o.safetensors'), '--dtype', 'int4']);
    expect(dtype.code).toBe(2);
    expect(dtype.err).toContain('--dtype int4 is not supported');
    expect((await cli(['convert', file, path.join(dir, 'o.bin')])).code).toBe(2);
    expect((await cli(['convert', file])).code).toBe(2);
    expect(fs.readdirSync(dir)).toEqual(['sample.safetensors']);
  });
});

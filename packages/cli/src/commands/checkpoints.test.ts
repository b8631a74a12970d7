// `vrepa inspect` / `vrepa convert` on the real checkpoint layouts in the shared fixtures, driven by
// fixtures/checkpoints/index.json (where the state dict sits, the prefix, the extra keys, the expected
// tensors) — nothing here names a file's tensors.
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { fixturesDir, SafetensorsFile } from '@vrepa/core';
import { recordingIO } from '../io.js';
import { runCli } from '../main.js';
import { removeTempDirs, tempDir } from '../test-helpers.js';

afterAll(removeTempDirs);

const fixtures = fixturesDir();
const ckDir = fixtures && path.join(fixtures, 'checkpoints');
const index = ckDir && fs.existsSync(path.join(ckDir, 'index.json')) ? JSON.parse(fs.readFileSync(path.join(ckDir, 'index.json'), 'utf8')) : undefined;
type Entry = { file: string; state_dict_at?: string; strip_prefix?: string; extra_keys?: string[]; expected?: string; expect_error?: string; layout?: string };
const entries: Entry[] = index?.files ?? [];

async function cli(args: string[]) {
  const io = recordingIO();
  const code = await runCli(args, { io, packages: [] });
  return { code, out: io.stdout(), err: io.stderr() };
}

function expectSameTensors(got: SafetensorsFile, want: SafetensorsFile) {
  for (const name of want.keys()) {
    expect(got.has(name), `converted file has ${name}`).toBe(true);
    expect(got.info(name).shape).toEqual(want.info(name).shape);
    expect(Array.from(got.read(name).data as Float32Array)).toEqual(Array.from(want.read(name).data as Float32Array));
  }
}

describe('vrepa inspect / convert on the shared checkpoint layouts', () => {
  it('the checkpoint index is present', () => {
    expect(entries.length, `${ckDir}/index.json lists files`).toBeGreaterThan(0);
  });

  const pthEntries = entries.filter((e) => e.file.endsWith('.pth') && e.state_dict_at && e.expected);
  it.each(pthEntries.map((e) => [e.file, e] as const))('%s: inspect shows where the state dict sits; convert --key/--strip-prefix gives the expected tensors', async (_f, e) => {
    const file = path.join(ckDir!, e.file);
    const key = e.state_dict_at!.split(/\s/)[0]!; // "encoder (also target_encoder)" → encoder
    const shown = await cli(['inspect', file, '--json']);
    expect(shown.code).toBe(0);
    const j = JSON.parse(shown.out);
    expect(j.format).toBe('pytorch');
    expect(j.state_dicts.map((d: { key: string }) => d.key)).toContain(key);

    const out = path.join(tempDir(), 'converted.safetensors');
    const args = ['convert', file, out, '--key', key];
    if (e.strip_prefix) args.push('--strip-prefix', e.strip_prefix);
    const r = await cli(args);
    expect(r.code, r.err).toBe(0);
    const got = SafetensorsFile.open(out);
    const want = SafetensorsFile.open(path.join(fixtures!, e.expected!));
    try {
      expectSameTensors(got, want);
      const extra = got.keys().filter((k) => !want.has(k)).sort();
      expect(extra).toEqual([...(e.extra_keys ?? [])].sort());
    } finally {
      got.close();
      want.close();
    }
  });

  it('--key auto picks the state dict the index names', async () => {
    for (const e of pthEntries) {
      const key = e.state_dict_at!.split(/\s/)[0]!;
      const r = await cli(['inspect', path.join(ckDir!, e.file), '--json']);
      expect(JSON.parse(r.out).suggested_key, e.file).toBe(key);
      const auto = await cli(['inspect', path.join(ckDir!, e.file), '--key', 'auto', '--json']);
      const explicit = await cli(['inspect', path.join(ckDir!, e.file), '--key', key, '--json']);
      expect(auto.code, auto.err).toBe(0);
      expect(JSON.parse(auto.out).tensors).toEqual(JSON.parse(explicit.out).tensors);
    }
  });

  const refused = entries.filter((e) => e.expect_error);
  it.each(refused.map((e) => [e.file, e] as const))('%s: inspect and convert refuse it with a clear error and write nothing', async (_f, e) => {
    const file = path.join(ckDir!, e.file);
    const dir = tempDir();
    const out = path.join(dir, 'never.safetensors');
    const r = await cli(['convert', file, out, '--key', 'model']);
    expect(r.code).toBe(1);
    expect(r.err).toContain(e.file);
    // the reason the index asks for: the legacy format, or the global that must not run
    const what = /posix\.system/.exec(e.expect_error!)?.[0] ?? 'legacy';
    expect(r.err).toContain(what);
    expect(fs.readdirSync(dir)).toEqual([]);
    const i = await cli(['inspect', file]);
    expect(i.code).toBe(1);
    expect(i.err).toContain(what);
  });

  it('a sharded diffusers checkpoint: inspect the index, convert to one file equal to the expected weights', async () => {
    const e = entries.find((x) => x.layout?.includes('sharded'));
    expect(e, 'index lists a sharded layout').toBeDefined();
    const folder = path.join(ckDir!, e!.file);
    const indexFile = fs.readdirSync(folder).find((f) => f.endsWith('.index.json'))!;
    const shown = await cli(['inspect', path.join(folder, indexFile), '--json']);
    expect(shown.code).toBe(0);
    const j = JSON.parse(shown.out);
    expect(j.format).toBe('safetensors-sharded');
    const weightMap = JSON.parse(fs.readFileSync(path.join(folder, indexFile), 'utf8')).weight_map as Record<string, string>;
    expect(j.tensors.map((t: { name: string }) => t.name).sort()).toEqual(Object.keys(weightMap).sort());

    const out = path.join(tempDir(), 'merged.safetensors');
    expect((await cli(['convert', path.join(folder, indexFile), out])).code).toBe(0);
    const expectedFile = path.join(fixtures!, e!.expected!.split(/\s/)[0]!);
    const got = SafetensorsFile.open(out);
    const want = SafetensorsFile.open(expectedFile);
    try {
      expectSameTensors(got, want);
    } finally {
      got.close();
      want.close();
    }
  });
});

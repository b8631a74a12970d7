import fs from 'node:fs';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { recordingIO } from '../io.js';
import { runCli } from '../main.js';
import { fakePackage, scaleHandler, removeTempDirs, tempDir, writeSyntheticCase } from '../test-helpers.js';
import { formatRatio } from './conformance.js';

afterAll(removeTempDirs);

// Handlers come from a fake package, the way real packages export them.
const handlerPkg = fakePackage('@vrepa/synthetic', {
  conformanceHandlers: { synth_scale: scaleHandler, synth_off: scaleHandler },
});

function fixtureDir(opts: { failing: boolean; unhandled: boolean }): string {
  const dir = tempDir();
  writeSyntheticCase(dir, 'synth_scale', [
    { name: 'exact', scale: 2, x: [1, -2, 3.5, 0], tolerance: 'absolute 1e-6' },
    // reference off by 0.004 everywhere; tolerance 0.01 → worst ratio 0.4 (hand-derived)
    { name: 'near', scale: -3, x: [0.5, 1.5], y: [-1.5 + 0.004, -4.5 + 0.004], tolerance: 'absolute 0.01' },
  ]);
  if (opts.failing) {
    // reference off by 1 → ratio 1 / 0.01 = 100: must fail
    writeSyntheticCase(dir, 'synth_off', [{ name: 'off_by_one', scale: 1, x: [1, 2, 3], y: [2, 3, 4], tolerance: 'absolute 0.01' }]);
  }
  if (opts.unhandled) writeSyntheticCase(dir, 'synth_orphan', [{ name: 'lonely', scale: 1, x: [1], tolerance: 'exact' }]);
  return dir;
}

async function conformance(args: string[]) {
  const io = recordingIO();
  const code = await runCli(['conformance', ...args], { io, packages: [handlerPkg] });
  return { code, out: io.stdout(), err: io.stderr() };
}

function readJson(file: string) {
  return JSON.parse(fs.readFileSync(file, 'utf8')) as { ok: boolean; unhandled_cases: string[]; results: any[] };
}

describe('vrepa conformance', () => {
  it('passes, prints one row per sub-case with the worst error ÷ tolerance, and exits 0', async () => {
    const dir = fixtureDir({ failing: false, unhandled: false });
    const { code, out } = await conformance([dir]);
    expect(code).toBe(0);
    expect(out).toMatch(/synth_scale\s+exact\s+1\s+0\s+ok/);
    expect(out).toMatch(/synth_scale\s+near\s+1\s+0\.400\s+ok/);
    expect(out).toContain('2 sub-cases: 2 passed, 0 failed, 0 without a handler');
    expect(out).toContain('conformance: PASS');
  });

  it('exits 1 when a sub-case fails and says which tensor', async () => {
    const dir = fixtureDir({ failing: true, unhandled: false });
    const { code, out } = await conformance([dir]);
    expect(code).toBe(1);
    expect(out).toMatch(/synth_off\s+off_by_one\s+1\s+100\s+FAIL/);
    expect(out).toMatch(/y: max error 1\.00, ratio 100/);
    expect(out).toContain('conformance: FAIL');
  });

  it('lists cases without a handler; they pass the run unless --strict', async () => {
    const dir = fixtureDir({ failing: false, unhandled: true });
    const lax = await conformance([dir]);
    expect(lax.code).toBe(0);
    expect(lax.out).toMatch(/synth_orphan\s+lonely\s+0\s+-\s+no handler/);
    expect(lax.out).toContain('cases without a handler: synth_orphan');
    const strict = await conformance([dir, '--strict']);
    expect(strict.code).toBe(1);
    expect(strict.out).toContain('cases without a handler (fail under --strict): synth_orphan');
  });

  it('--case restricts the run; a named case without a handler or missing from the dir fails it', async () => {
    const dir = fixtureDir({ failing: true, unhandled: true });
    const only = await conformance([dir, '--case', 'synth_scale']);
    expect(only.code).toBe(0);
    expect(only.out).not.toContain('synth_off');
    expect(only.out).not.toContain('synth_orphan');

    const unhandled = await conformance([dir, '--case', 'synth_scale', '--case', 'synth_orphan']);
    expect(unhandled.code).toBe(1);
    expect(unhandled.out).toContain('--case without a handler or not found: synth_orphan');

    const missing = await conformance([dir, '--case', 'no_such_case']);
    expect(missing.code).toBe(1);
    expect(missing.out).toContain("no case 'no_such_case' under");
  });

  it('--json writes one entry per sub-case found, including failed and unhandled ones', async () => {
    const dir = fixtureDir({ failing: true, unhandled: true });
    const file = path.join(dir, 'out', 'report.json');
    const { code } = await conformance([dir, '--json', file]);
    expect(code).toBe(1);
    const json = readJson(file);
    expect(json.ok).toBe(false);
    expect(json.unhandled_cases).toEqual(['synth_orphan']);
    const byName = Object.fromEntries(json.results.map((r) => [`${r.case}/${r.subcase}`, r]));
    expect(Object.keys(byName).sort()).toEqual(['synth_off/off_by_one', 'synth_orphan/lonely', 'synth_scale/exact', 'synth_scale/near']);
    expect(byName['synth_scale/exact']).toMatchObject({ pass: true, tensors: 1, worst_ratio: 0, handled: true });
    expect(byName['synth_scale/near'].pass).toBe(true);
    expect(byName['synth_scale/near'].worst_ratio).toBeCloseTo(0.4, 4);
    expect(byName['synth_off/off_by_one']).toMatchObject({ pass: false, tensors: 1, handled: true });
    expect(byName['synth_off/off_by_one'].worst_ratio).toBeCloseTo(100, 3);
    expect(byName['synth_orphan/lonely']).toMatchObject({ pass: false, tensors: 0, worst_ratio: null, handled: false });
    for (const r of json.results) expect(Object.keys(r)).toEqual(expect.arrayContaining(['case', 'subcase', 'pass', 'tensors', 'worst_ratio']));
  });

  it('a handler that throws or compares nothing fails its sub-case with the reason', async () => {
    const dir = tempDir();
    writeSyntheticCase(dir, 'synth_throw', [{ name: 'a', scale: 1, x: [1], tolerance: 'exact' }]);
    writeSyntheticCase(dir, 'synth_silent', [{ name: 'b', scale: 1, x: [1], tolerance: 'exact' }]);
    const pkg = fakePackage('@vrepa/bad', {
      conformanceHandlers: {
        synth_throw: () => {
          throw new Error('boom: tensor x has the wrong shape');
        },
        synth_silent: () => {},
      },
    });
    const io = recordingIO();
    const code = await runCli(['conformance', dir], { io, packages: [pkg] });
    expect(code).toBe(1);
    expect(io.stdout()).toContain('boom: tensor x has the wrong shape');
    expect(io.stdout()).toContain('handler compared no tensors');
  });

  it('a package that fails to load, or two packages claiming one case, fail the run loudly', async () => {
    const dir = fixtureDir({ failing: false, unhandled: false });
    const io = recordingIO();
    const code = await runCli(['conformance', dir], {
      io,
      packages: [handlerPkg, { name: '@vrepa/broken', error: 'Cannot find module dist/index.js' }],
    });
    expect(code).toBe(1);
    expect(io.stderr()).toContain('package @vrepa/broken failed to load');
    const io2 = recordingIO();
    const dup = fakePackage('@vrepa/dup', { conformanceHandlers: { synth_scale: scaleHandler } });
    expect(await runCli(['conformance', dir], { io: io2, packages: [handlerPkg, dup] })).toBe(1);
    expect(io2.stderr()).toContain("case 'synth_scale' has handlers in both @vrepa/synthetic and @vrepa/dup");
  });

  it('usage errors exit 2: no dir, a dir that does not exist, an unknown option, a bad backend', async () => {
    expect((await conformance([])).code).toBe(2);
    const missing = await conformance(['/nonexistent/fixtures']);
    expect(missing.code).toBe(2);
    expect(missing.err).toContain('/nonexistent/fixtures is not a directory');
    const unknown = await conformance([tempDir(), '--frobnicate']);
    expect(unknown.code).toBe(2);
    expect(unknown.err).toContain('--frobnicate');
    const bad = await conformance([tempDir(), '--backend', 'quantum']);
    expect(bad.code).toBe(2);
    expect(bad.err).toContain('--backend quantum is not a backend');
  });

  it('runs a single case directory and --verbose prints every comparison', async () => {
    const dir = fixtureDir({ failing: false, unhandled: false });
    const { code, out } = await conformance([path.join(dir, 'synth_scale'), '--verbose']);
    expect(code).toBe(0);
    expect(out).toContain('1 case ·');
    expect(out.match(/^ {4}ok {3}y: max error/gm)?.length).toBe(2);
  });

  it('--list shows each case, its sub-case count and the package that handles it, without running', async () => {
    const dir = fixtureDir({ failing: true, unhandled: true });
    const { code, out } = await conformance([dir, '--list']);
    expect(code).toBe(0);
    expect(out).toMatch(/synth_off\s+1\s+@vrepa\/synthetic/);
    expect(out).toMatch(/synth_orphan\s+1\s+no handler/);
    expect(out).toMatch(/synth_scale\s+2\s+@vrepa\/synthetic/);
    expect(out).not.toContain('FAIL');
  });

  it('formats ratios compactly', () => {
    expect(formatRatio(null)).toBe('-');
    expect(formatRatio(Infinity)).toBe('inf');
    expect(formatRatio(0)).toBe('0');
    expect(formatRatio(0.0312)).toBe('0.0312');
    expect(formatRatio(2.5e-5)).toBe('2.5e-5');
  });
});

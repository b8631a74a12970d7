/**
 * The CLI as the READMEs show it: from the repository root after setup, `pnpm vrepa …` (the root
 * package's script) and `pnpm exec vrepa …` / `npx vrepa …` (the root's link to this package's bin) run
 * the built binary. These run real child processes on packages/cli/dist (turbo builds it before this
 * package's tests; packages/cli/turbo.json).
 */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { removeTempDirs, tempDir, writeSyntheticCase } from './test-helpers.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');
const cliPkg = JSON.parse(fs.readFileSync(path.join(root, 'packages/cli/package.json'), 'utf8')) as { version: string; bin: Record<string, string> };

function run(cmd: string, args: string[]) {
  const r = spawnSync(cmd, args, { cwd: root, encoding: 'utf8', env: { ...process.env, TF_CPP_MIN_LOG_LEVEL: '2' }, timeout: 60_000 });
  if (r.error) throw new Error(`${cmd} ${args.join(' ')}: ${r.error.message}`);
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

beforeAll(() => {
  const bin = path.join(root, 'packages/cli', cliPkg.bin.vrepa!);
  if (!fs.existsSync(bin)) throw new Error(`${bin} is missing: build the CLI first (pnpm turbo run build)`);
});
afterAll(removeTempDirs);

describe('the vrepa command from the repository root', () => {
  it('`pnpm vrepa --help` lists the commands; `pnpm vrepa --version` is the CLI package version', () => {
    const help = run('pnpm', ['vrepa', '--help']);
    expect(help.status).toBe(0);
    expect(help.stdout).toContain('Usage: vrepa <command>');
    for (const name of ['conformance', 'train', 'generate', 'export']) expect(help.stdout).toMatch(new RegExp(`^  ${name}\\s`, 'm'));
    const v = run('pnpm', ['vrepa', '--version']);
    expect([v.status, v.stdout.trim()]).toEqual([0, cliPkg.version]);
  });

  it('`pnpm vrepa conformance --list <dir>` passes its arguments through (a synthetic fixture set)', () => {
    const dir = tempDir();
    writeSyntheticCase(dir, 'made_up_scale', [
      { name: 'a', scale: 2, x: [1, 2], tolerance: 'abs 1e-6' },
      { name: 'b', scale: 3, x: [1], tolerance: 'abs 1e-6' },
    ]);
    const r = run('pnpm', ['vrepa', 'conformance', '--list', dir]);
    expect(r.status).toBe(0);
    expect(r.stdout).toMatch(/made_up_scale\s+2\s+no handler/);
  });

  it('`pnpm exec vrepa` and `npx vrepa` find the root bin link (the root depends on @vrepa/cli)', () => {
    const rootPkg = JSON.parse(fs.readFileSync(path.join(root, 'package.json'), 'utf8')) as { devDependencies?: Record<string, string>; scripts?: Record<string, string> };
    expect(rootPkg.devDependencies?.['@vrepa/cli']).toBe('workspace:*');
    for (const [cmd, args] of [['pnpm', ['exec', 'vrepa', '--version']], ['npx', ['--no-install', 'vrepa', '--version']]] as const) {
      const r = run(cmd, [...args]);
      expect([cmd, r.status, r.stdout.trim()]).toEqual([cmd, 0, cliPkg.version]);
    }
  });

  it('every README shell block calls the CLI in a form that runs from the root (npx vrepa / pnpm vrepa)', () => {
    const readmes = [path.join(root, 'README.md')];
    for (const dir of ['packages', 'examples']) {
      for (const d of fs.readdirSync(path.join(root, dir))) {
        const f = path.join(root, dir, d, 'README.md');
        if (fs.existsSync(f)) readmes.push(f);
      }
    }
    const bare: string[] = [];
    for (const f of readmes) {
      const text = fs.readFileSync(f, 'utf8');
      for (const block of text.matchAll(/```(?:sh|bash|shell)\n([\s\S]*?)```/g)) {
        for (const line of block[1]!.split('\n')) if (/^\s*vrepa\s/.test(line)) bare.push(`${path.relative(root, f)}: ${line.trim()}`);
      }
    }
    expect(bare).toEqual([]);
  });
});

import { describe, expect, it } from 'vitest';
import type { VrepaCommand } from '@vrepa/core';
import { recordingIO } from './io.js';
import { builtinCommands, collectCommands, matchCommand, runCli } from './main.js';
import { commandsFrom, handlersFrom } from './packages.js';
import { fakePackage } from './test-helpers.js';

function cmd(name: string, onRun: (argv: string[]) => number = () => 0): VrepaCommand & { calls: string[][] } {
  const calls: string[][] = [];
  return {
    name,
    summary: `does ${name}`,
    usage: `Usage: vrepa ${name} [x]\n`,
    calls,
    run: async (argv) => {
      calls.push(argv);
      return onRun(argv);
    },
  };
}

describe('vrepa dispatcher', () => {
  it('--help lists the built-in commands and those the packages export', async () => {
    const score = cmd('videophy score');
    const io = recordingIO();
    expect(await runCli(['--help'], { io, packages: [fakePackage('@vrepa/eval', { commands: [score] })] })).toBe(0);
    for (const name of ['inspect', 'convert', 'conformance', 'videophy score']) expect(io.stdout()).toMatch(new RegExp(`^  ${name}\\s`, 'm'));
    expect(io.stdout()).toContain('does videophy score');
  });

  it('an unknown command exits 2 with an error and the command list', async () => {
    const io = recordingIO();
    expect(await runCli(['frobnicate', 'x'], { io, packages: [] })).toBe(2);
    expect(io.stderr()).toContain("unknown command 'frobnicate x'");
    expect(io.stderr()).toContain('Commands: backend, backend install-native, conformance, convert, inspect');
    const none = recordingIO();
    expect(await runCli([], { io: none, packages: [] })).toBe(2);
    expect(none.stderr()).toContain('Usage: vrepa <command>');
  });

  it('every command answers --help (and -h, and `vrepa help <cmd>`) with its usage, without running', async () => {
    const backend = cmd('model');
    const install = cmd('model download');
    const packages = [fakePackage('@vrepa/core', { commands: [backend, install] })];
    const { commands } = await collectCommands({ packages });
    for (const c of commands) {
      for (const flag of ['--help', '-h']) {
        const io = recordingIO();
        expect(await runCli([...c.name.split(' '), flag], { io, packages })).toBe(0);
        expect(io.stdout()).toContain(c.usage.trim().split('\n')[0]);
      }
    }
    const io = recordingIO();
    expect(await runCli(['help', 'model', 'download'], { io, packages })).toBe(0);
    expect(io.stdout()).toBe(install.usage);
    expect(backend.calls.length + install.calls.length).toBe(0);
  });

  it('multi-word commands match the longest name and get the remaining arguments', async () => {
    const backend = cmd('model', () => 0);
    const install = cmd('model download', () => 3);
    const packages = [fakePackage('@vrepa/core', { commands: [backend, install] })];
    expect(await runCli(['model', 'download', '--gpu'], { io: recordingIO(), packages })).toBe(3);
    expect(install.calls).toEqual([['--gpu']]);
    expect(await runCli(['model', '--check-only'], { io: recordingIO(), packages })).toBe(0);
    expect(backend.calls).toEqual([['--check-only']]);
    expect(matchCommand([backend, install], ['model', 'x'])?.command.name).toBe('model');
  });

  it('a group without a command of its own lists its subcommands', async () => {
    const packages = [fakePackage('@vrepa/eval', { commands: [cmd('videophy score'), cmd('videophy table')] })];
    const io = recordingIO();
    expect(await runCli(['videophy'], { io, packages })).toBe(2);
    expect(io.stderr()).toContain("'videophy' needs a subcommand");
    expect(io.stderr()).toContain('videophy table');
    const help = recordingIO();
    expect(await runCli(['videophy', '--help'], { io: help, packages })).toBe(0);
    expect(help.stdout()).toContain('videophy score');
  });

  it('maps a command that throws to exit 1 with its message', async () => {
    const bad = cmd('explode', () => {
      throw new Error('explode: weights.safetensors has no tensor named w');
    });
    const io = recordingIO();
    expect(await runCli(['explode'], { io, packages: [fakePackage('@vrepa/x', { commands: [bad] })] })).toBe(1);
    expect(io.stderr()).toContain('vrepa explode: explode: weights.safetensors has no tensor named w');
  });

  it('reads package exports defensively', () => {
    const good = cmd('a');
    const { commands, warnings } = commandsFrom(
      [
        fakePackage('@vrepa/none', {}),
        fakePackage('@vrepa/notarray', { commands: 'nope' }),
        fakePackage('@vrepa/mixed', { commands: [good, { name: 'b' }, cmd('inspect')] }),
        { name: '@vrepa/broken', error: 'failed' },
      ],
      builtinCommands,
    );
    expect(commands.map((c) => c.name).sort()).toEqual(['a', 'backend', 'backend install-native', 'conformance', 'convert', 'inspect']);
    expect(commands.find((c) => c.name === 'inspect')).toBe(builtinCommands[0]);
    expect(warnings.join('\n')).toMatch(/@vrepa\/notarray: export 'commands' is not an array/);
    expect(warnings.join('\n')).toMatch(/@vrepa\/mixed: commands\[1\] is not a command/);
    expect(warnings.join('\n')).toMatch(/command 'inspect' from @vrepa\/mixed ignored/);

    // core exports a *function* named conformanceHandlers (its registry): not a record of handlers.
    const h = handlersFrom([
      fakePackage('@vrepa/core', { conformanceHandlers: () => new Map() }),
      fakePackage('@vrepa/relations', { conformanceHandlers: { trd_loss: () => {} } }),
      fakePackage('@vrepa/odd', { conformanceHandlers: { x: 42 } }),
    ]);
    expect([...h.handlers.keys()]).toEqual(['trd_loss']);
    expect(h.handlers.get('trd_loss')?.package).toBe('@vrepa/relations');
    expect(h.problems).toEqual(["@vrepa/odd: conformanceHandlers['x'] is not a function"]);
  });

  it('collects from the real workspace packages; every real command answers --help with its usage', async () => {
    const { commands, warnings } = await collectCommands();
    expect(commands.map((c) => c.name)).toEqual(expect.arrayContaining(['inspect', 'convert', 'conformance', 'backend']));
    expect(warnings.filter((w) => w.includes('is not a command') || w.includes('already provides'))).toEqual([]);
    for (const c of commands) {
      expect(c.usage.trim().length, `${c.name} has a usage text`).toBeGreaterThan(0);
      expect(c.summary.trim().length, `${c.name} has a summary`).toBeGreaterThan(0);
      const io = recordingIO();
      expect(await runCli([...c.name.split(' '), '--help'], { io }), `vrepa ${c.name} --help`).toBe(0);
      expect(io.stdout()).toContain(c.usage.trim().split('\n')[0]);
    }
  });

  it('built-in commands run without collecting the packages (no package load, no warnings)', async () => {
    const io = recordingIO();
    const broken = [{ name: '@vrepa/broken', error: 'Cannot find module' }];
    expect(await runCli(['conformance', '--help'], { io, packages: broken })).toBe(0);
    expect(io.stderr()).toBe('');
    const listed = recordingIO();
    expect(await runCli(['--help'], { io: listed, packages: broken })).toBe(0);
    expect(listed.stderr()).toContain('package @vrepa/broken failed to load');
  });

  it('--version prints the package version', async () => {
    const io = recordingIO();
    expect(await runCli(['--version'], { io, packages: [] })).toBe(0);
    expect(io.stdout()).toMatch(/^\d+\.\d+\.\d+/);
  });
});

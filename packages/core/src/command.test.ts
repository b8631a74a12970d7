import { describe, expect, it } from 'vitest';
import { commandArgs, expectPositionals, parseCommandArgs, UsageError, wantsHelp, type CommandOutput } from './command.js';

function recorder(): CommandOutput & { o: string; e: string } {
  const r = { o: '', e: '', out: (t: string) => void (r.o += t), err: (t: string) => void (r.e += t) };
  return r;
}

const opts = { out: { type: 'string' }, force: { type: 'boolean' } } as const;

describe('command helpers', () => {
  it('wantsHelp stops at --', () => {
    expect(wantsHelp(['a', '-h'])).toBe(true);
    expect(wantsHelp(['--', '--help'])).toBe(false);
    expect(wantsHelp(['x'])).toBe(false);
  });

  it('parseCommandArgs returns values, positionals and typed getters; unknown options are UsageErrors naming the command', () => {
    const a = parseCommandArgs('demo', ['p1', '--out', 'dir', '--force'], opts);
    expect(a.positionals).toEqual(['p1']);
    expect(a.values).toEqual({ out: 'dir', force: true });
    expect(a.str('out')).toBe('dir');
    expect(a.str('force')).toBeUndefined();
    expect(a.flag('force')).toBe(true);
    expect(a.flag('out')).toBe(false);
    expect(a.help).toBe(false);
    expect(parseCommandArgs('demo', ['-h'], opts).help).toBe(true);
    expect(() => parseCommandArgs('demo', ['--nope'], opts)).toThrow(UsageError);
    expect(() => parseCommandArgs('demo', ['--nope'], opts)).toThrow(/^vrepa demo: .*--nope/);
  });

  it('expectPositionals names what is missing or extra', () => {
    expect(expectPositionals('c', ['a', 'b'], ['in', 'out'])).toEqual(['a', 'b']);
    expect(() => expectPositionals('c', ['a'], ['in', 'out'])).toThrow("vrepa c: missing <out> (expected <in> <out>, got 1 argument)");
    expect(() => expectPositionals('c', ['a', 'b', 'z'], ['in', 'out'])).toThrow("unexpected extra argument 'z'");
  });

  it('commandArgs: --help prints usage (exit 0), bad or missing options print the error and usage (exit 2)', () => {
    const usage = 'vrepa demo --out DIR';
    let r = recorder();
    expect(commandArgs('demo', ['--help'], opts, usage, { output: r })).toBe(0);
    expect(r.o).toBe(usage + '\n');
    expect(r.e).toBe('');
    r = recorder();
    expect(commandArgs('demo', ['--bad'], opts, usage, { output: r })).toBe(2);
    expect(r.e).toMatch(/^vrepa demo: .*--bad.*\nvrepa demo --out DIR\n$/);
    r = recorder();
    expect(commandArgs('demo', ['--force'], opts, usage, { output: r, required: ['out'] })).toBe(2);
    expect(r.e).toBe('vrepa demo: --out is required\nvrepa demo --out DIR\n');
    r = recorder();
    const a = commandArgs('demo', ['--out', 'x'], opts, usage, { output: r, required: ['out'] });
    expect(typeof a).toBe('object');
    expect(typeof a === 'object' && a.str('out')).toBe('x');
    expect(r.o + r.e).toBe('');
    r = recorder();
    expect(commandArgs('demo', ['stray'], opts, usage, { output: r, positionals: false })).toBe(2);
    expect(r.e).toBe("vrepa demo: unexpected argument 'stray'\nvrepa demo --out DIR\n");
  });
});

// `vrepa backend` and `vrepa backend install-native`: help, argument errors, and a real --check-only probe.
import { describe, expect, it } from 'vitest';
import { recordingIO } from '../io.js';
import { runCli } from '../main.js';

async function cli(args: string[]) {
  const io = recordingIO();
  const code = await runCli(args, { io, packages: [] });
  return { code, out: io.stdout(), err: io.stderr() };
}

describe('vrepa backend', () => {
  it('prints help for both commands', async () => {
    const a = await cli(['backend', '--help']);
    expect(a.code).toBe(0);
    expect(a.out).toMatch(/Usage: vrepa backend \[--seconds S\]/);
    const b = await cli(['backend', 'install-native', '--help']);
    expect(b.code).toBe(0);
    expect(b.out).toMatch(/Usage: vrepa backend install-native \[--gpu\] \[--force\]/);
    expect(b.out).toMatch(/UNTESTED/);
  });

  it('rejects bad arguments with a usage error', async () => {
    expect((await cli(['backend', '--seconds', 'soon'])).code).toBe(2);
    const r = await cli(['backend', '--backend', 'metal']);
    expect(r.code).toBe(2);
    expect(r.err).toMatch(/'metal' is not a backend; expected one of tensorflow-gpu, tensorflow, wasm, cpu/);
    expect((await cli(['backend', 'install-native', 'now'])).code).toBe(2);
  });

  it('--check-only exits 0 for a backend that loads and 1 for one that does not', async () => {
    const ok = await cli(['backend', '--check-only', '--backend', 'wasm']);
    expect(ok.err).toBe('');
    expect(ok.out).toBe('wasm: ok (wasm)\n');
    expect(ok.code).toBe(0);
    const no = await cli(['backend', '--check-only', '--backend', 'tensorflow-gpu']);
    expect(no.code).toBe(1);
    expect(no.err).toMatch(/'tensorflow-gpu' does not load: .*tfjs-node-gpu/);
  });
});

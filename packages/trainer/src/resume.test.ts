import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { readLog } from '@vrepa/core';
import { verifyCheckpoint } from '@vrepa/core';

const here = path.dirname(fileURLToPath(import.meta.url));
const pkg = path.resolve(here, '..');
const script = path.join(pkg, 'scripts/vrepa-train.ts');
const tsconfig = path.join(pkg, 'tsconfig.sources.json');

function startTrain(args: string[]) {
  // node itself (not the tsx wrapper, which would leave its own node child running after a SIGKILL)
  const child = spawn(process.execPath, ['--import', 'tsx', script, 'train', '--preset', 'tiny', '--no-progress', ...args], {
    cwd: pkg,
    env: { ...process.env, TSX_TSCONFIG_PATH: tsconfig, TF_CPP_MIN_LOG_LEVEL: '3' },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let stderr = '';
  child.stderr.on('data', (d) => (stderr += d));
  const done = new Promise<{ code: number | null; signal: NodeJS.Signals | null; stderr: string }>((resolve) =>
    child.on('exit', (code, signal) => resolve({ code, signal, stderr })),
  );
  return { child, done };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const KEYS = ['step', 'loss', 'loss_diff', 'loss_align', 'lr', 'grad_norm', 'skipped', 'epoch'] as const;
const pick = (rows: ReturnType<typeof readLog>) => rows.map((r) => Object.fromEntries(KEYS.map((k) => [k, r[k]])));

describe('kill -9 and resume', () => {
  it('a run killed with SIGKILL mid-run and resumed equals an uninterrupted run, bit for bit', async () => {
    const root = fs.mkdtempSync(path.join(os.tmpdir(), 'vrepa-resume-'));
    const common = ['--max-steps', '12', '--checkpoint-every', '3'];
    const full = path.join(root, 'full');
    const killed = path.join(root, 'killed');
    const [a, b] = [startTrain(['--out', full, ...common]), startTrain(['--out', killed, ...common])];
    // kill the second run once it has logged step 5 (a checkpoint exists at step 3, step 6 not yet)
    let killedAt = -1;
    const deadline = Date.now() + 60_000;
    while (Date.now() < deadline) {
      const rows = readLog(path.join(killed, 'log.jsonl'));
      if (rows.length >= 5) {
        b.child.kill('SIGKILL');
        killedAt = rows.length;
        break;
      }
      await sleep(5);
    }
    const rb = await b.done;
    expect(rb.signal).toBe('SIGKILL');
    expect(killedAt).toBeGreaterThanOrEqual(5);
    expect(killedAt).toBeLessThan(12); // really mid-run
    const ra = await a.done;
    expect(ra.code, ra.stderr).toBe(0);
    const r2 = await startTrain(['--out', killed, '--resume', ...common]).done;
    expect(r2.code, r2.stderr).toBe(0);
    expect(r2.stderr).toMatch(/resume: continuing from step (3|6|9)/);
    // same log (losses, lr, grad norms) and the same weights + optimizer state, bit for bit
    expect(pick(readLog(path.join(killed, 'log.jsonl')))).toEqual(pick(readLog(path.join(full, 'log.jsonl'))));
    const ma = verifyCheckpoint(path.join(full, 'checkpoints/step-12'));
    const mb = verifyCheckpoint(path.join(killed, 'checkpoints/step-12'));
    for (const f of ['trainable.safetensors', 'optimizer.safetensors']) expect(mb.files[f]!.sha256).toBe(ma.files[f]!.sha256);
    const sa = JSON.parse(fs.readFileSync(path.join(full, 'checkpoints/step-12/state.json'), 'utf8'));
    const sb = JSON.parse(fs.readFileSync(path.join(killed, 'checkpoints/step-12/state.json'), 'utf8'));
    expect(sb).toEqual(sa);
    fs.rmSync(root, { recursive: true, force: true });
  }, 120_000);
});

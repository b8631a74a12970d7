import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { describe, expect, it } from 'vitest';
import {
  CheckpointCorruptError,
  CheckpointMismatchError,
  disposeLoaded,
  listCheckpoints,
  loadLatestCheckpoint,
  paramsSignature,
  saveCheckpoint,
  verifyCheckpoint,
} from './checkpoint.node.js';

const tmp = () => fs.mkdtempSync(path.join(os.tmpdir(), 'vrepa-core-ckpt-'));

interface MyState {
  step: number;
  note: string;
}

function input(step: number, extra?: (dir: string) => void) {
  const params = new Map<string, tf.Tensor>([
    ['a.weight', tf.tensor2d([[step, 2], [3, 4]])],
    ['b', tf.tensor1d([step / 7])],
  ]);
  const zeros = new Map([...params].map(([n, p]) => [n, tf.zerosLike(p)]));
  const ones = new Map([...params].map(([n, p]) => [n, tf.onesLike(p)]));
  return { step, configHash: 'cfg', params, exp_avg: zeros, exp_avg_sq: ones, state: { step, note: `s${step}` } as MyState, extra };
}

describe('atomic training checkpoints (generic)', () => {
  it('saves, rotates, verifies extra files, and loads the newest exactly (any state type)', () => {
    const out = tmp();
    for (const s of [1, 2, 3]) saveCheckpoint(out, input(s, (d) => fs.writeFileSync(path.join(d, 'extra.bin'), `x${s}`)), 2);
    expect(listCheckpoints(out).map((c) => c.step)).toEqual([3, 2]);
    expect(fs.readdirSync(path.join(out, 'checkpoints')).filter((n) => n.startsWith('.'))).toEqual([]);
    const m = verifyCheckpoint(listCheckpoints(out)[0]!.dir);
    expect(Object.keys(m.files).sort()).toEqual(['extra.bin', 'optimizer.safetensors', 'state.json', 'trainable.safetensors']);
    const sig = paramsSignature(input(0).params);
    const c = loadLatestCheckpoint<MyState>(out, { configHash: 'cfg', paramsSignature: sig })!;
    expect(c.state).toEqual({ step: 3, note: 's3' });
    expect(Array.from(c.params.get('a.weight')!.dataSync())).toEqual([3, 2, 3, 4]);
    expect(Array.from(c.exp_avg_sq.get('b')!.dataSync())).toEqual([1]);
    expect(c.exp_avg.get('b')!.shape).toEqual([1]);
    disposeLoaded(c);
  });

  it('a corrupted newest checkpoint is reported and the previous one used; another config is an error', () => {
    const out = tmp();
    saveCheckpoint(out, input(1), 0);
    saveCheckpoint(out, input(2), 0);
    fs.appendFileSync(path.join(listCheckpoints(out)[0]!.dir, 'trainable.safetensors'), 'junk');
    expect(() => verifyCheckpoint(listCheckpoints(out)[0]!.dir)).toThrow(CheckpointCorruptError);
    const warnings: string[] = [];
    const sig = paramsSignature(input(0).params);
    const c = loadLatestCheckpoint<MyState>(out, { configHash: 'cfg', paramsSignature: sig }, (w) => warnings.push(w))!;
    expect(c.state.step).toBe(1);
    expect(warnings[0]).toMatch(/step-2: trainable\.safetensors does not match its manifest/);
    disposeLoaded(c);
    expect(() => loadLatestCheckpoint(out, { configHash: 'other', paramsSignature: sig })).toThrow(CheckpointMismatchError);
    expect(() => loadLatestCheckpoint(out, { configHash: 'cfg', paramsSignature: 'x' })).toThrow(/another model/);
  });

  it('a crash before the manifest leaves no partial checkpoint and the previous ones untouched', () => {
    const out = tmp();
    saveCheckpoint(out, input(1), 0);
    const before = fs.readFileSync(path.join(out, 'checkpoints/step-1/manifest.json'), 'utf8');
    const bad = { ...input(2), beforeManifest: () => { throw new Error('disk full'); } };
    expect(() => saveCheckpoint(out, bad, 0)).toThrow(/writing step 2 .* failed \(disk full\); the previous checkpoints are untouched/);
    expect(fs.readdirSync(path.join(out, 'checkpoints'))).toEqual(['step-1']);
    expect(fs.readFileSync(path.join(out, 'checkpoints/step-1/manifest.json'), 'utf8')).toBe(before);
  });
});

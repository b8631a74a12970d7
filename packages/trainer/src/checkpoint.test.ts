import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { describe, expect, it } from 'vitest';
import { presetConfig } from './config.js';
import { Trainer } from './trainer.js';
import { listCheckpoints, verifyCheckpoint, CheckpointCorruptError, CheckpointMismatchError } from '@vrepa/core';

const tmp = () => fs.mkdtempSync(path.join(os.tmpdir(), 'vrepa-ckpt-'));
const quiet = { progress: false, log: () => {} };

function weights(t: Trainer): Map<string, Float32Array> {
  const sd = t.trainableStateDict();
  const out = new Map([...sd].map(([n, x]) => [n, x.dataSync() as Float32Array]));
  tf.dispose([...sd.values()]);
  return out;
}

describe('checkpoints', () => {
  it('rotates to keep_last, verifies hashes, and restores the exact weights, moments and data position', () => {
    const out = tmp();
    const c = presetConfig('tiny', { train: { keep_last: 2 } });
    const t = new Trainer(c, { out, ...quiet });
    try {
      for (let i = 0; i < 4; i++) {
        t.trainStep();
        t.saveCheckpoint();
      }
      expect(listCheckpoints(out).map((x) => x.step)).toEqual([4, 3]);
      expect(fs.readdirSync(path.join(out, 'checkpoints')).filter((n) => n.startsWith('.'))).toEqual([]); // no temp dirs left
      const m = verifyCheckpoint(path.join(out, 'checkpoints/step-4'));
      expect(Object.keys(m.files).sort()).toEqual(['optimizer.safetensors', 'state.json', 'trainable.safetensors']);
      const w = weights(t);
      const t2 = new Trainer(c, { out, ...quiet });
      try {
        expect(t2.restore()).toBe(4);
        const w2 = weights(t2);
        for (const [n, x] of w) expect(Array.from(w2.get(n)!)).toEqual(Array.from(x));
        expect(t2.optimizer.step).toBe(4);
        expect(t2.cursor.epoch).toBe(t.cursor.epoch);
        expect(t2.cursor.position).toBe(t.cursor.position);
        expect(t2.rng.state()).toEqual(t.rng.state());
        // the next step is the same in both
        expect(t2.trainStep().loss).toBe(t.trainStep().loss);
      } finally {
        t2.dispose();
      }
    } finally {
      t.dispose();
    }
  });

  it('a corrupted newest checkpoint is detected and the previous one is used', () => {
    const out = tmp();
    const c = presetConfig('tiny');
    const t = new Trainer(c, { out, ...quiet });
    try {
      t.trainStep();
      t.saveCheckpoint();
      t.trainStep();
      t.saveCheckpoint();
    } finally {
      t.dispose();
    }
    const f = path.join(out, 'checkpoints/step-2/trainable.safetensors');
    const b = fs.readFileSync(f);
    b[b.length - 3] ^= 0xff; // flip bits in the last tensor
    fs.writeFileSync(f, b);
    expect(() => verifyCheckpoint(path.join(out, 'checkpoints/step-2'))).toThrow(CheckpointCorruptError);
    // a partial one (no manifest: the writer died before finishing) is skipped too
    fs.mkdirSync(path.join(out, 'checkpoints/step-3'));
    fs.writeFileSync(path.join(out, 'checkpoints/step-3/state.json'), '{');
    const warnings: string[] = [];
    const t2 = new Trainer(c, { out, progress: false, log: (m) => warnings.push(m) });
    try {
      expect(t2.restore()).toBe(1);
      expect(warnings.join('\n')).toMatch(/step-3: manifest.json is missing/);
      expect(warnings.join('\n')).toMatch(/step-2: trainable.safetensors does not match its manifest/);
    } finally {
      t2.dispose();
    }
  });

  it('refuses a checkpoint of another config or model', () => {
    const out = tmp();
    const t = new Trainer(presetConfig('tiny'), { out, ...quiet });
    try {
      t.trainStep();
      t.saveCheckpoint();
    } finally {
      t.dispose();
    }
    const other = new Trainer(presetConfig('tiny', { align: { proj_coeff: 0.25 } }), { out, ...quiet });
    try {
      expect(() => other.restore()).toThrow(/written with another config/);
    } finally {
      other.dispose();
    }
    const lora = new Trainer(presetConfig('tiny-lora'), { out, ...quiet });
    try {
      expect(() => lora.restore()).toThrow(CheckpointMismatchError);
    } finally {
      lora.dispose();
    }
  });

  it('a failed write (full disk) leaves the previous checkpoint intact and no partial folder', () => {
    const out = tmp();
    let fail = false;
    const t = new Trainer(presetConfig('tiny'), {
      out,
      ...quiet,
      hooks: {
        beforeManifest: () => {
          if (fail) throw Object.assign(new Error('ENOSPC: no space left on device, write'), { code: 'ENOSPC' });
        },
      },
    });
    try {
      t.trainStep();
      t.saveCheckpoint();
      t.trainStep();
      fail = true;
      expect(() => t.saveCheckpoint()).toThrow(/writing step 2 .* failed \(ENOSPC.*the previous checkpoints are untouched/);
      expect(fs.readdirSync(path.join(out, 'checkpoints'))).toEqual(['step-1']);
      expect(() => verifyCheckpoint(path.join(out, 'checkpoints/step-1'))).not.toThrow();
    } finally {
      t.dispose();
    }
  });

  it('LoRA runs save only adapters + align parts, plus the LoRA in diffusers format', () => {
    const out = tmp();
    const t = new Trainer(presetConfig('tiny-lora'), { out, ...quiet });
    try {
      const names = [...t.params.keys()];
      expect(names.every((n) => n.includes('.lora_A.') || n.includes('.lora_B.') || n.startsWith('projectors.') || n.startsWith('downsampler_cogvideo_output.'))).toBe(true);
      const l0 = t.trainStep();
      const l1 = t.trainStep();
      expect(l0.skipped || l1.skipped).toBe(false);
      const dir = t.saveCheckpoint();
      expect(verifyCheckpoint(dir).files['pytorch_lora_weights.safetensors']).toBeDefined();
    } finally {
      t.dispose();
    }
  });
});

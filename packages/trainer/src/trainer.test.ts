import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { describe, expect, it } from 'vitest';
import { Rng, tensorLeakAcross } from '@vrepa/core';
import { initModel, fromPretrained } from '@vrepa/cogvideox';
import { presetConfig, TINY_TRANSFORMER } from './config.js';
import { Trainer, NonFiniteError } from './trainer.js';
import { collate, disposeSample } from './data.js';
import { readLog } from '@vrepa/core';

const tmp = () => fs.mkdtempSync(path.join(os.tmpdir(), 'vrepa-trainer-'));

describe('Trainer', () => {
  it('3 steps on a fixed batch lower the loss (overfit; fixed timesteps and noise for the before/after loss)', () => {
    // one batch = the whole dataset, no warmup: every step sees the same samples
    const c = presetConfig('tiny', { data: { num_samples: 2 }, optim: { batch_size: 2, lr_warmup_steps: 0, learning_rate: 3e-3 } });
    const t = new Trainer(c, { out: tmp(), progress: false, log: () => {} });
    try {
      const samples = [0, 1].map((i) => t.dataset.get(i));
      const batch = collate(samples);
      samples.forEach(disposeSample);
      const rng = Rng.fromSeed(99);
      const fixed = { timesteps: [300, 700], noise: rng.randomTensor(batch.latents.shape, 'normal') };
      const before = t.evaluate(batch, fixed);
      const logs = [t.trainStep(), t.trainStep(), t.trainStep()];
      const after = t.evaluate(batch, fixed);
      expect(logs.every((l) => !l.skipped && l.loss !== null && l.loss_align !== null)).toBe(true);
      expect(after.total).toBeLessThan(before.total);
      expect(after.alignment!).toBeLessThan(before.alignment!);
      // total = diffusion + λ·alignment, λ = 0.5
      expect(after.total).toBeCloseTo(after.diffusion + 0.5 * after.alignment!, 4);
      tf.dispose([batch.latents, batch.text, batch.teacher!, fixed.noise]);
    } finally {
      t.dispose();
    }
  });

  it('does not leak tensors across steps', async () => {
    const c = presetConfig('tiny', { optim: { gradient_accumulation_steps: 2 } });
    const t = new Trainer(c, { out: tmp(), progress: false, log: () => {} });
    try {
      t.trainStep(); // fills the data cache
      t.trainStep();
      expect(await tensorLeakAcross(() => void t.trainStep(), 2)).toBe(0);
    } finally {
      t.dispose();
    }
  });

  it('skips a non-finite step with a warning, keeps the weights, and stops after N in a row', () => {
    const c = presetConfig('tiny', { train: { nan_max_consecutive: 2 } });
    const warnings: string[] = [];
    const t = new Trainer(c, { out: tmp(), progress: false, log: (m) => warnings.push(m), hooks: { injectNonFinite: (s) => s >= 2 && s !== 3 } });
    try {
      t.trainStep();
      const w = t.trainableStateDict();
      const snap = new Map([...w].map(([n, x]) => [n, x.dataSync().slice()]));
      tf.dispose([...w.values()]);
      const s2 = t.trainStep();
      expect(s2.skipped).toBe(true);
      expect(s2.loss).toBeNull();
      expect(warnings.some((m) => /step 2: non-finite loss/.test(m))).toBe(true);
      const w2 = t.trainableStateDict();
      for (const [n, x] of w2) expect(Array.from(x.dataSync())).toEqual(Array.from(snap.get(n)!));
      tf.dispose([...w2.values()]);
      expect(t.optimizer.step).toBe(1);
      expect(t.trainStep().skipped).toBe(false); // step 3 is clean: the streak resets
      t.trainStep(); // step 4 non-finite (1 in a row)
      expect(() => t.trainStep()).toThrow(NonFiniteError); // step 5: 2 in a row
    } finally {
      t.dispose();
    }
  });

  it('trains a 5B-style (3D rotary) tiny model with LoRA and gradient accumulation', () => {
    const c = presetConfig('tiny-lora', {
      model: { transformer: { ...TINY_TRANSFORMER, use_rotary_positional_embeddings: true }, scheduler: 'cogvideox-5b', gradient_checkpointing: true },
      optim: { gradient_accumulation_steps: 2, batch_size: 1, lr_warmup_steps: 0 },
    });
    const t = new Trainer(c, { out: tmp(), progress: false, log: () => {} });
    try {
      const a = t.trainStep();
      expect(a.skipped).toBe(false);
      expect(t.cursor.position).toBe(2); // two micro-batches of 1
      expect(a.loss).toBeCloseTo(a.loss_diff! + 0.5 * a.loss_align!, 4);
    } finally {
      t.dispose();
    }
  });

  it('finetunes a diffusers transformer folder (full) and exports it in the same layout', async () => {
    const root = tmp();
    const pipe = path.join(root, 'pipe');
    initModel('tiny', pipe, { seed: 0 });
    const c = presetConfig('tiny', {
      model: { transformer: path.join(pipe, 'transformer') },
      data: { latent_shape: [3, 8, 8, 4], text_seq_length: 226 },
      teacher: { grid: { frames: 4, height: 1, width: 1 } },
    });
    const t = new Trainer(c, { out: path.join(root, 'out'), progress: false, log: () => {} });
    try {
      expect(t.trainStep().skipped).toBe(false);
      const dir = t.exportFinal(path.join(root, 'final'));
      const { model } = fromPretrained(dir);
      try {
        const mine = new Map(t.model.namedParameters());
        for (const [n, p] of model.namedParameters()) expect(Array.from(p.value.dataSync()), n).toEqual(Array.from(mine.get(n)!.value.dataSync()));
        expect(model.projector).not.toBeNull(); // the align parts travel with it
      } finally {
        model.dispose();
      }
    } finally {
      t.dispose();
    }
  });
});

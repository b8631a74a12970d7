/**
 * One task of the data-parallel trainer tests (distributed.test.ts): trains examples/train-tiny/config.json with
 * the per-task batch, steps and checkpoint interval from the environment, then (rank 0) writes the trainable
 * weights as JSON next to the run. DIE_AT_STEP=k makes rank 1 kill itself (SIGKILL) after step k.
 */
import fs from 'node:fs';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { initBackend, initDistributed } from '@vrepa/core';
import { loadConfigFile } from '../config.js';
import { Trainer } from '../trainer.js';

const env = (k: string) => {
  const v = process.env[k];
  if (v === undefined) throw new Error(`dp-worker: ${k} is not set`);
  return v;
};
await initBackend({ backend: 'tensorflow', quiet: true });
const dist = initDistributed();
const config = loadConfigFile(path.join(import.meta.dirname, '..', '..', '..', '..', 'examples', 'train-tiny', 'config.json'));
config.optim.batch_size = Number(env('BATCH'));
config.train.tensorboard = false;
config.train.plot_every = 0;
const out = env('OUT');
const dieAt = process.env.DIE_AT_STEP ? Number(process.env.DIE_AT_STEP) : undefined;
const trainer = new Trainer(config, {
  out,
  resume: process.env.RESUME === '1',
  maxSteps: Number(env('STEPS')),
  checkpointEvery: Number(process.env.CKPT_EVERY ?? env('STEPS')),
  progress: false,
  distributed: dist,
  hooks: { onStep: (e) => dieAt !== undefined && dist.rank === 1 && e.step === dieAt && process.kill(process.pid, 'SIGKILL') },
});
try {
  const r = await trainer.run();
  if (dist.isChief) {
    const weights = Object.fromEntries([...trainer.params].map(([n, v]) => [n, Array.from(v.dataSync())]));
    fs.writeFileSync(path.join(out, 'weights.json'), JSON.stringify({ steps: r.steps, resumedFrom: r.resumedFrom, weights }));
  }
  dist.shutdown();
  process.stdout.write(`@@DONE@@ rank ${dist.rank} steps ${r.steps} tensors ${tf.memory().numTensors}\n`);
} catch (e) {
  process.stderr.write(`@@ERROR@@ ${(e as Error).name}: ${(e as Error).message}\n`);
  process.exit(3);
}

/** One task of bench/dp.ts (run by launchWorkers or alone). MODE=allreduce | train; prints one @@BENCH@@ JSON line on rank 0. */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { initBackend, initDistributed } from '@vrepa/core';
import { Trainer, presetConfig, TINY_TRANSFORMER, type StepLog } from '../src/index.js';

await initBackend({ backend: 'tensorflow', quiet: true });
const d = initDistributed();
const out: Record<string, unknown> = { worldSize: d.worldSize };
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

if (process.env.MODE === 'allreduce') {
  const rows = [];
  for (const mb of [0.25, 4, 32]) {
    const x = tf.ones([Math.round((mb * 2 ** 20) / 4)]);
    tf.dispose(d.allReduceMean([x])); // warm-up (group + instance resolution)
    const ms: number[] = [];
    for (let k = 0; k < 5; k++) {
      d.barrier();
      const t0 = performance.now();
      const [y] = d.allReduceMean([x]);
      y!.dataSync();
      ms.push(performance.now() - t0);
      y!.dispose();
    }
    x.dispose();
    rows.push({ mb, ms: median(ms) });
  }
  out.allreduce = rows;
} else {
  // tiny: the tiny preset; mid: 4 blocks at width 256 (8 heads × 32), same data shapes
  const mid = process.env.MODEL === 'mid';
  const c = presetConfig('tiny', mid ? { model: { transformer: { ...TINY_TRANSFORMER, num_attention_heads: 8, attention_head_dim: 32, num_layers: 4, time_embed_dim: 64 } }, align: { align_layer: 2 } } : {});
  c.optim.batch_size = Number(process.env.BATCH ?? 1);
  c.train.tensorboard = false;
  const steps = Number(process.env.STEPS ?? 10);
  const t = new Trainer(c, { out: fs.mkdtempSync(path.join(os.tmpdir(), 'vrepa-dp-bench-')), progress: false, log: () => {}, distributed: d, maxSteps: steps + 2 });
  t.trainStep();
  t.trainStep();
  const logs: StepLog[] = [];
  const each: number[] = [];
  for (let i = 0; i < steps; i++) {
    const t0 = performance.now();
    logs.push(t.trainStep());
    each.push(performance.now() - t0);
  }
  out.model = mid ? 'mid' : 'tiny';
  out.params = [...t.params.values()].reduce((a, v) => a + v.size, 0);
  out.stepMs = median(each);
  out.allreduceMs = d.worldSize > 1 ? median(logs.map((l) => (l as StepLog & { ms_allreduce: number }).ms_allreduce)) : 0;
  t.dispose();
}
d.shutdown();
if (d.isChief) process.stdout.write(`@@BENCH@@${JSON.stringify(out)}\n`);
process.exit(0);

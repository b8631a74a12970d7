import * as tf from '@tensorflow/tfjs';
import { initBackend } from '@vrepa/core';
import { reproPreset, MemoryDataset, transformerConfig } from '@vrepa/repro';
import { Trainer, parseConfig } from '@vrepa/trainer';
await initBackend({ quiet: true });
const c = reproPreset('toy');
const layers = Number(process.argv[2] ?? 6), batch = Number(process.argv[3] ?? 8);
const lat = tf.randomNormal([16, 5, 12, 18, 192]); const text = tf.randomNormal([16, 24, 32]); const tt = tf.randomNormal([16, 432, 64]);
const student = { ...c.student, layers, alignLayer: Math.floor(layers / 2) };
for (const lambda of [0, 0.5]) {
  const config = parseConfig({ model: { transformer: transformerConfig(student, [5, 12, 18, 192]), training_type: 'full' }, align: { align_layer: student.alignLayer, align_dims: [64], projector_dim: 128, proj_coeff: lambda, grid_match: 'teacher-interpolated' }, teacher: { source: 'synthetic', dim: 64, grid: { frames: 8, height: 6, width: 9 } }, data: { source: 'memory', text_seq_length: 24 }, optim: { batch_size: batch, lr_warmup_steps: 1 }, train: { max_steps: 100 } });
  const tr = new Trainer(config, { out: '/tmp/rt/x', dataset: new MemoryDataset(lat, text, lambda ? tt : undefined, { frames: 8, height: 6, width: 9 }), log: () => {} });
  tr.trainStep(); tr.trainStep();
  const u0 = process.cpuUsage(); const t0 = performance.now();
  for (let i = 0; i < 8; i++) tr.trainStep();
  const u = process.cpuUsage(u0);
  console.log(`layers ${layers} batch ${batch} λ ${lambda}: wall ${((performance.now() - t0) / 8).toFixed(0)} ms/step, cpu ${((u.user + u.system) / 8000).toFixed(0)} ms/step`);
  tr.dispose();
}

/**
 * T5 encode of 226 tokens with a T5-base-sized random model (v1.1 layout: d_model 768, 12 layers, 12 heads,
 * d_ff 2048, gated GELU), as the pipeline calls it (no mask) and with the mask. Baseline row: the
 * model's dense FLOPs as plain 2-D matMuls of the same shapes (what a perfect implementation of the
 * linear layers would cost), measured in the same run.
 */
import * as tf from '@tensorflow/tfjs';
import { Rng, printBenchTable, setInitRng, timeIt, type BenchRow } from '@vrepa/core';
import { T5EncoderModel, T5_V1_1_BASE } from '../src/index.js';

export async function run(): Promise<void> {
  setInitRng(Rng.fromSeed(0));
  const c = T5_V1_1_BASE;
  const model = new T5EncoderModel(c);
  const L = 226;
  const inner = c.num_heads * c.d_kv;
  const flopsPerRow = c.num_layers * (2 * L * c.d_model * inner * 4 + 2 * L * c.d_model * c.d_ff * 3 + 2 * 2 * L * L * inner);
  const rows: BenchRow[] = [];
  const x = tf.randomNormal([L, c.d_model]);
  const wq = tf.randomNormal([c.d_model, inner]);
  const wf = tf.randomNormal([c.d_model, c.d_ff]);
  const wo = tf.randomNormal([c.d_ff, c.d_model]);
  const base = await timeIt(
    () =>
      tf.tidy(() => {
        // per layer: q, k, v, o (d→inner), wi_0, wi_1 (d→d_ff), wo (d_ff→d)
        let out = x;
        for (let l = 0; l < c.num_layers; l++) {
          for (let i = 0; i < 4; i++) tf.matMul(x, wq);
          const h0 = tf.matMul(x, wf);
          tf.matMul(x, wf);
          out = tf.matMul(h0, wo);
        }
        return out;
      }),
    { runs: 3 },
  );
  const linFlops = c.num_layers * (2 * L * c.d_model * inner * 4 + 2 * L * c.d_model * c.d_ff * 3);
  rows.push({ name: 'baseline: the linear layers as plain matMuls', 'ms': base.medianMs, 'GFLOP/s': linFlops / base.medianMs / 1e6, 'vs baseline': 1 });
  for (const [name, batch, masked] of [
    ['encode 1×226 (pipeline call, no mask)', 1, false],
    ['encode 2×226 (prompt + negative prompt)', 2, false],
    ['encode 1×226 with attention mask', 1, true],
  ] as const) {
    const ids = tf.tensor2d(
      Array.from({ length: batch }, (_, b) => Array.from({ length: L }, (_, i) => (i < 40 + b ? 3 + ((i * 7 + b) % 100) : i === 40 + b ? 1 : 0))),
      undefined,
      'int32',
    );
    const mask = masked ? tf.cast(tf.notEqual(ids, 0), 'float32') : undefined;
    const t = await timeIt(() => model.forward(ids, mask), { runs: 3 });
    rows.push({ name, ms: t.medianMs, 'GFLOP/s': (batch * flopsPerRow) / t.medianMs / 1e6, 'vs baseline': t.medianMs / (batch * base.medianMs) });
    tf.dispose([ids, ...(mask ? [mask] : [])]);
  }
  printBenchTable(`T5 encoder, T5-base size (d_model ${c.d_model}, ${c.num_layers} layers), ${L} tokens; 'vs baseline' per prompt`, rows);
  tf.dispose([x, wq, wf, wo]);
  model.dispose();
}

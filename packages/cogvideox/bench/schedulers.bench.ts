/** Scheduler step overhead: one DDIM / DPM step on a latent of the 2B shape, against a plain axpy of the same size. */
import * as tf from '@tensorflow/tfjs';
import { type BenchRow, printBenchTable, timeIt } from '@vrepa/core';
import { COGVIDEOX_2B_SCHEDULER, CogVideoXDDIMScheduler, CogVideoXDPMScheduler } from '../src/index.js';

export async function run(): Promise<void> {
  const shape = [1, 13, 60, 90, 16]; // latents of 49×480×720
  const x = tf.randomNormal(shape);
  const v = tf.randomNormal(shape);
  const ddim = new CogVideoXDDIMScheduler(COGVIDEOX_2B_SCHEDULER);
  const dpm = new CogVideoXDPMScheduler(COGVIDEOX_2B_SCHEDULER);
  const ts = ddim.setTimesteps(50);
  dpm.setTimesteps(50);
  const noise = (s: number[]) => tf.randomNormal(s);
  const base = await timeIt(() => tf.tidy(() => tf.add(tf.mul(x, 0.5), tf.mul(v, 0.25))), { runs: 10 });
  const cases: Array<[string, () => unknown]> = [
    ['DDIM step', () => { const o = ddim.step(v, ts[10]!, x); return [o.prevSample, o.predOriginalSample]; }],
    ['DPM step (2 noise draws)', () => { const o = dpm.step(v, x, ts[10]!, ts[9]!, x, { noise }); return [o.prevSample, o.predOriginalSample]; }],
    ['addNoise', () => ddim.addNoise(x, v, [500])],
    ['getVelocity', () => ddim.getVelocity(x, v, [500])],
  ];
  const rows: BenchRow[] = [{ name: 'baseline: a·x + b·y (same size)', ms: base.medianMs, ratio: 1 }];
  for (const [name, fn] of cases) {
    const t = await timeIt(fn, { runs: 10 });
    rows.push({ name, ms: t.medianMs, ratio: t.medianMs / base.medianMs });
  }
  printBenchTable(`schedulers: step overhead on latents [${shape}] (${shape.reduce((a, b) => a * b)} values)`, rows);
  tf.dispose([x, v]);
}

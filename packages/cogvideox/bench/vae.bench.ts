/**
 * VAE encode / decode with the CogVideoX-2B VAE config (random weights): 9 frames, at a reduced size by
 * default (the full 480×720 tiled run needs ~25 TFLOP per direction: minutes on a CPU) and at 480×720
 * with tiling when VREPA_BENCH_FULL=1. Baseline row: the same VAE with tf.conv3d instead of core's
 * conv2d-over-time-taps.
 */
import * as tf from '@tensorflow/tfjs';
import { Rng, printBenchTable, setInitRng, timeIt, type BenchRow } from '@vrepa/core';
import { AutoencoderKLCogVideoX, COGVIDEOX_VAE_CONFIG, CausalConv3d } from '../src/index.js';

export async function run(): Promise<void> {
  const full = process.env.VREPA_BENCH_FULL === '1';
  const [H, W] = full ? [480, 720] : [32, 48];
  setInitRng(Rng.fromSeed(0));
  const vae = new AutoencoderKLCogVideoX(COGVIDEOX_VAE_CONFIG as unknown as Record<string, unknown>);
  if (full) vae.enableTiling();
  const video = Rng.fromSeed(1).randomTensor([1, 9, H, W, 3], 'uniform', { low: -1, high: 1 });
  const z = Rng.fromSeed(2).randomTensor([1, 3, H / 8, W / 8, 16]);
  const rows: BenchRow[] = [];
  const opts = { warmup: 0, runs: 1 };
  for (const impl of ['native', 'taps'] as const) {
    CausalConv3d.impl = impl;
    const enc = await timeIt(() => {
      const p = vae.encode(video);
      tf.dispose([p.logvar, p.std]);
      return p.mean;
    }, opts);
    const dec = await timeIt(() => vae.decode(z), opts);
    rows.push({ name: `${impl === 'native' ? 'baseline: tf.conv3d' : 'conv2d over time taps (default)'}`, 'encode ms': enc.medianMs, 'decode ms': dec.medianMs });
  }
  CausalConv3d.impl = 'taps';
  const base = rows[0]!;
  for (const r of rows) {
    r['encode speed-up'] = (base['encode ms'] as number) / (r['encode ms'] as number);
    r['decode speed-up'] = (base['decode ms'] as number) / (r['decode ms'] as number);
  }
  printBenchTable(`VAE (CogVideoX-2B config, random weights): 9 frames ${H}×${W}${full ? ', tiled 240×360' : ' (set VREPA_BENCH_FULL=1 for 480×720 tiled)'}`, rows);
  tf.dispose([video, z]);
  vae.dispose();
}

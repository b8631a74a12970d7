/**
 * VAE encode / decode with the CogVideoX-2B VAE config (random weights): 9 frames, at a reduced size by
 * default (the full 480×720 tiled run needs ~25 TFLOP per direction: minutes on a CPU) and at 480×720
 * with tiling when VREPA_BENCH_FULL=1. Baseline rows: the convolution FLOPs at the backend's conv2d speed
 * measured in the same run (roofline), and the same VAE with tf.conv3d instead of core's
 * conv2d-over-time-taps (not on wasm, whose Conv3D is a naive loop).
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
  // convolution FLOPs of one encode / decode, counted from the kernels of one profiled run (not timed)
  const convFlops = async (fn: () => tf.Tensor) => {
    const prof = await tf.profile(() => fn());
    let f = 0;
    for (const k of prof.kernels)
      if (k.name === 'Conv2D' || k.name === 'Conv3D') {
        const w = k.inputShapes[1]!;
        f += 2 * k.outputShapes[0]!.reduce((a, b) => a * b, 1) * w.slice(0, -1).reduce((a, b) => a * b, 1);
      }
    return f;
  };
  const encFlops = full ? NaN : await convFlops(() => {
    const p = vae.encode(video);
    tf.dispose([p.logvar, p.std]);
    return p.mean;
  });
  const decFlops = full ? NaN : await convFlops(() => vae.decode(z));
  // the backend's conv2d speed on a typical VAE layer, measured in the same run (the roofline row)
  const rx = tf.randomNormal([9, 32, 48, 128]) as tf.Tensor4D;
  const rw = tf.randomNormal([3, 3, 128, 128]) as tf.Tensor4D;
  const ref = await timeIt(() => tf.conv2d(rx, rw, 1, 'same'), { runs: 3 });
  const refRate = (2 * 9 * 32 * 48 * 128 * 9 * 128) / ref.medianMs / 1e6;
  tf.dispose([rx, rw]);
  rows.push({ name: 'roofline: encode / decode conv FLOPs at the conv2d speed below', 'encode ms': encFlops / refRate / 1e6, 'decode ms': decFlops / refRate / 1e6, 'encode conv GFLOP/s': refRate, 'decode conv GFLOP/s': refRate });
  // tf.conv3d is a naive loop on wasm (~0.5 GFLOP/s: many minutes here): measured on the other backends only
  const impls = tf.getBackend() === 'wasm' ? (['taps'] as const) : (['native', 'taps'] as const);
  for (const impl of impls) {
    CausalConv3d.impl = impl;
    const enc = await timeIt(() => {
      const p = vae.encode(video);
      tf.dispose([p.logvar, p.std]);
      return p.mean;
    }, opts);
    const dec = await timeIt(() => vae.decode(z), opts);
    rows.push({
      name: `${impl === 'native' ? 'baseline: tf.conv3d' : 'conv2d over time taps (default)'}`,
      'encode ms': enc.medianMs,
      'decode ms': dec.medianMs,
      'encode conv GFLOP/s': encFlops / enc.medianMs / 1e6,
      'decode conv GFLOP/s': decFlops / dec.medianMs / 1e6,
    });
  }
  CausalConv3d.impl = 'taps';
  const base = rows[0]!;
  for (const r of rows) {
    r['encode vs roofline'] = (r['encode ms'] as number) / (base['encode ms'] as number);
    r['decode vs roofline'] = (r['decode ms'] as number) / (base['decode ms'] as number);
  }
  printBenchTable(
    `VAE (CogVideoX-2B config, random weights): 9 frames ${H}×${W}${full ? ', tiled 240×360' : ` (${(encFlops / 1e9).toFixed(0)} / ${(decFlops / 1e9).toFixed(0)} GFLOP of convolutions; VREPA_BENCH_FULL=1 for 480×720 tiled)`}`,
    rows,
  );
  tf.dispose([video, z]);
  vae.dispose();
}

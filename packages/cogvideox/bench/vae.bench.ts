/**
 * VAE encode / decode with the CogVideoX-2B VAE config (random weights): 9 frames at a reduced size by
 * default; with VREPA_BENCH_FULL=1, the 480×720 tiled case of issue 8, measured as ONE tile at the official
 * tile size (240×360 video / 30×45 latents) and extrapolated to the full frame (see runFull). Baseline rows: the convolution FLOPs at the backend's conv2d speed
 * measured in the same run (roofline), and the same VAE with tf.conv3d instead of core's
 * conv2d-over-time-taps (not on wasm, whose Conv3D is a naive loop).
 */
import { readFileSync, writeFileSync } from 'node:fs';
import * as tf from '@tensorflow/tfjs';
import { Rng, printBenchTable, setInitRng, timeIt, type BenchRow } from '@vrepa/core';
import { AutoencoderKLCogVideoX, COGVIDEOX_VAE_CONFIG, CausalConv3d, tiledSpatial } from '../src/index.js';

export async function run(): Promise<void> {
  const full = process.env.VREPA_BENCH_FULL === '1';
  if (full) return runFull();
  const [H, W] = [32, 48];
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

/** Peak resident set size since the last reset, MiB (Linux VmHWM; NaN elsewhere). */
function peakRssMiB(): number {
  try {
    return Number(/VmHWM:\s+(\d+)/.exec(readFileSync('/proc/self/status', 'utf8'))![1]) / 1024;
  } catch {
    return NaN;
  }
}
/** Reset the peak (Linux: write 5 to /proc/self/clear_refs); returns the current RSS, MiB. */
function resetPeakRss(): number {
  try {
    writeFileSync('/proc/self/clear_refs', '5');
  } catch {
    /* not Linux: the peak is then the process peak */
  }
  return process.memoryUsage().rss / 2 ** 20;
}

/** Tile extents along one axis, as diffusers' loops make them: starts 0, stride, 2·stride, … < size. */
function tileSizes(size: number, tile: number, stride: number): number[] {
  const out: number[] = [];
  for (let i = 0; i < size; i += stride) out.push(Math.min(tile, size - i));
  return out;
}

/**
 * The 480×720 tiled case (issue 8), 9 frames: a full tiled decode is ~60 TFLOP of convolutions (many minutes
 * on 2 CPU cores), so ONE tile at the official size is timed (encode 9×240×360 video, decode 3×30×45
 * latents, no tiling inside) with its peak RSS, and the full frame is EXTRAPOLATED: Σ over the official
 * tiles of (tile area / full tile area) × per-tile time (convolution cost is linear in area) + the measured
 * blend/crop time of the tiled path with the same tile outputs. The memory row is the measured peak RSS of
 * one tile (the tiled path keeps only the tile outputs between tiles: see the vae test).
 */
async function runFull(): Promise<void> {
  setInitRng(Rng.fromSeed(0));
  const vae = new AutoencoderKLCogVideoX(COGVIDEOX_VAE_CONFIG as unknown as Record<string, unknown>).enableTiling();
  const t = vae.tiling;
  const [H, W, F] = [480, 720, 9];
  const f = vae.spatialFactor;
  const [th, tw] = [t.tileSampleMinHeight, t.tileSampleMinWidth];
  const [lth, ltw] = [Math.trunc(th / f), Math.trunc(tw / f)];
  const lf = vae.latentFrames(F);
  // official tile grids (encode: in video pixels, decode: in latents), as AutoencoderKLCogVideoX.encode/decode loop
  const encH = tileSizes(H, th, Math.trunc(th * (1 - t.overlapFactorHeight)));
  const encW = tileSizes(W, tw, Math.trunc(tw * (1 - t.overlapFactorWidth)));
  const decH = tileSizes(H / f, lth, Math.trunc(lth * (1 - t.overlapFactorHeight)));
  const decW = tileSizes(W / f, ltw, Math.trunc(ltw * (1 - t.overlapFactorWidth)));
  const areaTiles = (hs: number[], ws: number[], a: number, b: number) => (hs.reduce((x, y) => x + y, 0) / a) * (ws.reduce((x, y) => x + y, 0) / b);
  const encTiles = areaTiles(encH, encW, th, tw);
  const decTiles = areaTiles(decH, decW, lth, ltw);

  const rows: BenchRow[] = [];
  const measure = async (name: string, fn: () => tf.Tensor, tilesEquiv: number, nTiles: number, blendMs: number) => {
    const rss0 = resetPeakRss();
    const bytes0 = tf.memory().numBytes;
    const r = await timeIt(fn, { warmup: 0, runs: 1 });
    const peak = peakRssMiB();
    rows.push({
      name,
      'tile ms (measured)': r.medianMs,
      'official tiles': nTiles,
      'area-equivalent tiles': tilesEquiv,
      'blend ms (measured)': blendMs,
      '480×720 ms (EXTRAPOLATED)': r.medianMs * tilesEquiv + blendMs,
      'peak RSS per tile MiB': peak,
      'peak − RSS before MiB': peak - rss0,
      'live tensor MiB after': (tf.memory().numBytes - bytes0) / 2 ** 20,
    });
  };
  // blend/crop cost of the tiled path alone: the same tiling on the full-size input, each tile mapped to a zero output of the right size
  const blendOnly = async (x: tf.Tensor, tile: [number, number], stride: [number, number], scale: number, outC: number, tOut: number, blendExtent: [number, number], rowLimit: [number, number]) => {
    const r = await timeIt(
      () =>
        tiledSpatial(x, (tl) => tf.zeros([tl.shape[0]!, tOut, tl.shape[2]! * scale, tl.shape[3]! * scale, outC]), {
          tileIn: tile,
          stride,
          blendExtent,
          rowLimit,
        }),
      { warmup: 0, runs: 1 },
    );
    return r.medianMs;
  };
  const L = vae.config.latent_channels;
  const video = Rng.fromSeed(1).randomTensor([1, F, H, W, 3], 'uniform', { low: -1, high: 1 });
  const z = Rng.fromSeed(2).randomTensor([1, lf, H / f, W / f, L]);
  const ebh = Math.trunc(lth * t.overlapFactorHeight);
  const ebw = Math.trunc(ltw * t.overlapFactorWidth);
  const encBlend = await blendOnly(video, [th, tw], [Math.trunc(th * (1 - t.overlapFactorHeight)), Math.trunc(tw * (1 - t.overlapFactorWidth))], 1 / f, 2 * L, lf, [ebh, ebw], [lth - ebh, ltw - ebw]);
  const dbh = Math.trunc(th * t.overlapFactorHeight);
  const dbw = Math.trunc(tw * t.overlapFactorWidth);
  const decBlend = await blendOnly(z, [lth, ltw], [Math.trunc(lth * (1 - t.overlapFactorHeight)), Math.trunc(ltw * (1 - t.overlapFactorWidth))], f, vae.config.out_channels, F, [dbh, dbw], [th - dbh, tw - dbw]);
  const vTile = tf.slice(video, [0, 0, 0, 0, 0], [-1, -1, th, tw, -1]);
  const zTile = tf.slice(z, [0, 0, 0, 0, 0], [-1, -1, lth, ltw, -1]);
  tf.dispose([video, z]);
  await measure(`encode: one ${F}×${th}×${tw} tile`, () => {
    const p = vae.encode(vTile, { tiling: false });
    tf.dispose([p.logvar, p.std]);
    return p.mean;
  }, encTiles, encH.length * encW.length, encBlend);
  await measure(`decode: one ${lf}×${lth}×${ltw} latent tile → ${F}×${th}×${tw}`, () => vae.decode(zTile, { tiling: false }), decTiles, decH.length * decW.length, decBlend);
  printBenchTable(
    `VAE (CogVideoX-2B config, random weights), ${F} frames ${H}×${W} tiled (${th}×${tw} tiles, overlap 1/6 × 1/5), ${tf.getBackend()}: ` +
      `one official tile MEASURED, the full frame EXTRAPOLATED as area-equivalent tiles × tile time + measured blend; peak RSS measured per tile (Linux VmHWM)`,
    rows,
  );
  tf.dispose([vTile, zTile]);
  vae.dispose();
}

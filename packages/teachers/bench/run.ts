/**
 * `pnpm bench` for @vrepa/teachers.
 *
 * 1. Teacher forward at the official VideoREPA input (1×48×160×240 → 24×10×15 = 3600 tokens) with random
 *    weights, for VideoMAEv2 ViT-S, ViT-B (the official teacher) and ViT-L: median seconds, GFLOP/s
 *    (matmul FLOPs counted analytically: patch embedding, qkv, scores, attention·V, proj, MLP), peak MB of
 *    live tensors, and the ratio to the baseline row: a plain [3600,768]·[768,3072] matmul measured in the
 *    same run (the backend's matmul roofline). ViT-B is also run without query chunking (the whole
 *    [1, 12, 3600, 3600] score tensor at once) to show the memory chunking saves.
 * 2. FeatureCache: per training step, a cache hit (read + checksum of the 3600×768 tokens) against the
 *    recompute (pre-processing + ViT-B forward + write), both measured here.
 *
 * Peak MB = high-water of tf.memory().numBytes during the call minus the bytes live before it, sampled at
 * every tensor allocation.
 * PyTorch anchor: when VREPA_TORCH_PYTHON names a python with torch, bench/torch_vit.py (our plain PyTorch
 * ViT with the VideoMAEv2 layout, official explicit attention, random weights, no_grad, 2 threads) is timed on
 * the same input for ViT-S and ViT-B, and its rows sit under ours: seconds (best of 1 run after a warm-up),
 * GFLOP/s with the same analytic FLOP count, and 'ours / PyTorch' on our rows. Unset: a row says it is skipped.
 * A cross-check table shows the anchor computes our function: torch_vit.py --dump writes a 2-block ViT-S with
 * random weights under the official keys plus an input and its output; VideoMAEv2.fromCheckpoint loads it and
 * its features are compared (max abs difference; ~3e-6 of features ~3 measured here).
 * PyTorch under load suffers more than tfjs (its 2 OpenMP threads wait on each other when one is descheduled):
 * on a busy machine the ratio flatters us; on a quiet one (DESIGN.md §9) ViT-B takes PyTorch ~7.4 s.
 * Env: VREPA_BACKEND, VREPA_TORCH_PYTHON, VREPA_BENCH_QUICK=1 (ViT-S and the cache only).
 * Numbers taken while other jobs use the 2 cores are noisy: compare rows of one run.
 */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import * as tf from '@tensorflow/tfjs';
import { SafetensorsFile, initBackend, printBenchTable, timeIt, type BenchRow } from '@vrepa/core';
import { FeatureCache, VideoMAEv2, cachedEncodeVideo, encodeVideoCacheKey, teacherConfig, vitForwardFlops } from '../src/index.js';

const quick = process.env.VREPA_BENCH_QUICK === '1';
const here = path.dirname(fileURLToPath(import.meta.url));

/**
 * PyTorch forward seconds per teacher ('videomaev2-s' → 3.1), from bench/torch_vit.py on the clip
 * [1, T, H, W, 3]; or one sentence saying why there are none.
 */
function torchVit(names: string[], clip: readonly number[]): Map<string, number> | string {
  const py = process.env.VREPA_TORCH_PYTHON;
  if (!py) return 'skipped: VREPA_TORCH_PYTHON is not set (point it at a python with torch)';
  const letters = names.map((n) => n.replace('videomaev2-', ''));
  const [, T, H, W] = clip;
  const r = spawnSync(py, [path.join(here, 'torch_vit.py'), '--models', ...letters, '--frames', String(T), '--height', String(H), '--width', String(W), '--runs', '1', '--threads', '2'], {
    encoding: 'utf8',
    timeout: 240_000,
  });
  if (r.error) return `skipped: ${py} bench/torch_vit.py failed (${(r.error as Error).message})`;
  if (r.status !== 0) return `skipped: ${py} bench/torch_vit.py exited with ${r.status}: ${(r.stderr || '').trim().split('\n').pop()}`;
  const out = new Map<string, number>();
  for (const line of r.stdout.trim().split('\n')) {
    const j = JSON.parse(line) as { model: string; seconds: number; torch: string; threads: number };
    out.set(`videomaev2-${j.model}`, j.seconds);
    process.stderr.write(`[bench] PyTorch ${j.torch} (${j.threads} threads) ViT-${j.model.toUpperCase()}: ${j.seconds.toFixed(2)} s\n`);
  }
  return out;
}

let high = 0;
const engine = tf.engine() as unknown as { trackTensor: (...a: unknown[]) => void };
const origTrack = engine.trackTensor.bind(engine);
engine.trackTensor = (...a: unknown[]) => {
  origTrack(...a);
  const b = tf.memory().numBytes;
  if (b > high) high = b;
};
async function measure(fn: () => tf.Tensor): Promise<{ ms: number; peakMB: number }> {
  const base = tf.memory().numBytes;
  high = base;
  const t0 = performance.now();
  const out = fn();
  await out.data();
  const ms = performance.now() - t0;
  out.dispose();
  return { ms, peakMB: (high - base) / 2 ** 20 };
}

/**
 * Same function? torch_vit.py writes a 2-block ViT-S with random weights under the official keys, an input
 * at the pre-training size (16×224×224: our position table needs no interpolation there) and its output;
 * we load the weights through VideoMAEv2.fromCheckpoint and compare the features.
 */
function crossCheck(): BenchRow {
  const py = process.env.VREPA_TORCH_PYTHON;
  const name = 'cross-check: torch_vit.py weights loaded by VideoMAEv2.fromCheckpoint, ViT-S 2 blocks, 1×16×224×224';
  if (!py) return { name: `${name}: skipped (VREPA_TORCH_PYTHON is not set)` };
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'vrepa-vit-xcheck-'));
  try {
    const file = path.join(dir, 'vit.safetensors');
    const r = spawnSync(py, [path.join(here, 'torch_vit.py'), '--dump', file, '--models', 's', '--dump-depth', '2', '--frames', '16', '--height', '224'], { encoding: 'utf8', timeout: 120_000 });
    if (r.status !== 0) return { name: `${name}: torch_vit.py --dump failed (${(r.stderr || String(r.error)).trim().split('\n').pop()})` };
    const model = VideoMAEv2.fromCheckpoint(file, { config: { ...teacherConfig('videomaev2-s', 'videomaev2'), depth: 2 } });
    const f = SafetensorsFile.open(file);
    try {
      const [input, want] = [f.tensor('input'), f.tensor('output')];
      const got = model.encode(input).tokens;
      const [maxAbs, scale] = tf.tidy(() => [tf.max(tf.abs(tf.sub(got, want))).dataSync()[0]!, tf.max(tf.abs(want)).dataSync()[0]!]);
      tf.dispose([input, want, got]);
      model.dispose();
      return { name, 'max abs diff': maxAbs, 'max abs torch feature': scale, 'diff / max': maxAbs / scale };
    } finally {
      f.close();
    }
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

async function main() {
  await initBackend();
  // ---- 1. forward
  const clip = tf.randomUniform([1, 48, 160, 240, 3], -2, 2, 'float32', 1) as tf.Tensor5D;
  const rows: BenchRow[] = [];
  const a = tf.randomNormal([3600, 768], 0, 1, 'float32', 2);
  const b = tf.randomNormal([768, 3072], 0, 1, 'float32', 3);
  const mm = await timeIt(() => tf.matMul(a, b), { warmup: 1, runs: 3 });
  const roof = (2 * 3600 * 768 * 3072) / mm.medianMs / 1e6;
  tf.dispose([a, b]);
  rows.push({ name: 'baseline: matmul [3600,768]·[768,3072]', seconds: mm.medianMs / 1e3, 'GFLOP/s': roof, 'vs roofline': 1, 'peak MB': (3600 * 3072 * 4) / 2 ** 20 });

  // [label, config, maxScoreElements, blocks timed (of the config's depth; the time is scaled by depth/blocks), timed runs]
  const variants: Array<[string, string, number | undefined, number | undefined, number]> = quick
    ? [['VideoMAEv2 ViT-S', 'videomaev2-s', undefined, undefined, 1]]
    : [
        ['VideoMAEv2 ViT-S', 'videomaev2-s', undefined, undefined, 2],
        ['VideoMAEv2 ViT-B (official)', 'videomaev2-b', undefined, undefined, 1],
        ['VideoMAEv2 ViT-B, no query chunking', 'videomaev2-b', Infinity, 2, 1],
        ['VideoMAEv2 ViT-L', 'videomaev2-l', undefined, 4, 1],
      ];
  // PyTorch runs first, in its own process, before our models allocate anything
  const torchNames = quick ? ['videomaev2-s'] : ['videomaev2-s', 'videomaev2-b'];
  const torch = torchVit(torchNames, clip.shape);
  for (const [label, name, maxScore, blocks, runs] of variants) {
    const full = teacherConfig(name, 'videomaev2');
    const depth = blocks ?? full.depth;
    const model = new VideoMAEv2({ ...full, depth }, { maxScoreElements: maxScore });
    const grid = model.gridFor(clip.shape);
    const flops = vitForwardFlops(full, grid);
    const scale = full.depth / depth;
    const timed: Array<{ ms: number; peakMB: number }> = [];
    for (let i = 0; i < runs; i++) timed.push(await measure(() => model.encode(clip).tokens));
    const ms = Math.min(...timed.map((t) => t.ms)) * scale;
    const peakMB = Math.max(...timed.map((t) => t.peakMB));
    const gf = flops / ms / 1e6;
    const how = blocks ? ` (${depth} of ${full.depth} blocks timed, ×${scale})` : '';
    const row: BenchRow = { name: `${label}: 1×48×160×240 → ${grid.frames}×${grid.height}×${grid.width}${how}`, seconds: ms / 1e3, GFLOP: flops / 1e9, 'GFLOP/s': gf, 'vs roofline': gf / roof, 'peak MB': peakMB };
    rows.push(row);
    // the PyTorch row under the first (chunked, full) row of each teacher it timed
    if (torchNames.includes(name) && maxScore === undefined) {
      const tv = typeof torch === 'string' ? undefined : torch.get(name);
      if (tv !== undefined) {
        row['ours / PyTorch'] = ms / 1e3 / tv;
        rows.push({ name: `  PyTorch anchor: ${label.replace(' (official)', '')}, torch_vit.py (explicit attention, no_grad, 2 threads)`, seconds: tv, GFLOP: flops / 1e9, 'GFLOP/s': flops / tv / 1e9, 'vs roofline': flops / tv / 1e9 / roof, 'ours / PyTorch': 1 });
      } else if (typeof torch === 'string' && name === torchNames[0]) rows.push({ name: `  PyTorch anchor ${torch}` });
    }
    process.stderr.write(`[bench] ${label}: ${(ms / 1e3).toFixed(2)} s, ${gf.toFixed(1)} GFLOP/s, peak ${peakMB.toFixed(0)} MB\n`);
    model.dispose();
  }
  printBenchTable('Teacher forward at the official input (random weights; batch 1)', rows);
  printBenchTable('PyTorch anchor = the same function (features of one random-weight model, float32)', [crossCheck()]);

  // ---- 2. cache hit vs recompute
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'vrepa-teacher-bench-'));
  try {
    const name = quick ? 'videomaev2-s' : 'videomaev2-b';
    const model = new VideoMAEv2(name);
    const cache = new FeatureCache({ dir });
    const cache16 = new FeatureCache({ dir: path.join(dir, 'f16'), dtype: 'float16' });
    const video = tf.randomUniform([1, 49, 480, 720, 3], -1, 1, 'float32', 4);
    let i = 0;
    const recompute = await timeIt(() => cachedEncodeVideo(cache, model, video, { clip: `miss-${i++}` }).tokens, { warmup: 0, runs: 1 });
    // fill the entries without another forward: store the miss's tokens under the 'hit' keys
    {
      const r = cache.get(cache.list()[0]!.key)!;
      const key = encodeVideoCacheKey(model, 'hit');
      cache.put(key, r.tokens, r.grid);
      cache16.put(key, r.tokens, r.grid);
      r.tokens.dispose();
    }
    const hit = await timeIt(() => cachedEncodeVideo(cache, model, video, { clip: 'hit' }).tokens, { warmup: 1, runs: 5 });
    const hit16 = await timeIt(() => cachedEncodeVideo(cache16, model, video, { clip: 'hit' }).tokens, { warmup: 1, runs: 5 });
    const entry = cache.list()[0]!.bytes;
    const entry16 = cache16.list()[0]!.bytes;
    printBenchTable(`FeatureCache: teacher features per training step (${name}, raw clip 1×49×480×720)`, [
      { name: 'baseline: recompute (preprocess + forward + store)', ms: recompute.medianMs, 'entry MB': entry / 2 ** 20, 'vs recompute': 1, 'saved per step (s)': 0 },
      { name: 'cache hit, float32 (bit-exact)', ms: hit.medianMs, 'entry MB': entry / 2 ** 20, 'vs recompute': hit.medianMs / recompute.medianMs, 'saved per step (s)': (recompute.medianMs - hit.medianMs) / 1e3 },
      { name: 'cache hit, float16', ms: hit16.medianMs, 'entry MB': entry16 / 2 ** 20, 'vs recompute': hit16.medianMs / recompute.medianMs, 'saved per step (s)': (recompute.medianMs - hit16.medianMs) / 1e3 },
    ]);
    tf.dispose([video]);
    model.dispose();
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
  clip.dispose();
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});

/**
 * `pnpm bench` (part 2) for @vrepa/teachers: masked video pre-training at ViT-S width.
 *
 * The official ViT-S pre-training model (`videomae-pretrain-s`: encoder 384 × 12, decoder 192 × 4) on clips
 * [B, 16, 112, 112, 3] (tubelet 2, patch 16 → 8 × 7 × 7 = 392 tokens), tube mask 0.9 (5 of 49 tokens visible per
 * frame slot → 40 visible), batch B = 2:
 *   step     forward + masked MSE on normalised targets + backward + AdamW
 *   enc vis  the encoder's forward + backward on the visible tokens only (what MAE does)
 *   enc all  the encoder's forward + backward on all tokens — `enc all / enc vis` is what encoding only the
 *            visible tokens saves (goal ≥ 5×)
 *   step, encoder on all tokens: the same loss with the encoder run on every token (`encodeAllTokens`), the
 *            whole step's saving
 * PyTorch anchor: with VREPA_TORCH_PYTHON (a python with torch) and VREPA_VIDEOMAEV2_DIR (a checkout of
 * OpenGVLab/VideoMAEv2, never part of this repository), bench/torch_pretrain.py times the same three things on
 * the OFFICIAL `PretrainVisionTransformer`, and 'ours / PyTorch' is the ratio (goal ≤ 1.5 for the step).
 * Run on a shared machine: compare rows of one run only; the load average is printed with the table.
 * Env: VREPA_BACKEND, VREPA_TORCH_PYTHON, VREPA_VIDEOMAEV2_DIR, VREPA_BENCH_RUNS (default 3).
 */
import { spawnSync } from 'node:child_process';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import * as tf from '@tensorflow/tfjs';
import { AdamW, Rng, initBackend, printBenchTable, timeIt, type BenchRow } from '@vrepa/core';
import { VideoMAEPretrain, makePretrainMasks, pretrainConfig, pretrainLossAndGrads, pretrainNoWeightDecay } from '../src/index.js';

const here = path.dirname(fileURLToPath(import.meta.url));
const runs = Number(process.env.VREPA_BENCH_RUNS ?? 3);
const B = 2;

interface TorchTimes {
  step: number;
  enc_vis: number;
  enc_all: number;
  torch: string;
  threads: number;
}

function torchPretrain(): TorchTimes | string {
  const py = process.env.VREPA_TORCH_PYTHON;
  const repo = process.env.VREPA_VIDEOMAEV2_DIR;
  if (!py || !repo) return 'skipped: set VREPA_TORCH_PYTHON (a python with torch) and VREPA_VIDEOMAEV2_DIR (a checkout of OpenGVLab/VideoMAEv2)';
  const r = spawnSync(py, [path.join(here, 'torch_pretrain.py'), '--batch', String(B), '--runs', String(runs), '--threads', '2'], { encoding: 'utf8', timeout: 600_000, env: process.env });
  if (r.error) return `skipped: torch_pretrain.py failed (${(r.error as Error).message})`;
  if (r.status !== 0) return `skipped: torch_pretrain.py exited with ${r.status}: ${(r.stderr || '').trim().split('\n').pop()}`;
  return JSON.parse(r.stdout.trim().split('\n').pop()!) as TorchTimes;
}

async function main(): Promise<void> {
  const backend = await initBackend({ quiet: true });
  const config = pretrainConfig('videomae-pretrain-s', { imgSize: 112, numFrames: 16 });
  const model = new VideoMAEPretrain(config, { seed: 0 });
  const params = model.params;
  const opt = new AdamW(params, { lr: 1e-4, beta1: 0.9, beta2: 0.95, eps: 1e-8, weightDecay: 0.05, noDecay: (n) => pretrainNoWeightDecay(n, params.get(n)!.shape) });
  const rng = Rng.fromSeed(0);
  const clip = rng.randomTensor([B, 16, 112, 112, 3]) as tf.Tensor5D;
  const masks = makePretrainMasks(B, model.grid, { maskRatio: 0.9 }, rng);
  const visible = masks.encoderMask.reduce((a, v) => a + (v ? 0 : 1), 0) / B;
  const encoderVars = model.namedParameters().filter(([n]) => n.startsWith('encoder.')).map(([, p]) => p.value);

  const step = (encodeAllTokens = false) => () => {
    const r = pretrainLossAndGrads(model, clip, masks, { encodeAllTokens });
    opt.apply(r.grads, 1e-4);
    tf.dispose([r.loss, ...r.grads.values()]);
  };
  const encode = (m: typeof masks | null) => () => {
    const { value, grads } = tf.variableGrads(() => tf.mean(model.encode(clip, m)) as tf.Scalar, encoderVars);
    tf.dispose([value, ...Object.values(grads)]);
  };
  const load = () => os.loadavg()[0]!.toFixed(1);
  const l0 = load();
  const tStep = (await timeIt(step(), { warmup: 1, runs })).medianMs / 1e3;
  const tStepAll = (await timeIt(step(true), { warmup: 1, runs })).medianMs / 1e3;
  const tVis = (await timeIt(encode(masks), { warmup: 1, runs })).medianMs / 1e3;
  const tAll = (await timeIt(encode(null), { warmup: 1, runs })).medianMs / 1e3;
  const l1 = load();
  const torch = torchPretrain();
  const l2 = load();
  const rows: BenchRow[] = [];
  const t = typeof torch === 'string' ? null : torch;
  rows.push({ name: `ours (${backend.name}): step`, seconds: tStep, 'PyTorch s': t?.step, 'ours / PyTorch': t ? tStep / t.step : undefined });
  rows.push({ name: `ours: encoder fwd+bwd, ${visible} visible tokens`, seconds: tVis, 'PyTorch s': t?.enc_vis, 'ours / PyTorch': t ? tVis / t.enc_vis : undefined });
  rows.push({ name: `ours: encoder fwd+bwd, all ${model.numTokens} tokens`, seconds: tAll, 'PyTorch s': t?.enc_all, 'ours / PyTorch': t ? tAll / t.enc_all : undefined });
  rows.push({ name: 'encoding only the visible tokens: all / visible', seconds: tAll / tVis, 'PyTorch s': t ? t.enc_all / t.enc_vis : undefined });
  rows.push({ name: `ours: step with the encoder on all ${model.numTokens} tokens (same loss)`, seconds: tStepAll });
  rows.push({ name: 'step, encoder on all tokens / MAE step (ours)', seconds: tStepAll / tStep });
  if (typeof torch === 'string') rows.push({ name: `PyTorch: ${torch}` });
  else rows.push({ name: `PyTorch ${torch.torch}, ${torch.threads} threads, official PretrainVisionTransformer` });
  printBenchTable(`VideoMAE pre-training step, ViT-S, [${B}, 16, 112, 112, 3], tube mask 0.9 (load average ${l0} → ${l1} → ${l2} on ${os.cpus().length} cores)`, rows);
  tf.dispose([clip]);
  opt.dispose();
  model.dispose();
}

await main();

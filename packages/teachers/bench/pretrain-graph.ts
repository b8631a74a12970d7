/**
 * The pre-training step as one TensorFlow graph (compilePretrainStep) against the eager step, at the toy
 * reproduction's teacher size (packages/repro presets.ts `toy` teacher through teacher-pretrain.ts
 * `teacherRunConfig`: 16 frames of 48×72, patch 8, tubelet 2 → 8×6×9 = 432 tokens; encoder 96 × 4, decoder
 * 48 × 1; batch 8; tube mask 0.9 with the last 4 slots hidden → 24 visible, 408 predicted tokens per clip).
 *
 *   part 1, one step (interleaved eager / graph on one model, same batches): loss + gradients + AdamW
 *   part 2, pretrainTeacher (runs alternating VREPA_TF_GRAPH=0 and the default): the loop's logged step
 * Times are medians; wall ms and CPU ms (process user + system, all threads). Trace steps are left out of
 * the graph column. The machine is shared: compare numbers of one run; the load average is printed.
 * Run: `pnpm --filter @vrepa/teachers bench:pretrain-graph` (TF_ENABLE_ONEDNN_OPTS=0 for oneDNN off). Env: VREPA_BENCH_STEPS (default 16).
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { AdamW, Rng, graphFunctionsAvailable, initBackend } from '@vrepa/core';
import { VideoMAEPretrain, compilePretrainStep, makePretrainMasks, memoryClipSource, modelConfigOf, pretrainLossAndGrads, pretrainNoWeightDecay, pretrainPreset, pretrainTeacher, type TeacherPretrainConfig } from '../src/index.js';

const STEPS = Number(process.env.VREPA_BENCH_STEPS ?? 16);
const info = await initBackend({ quiet: true });
if (!graphFunctionsAvailable()) throw new Error('graph functions are not available here (tensorflow backend with binding patch 34 needed)');

/** repro toy teacher (presets.ts) through teacherRunConfig (frames 17 → numFrames 16, 48×72). */
const config: TeacherPretrainConfig = pretrainPreset('toy', {
  model_overrides: { name: 'repro-videomae-pretrain', imgSize: [48, 72], numFrames: 16, patchSize: 8, tubeletSize: 2, encoderEmbedDim: 96, encoderDepth: 4, encoderNumHeads: 4, decoderEmbedDim: 48, decoderDepth: 1, decoderNumHeads: 2 },
  init_seed: 0,
  mask: { ratio: 0.9, future_slots: 4 },
  data: { dir: '(in memory)', sampling_rate: 1 },
  train: { batch_size: 8, steps: 400, seed: 0, checkpoint_every: 400, keep_last: 1, picture_every: 0, plot_every: 0, tensorboard: false },
});
const m = modelConfigOf(config);
const B = config.train.batch_size;
const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
};
const cpuMs = () => {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1000;
};
const load = () => os.loadavg().map((x) => x.toFixed(2)).join(' ');
console.log(`backend ${info.name}, oneDNN ${process.env.TF_ENABLE_ONEDNN_OPTS === '0' ? 'off' : 'on'}, ${os.cpus().length} cores, load ${load()}`);

// part 1: one model, the eager and the graph step alternating on the same batches
{
  const model = new VideoMAEPretrain(m, { seed: 0 });
  const params = model.params;
  const opt = new AdamW(params, { lr: 1e-4, beta1: 0.9, beta2: 0.95, eps: 1e-8, weightDecay: 0.05, noDecay: (n) => pretrainNoWeightDecay(n, params.get(n)!.shape) });
  const step = compilePretrainStep(model, { normalizeTarget: true });
  const t = { eager: { wall: [] as number[], cpu: [] as number[] }, graph: { wall: [] as number[], cpu: [] as number[] } };
  for (let i = 0; i < STEPS; i++) {
    const clip = Rng.fromSeed(i).randomTensor([B, m.numFrames, 48, 72, 3], 'normal');
    const masks = makePretrainMasks(B, model.grid, { maskRatio: 0.9, futureSlots: 4 }, Rng.fromSeed(1000 + i));
    for (const way of i % 2 ? (['graph', 'eager'] as const) : (['eager', 'graph'] as const)) {
      const traced = way === 'graph' && step.mode() !== 'graph';
      const w0 = performance.now();
      const c0 = cpuMs();
      const r = way === 'graph' ? step(clip, masks) : pretrainLossAndGrads(model, clip, masks, { normalizeTarget: true });
      r.loss.dataSync();
      opt.apply(r.grads, 1e-4);
      tf.dispose([r.loss, ...r.grads.values()]);
      const wall = performance.now() - w0;
      const cpu = cpuMs() - c0;
      if (i >= 2 && !traced) {
        t[way].wall.push(wall);
        t[way].cpu.push(cpu);
      }
    }
    clip.dispose();
  }
  console.log(`part 1 (loss + gradients + AdamW, ${t.eager.wall.length} steps each, interleaved): eager ${median(t.eager.wall).toFixed(1)} ms wall / ${median(t.eager.cpu).toFixed(1)} ms CPU; graph ${median(t.graph.wall).toFixed(1)} ms wall / ${median(t.graph.cpu).toFixed(1)} ms CPU; eager/graph ${(median(t.eager.wall) / median(t.graph.wall)).toFixed(2)}× wall, ${(median(t.eager.cpu) / median(t.graph.cpu)).toFixed(2)}× CPU; load ${load()}`);
  step.dispose();
  opt.dispose();
  model.dispose();
}

// part 2: pretrainTeacher, alternating runs
{
  const rng = Rng.fromSeed(7);
  const clips = Array.from({ length: 16 }, (_, i) => {
    const frames = new Uint8Array(m.numFrames * 48 * 72 * 3);
    for (let j = 0; j < frames.length; j++) frames[j] = rng.randint(0, 256);
    return { name: `c${i}`, clip: { frames, count: m.numFrames, height: 48, width: 72 } };
  });
  const source = memoryClipSource(clips, m.numFrames);
  const t = { eager: { wall: [] as number[], cpu: [] as number[] }, graph: { wall: [] as number[], cpu: [] as number[] } };
  for (const way of ['graph', 'eager', 'graph', 'eager'] as const) {
    if (way === 'eager') process.env.VREPA_TF_GRAPH = '0';
    else delete process.env.VREPA_TF_GRAPH;
    const out = fs.mkdtempSync(path.join(os.tmpdir(), 'vrepa-bench-pretrain-graph-'));
    let c0 = cpuMs();
    await pretrainTeacher(config, {
      out,
      source,
      maxSteps: Math.max(4, STEPS / 2),
      progress: false,
      log: () => {},
      onProgress: (e) => {
        const c = cpuMs();
        if (e.step > 2 && e.step_mode !== 'trace') {
          t[way].wall.push(e.seconds * 1000);
          t[way].cpu.push(c - c0);
        }
        c0 = c;
      },
    });
    fs.rmSync(out, { recursive: true, force: true });
  }
  delete process.env.VREPA_TF_GRAPH;
  console.log(`part 2 (pretrainTeacher step incl. batch and masks, ${t.eager.wall.length} steps each, 2 runs each alternating): eager ${median(t.eager.wall).toFixed(1)} ms wall / ${median(t.eager.cpu).toFixed(1)} ms CPU; graph ${median(t.graph.wall).toFixed(1)} ms wall / ${median(t.graph.cpu).toFixed(1)} ms CPU; eager/graph ${(median(t.eager.wall) / median(t.graph.wall)).toFixed(2)}× wall, ${(median(t.eager.cpu) / median(t.graph.cpu)).toFixed(2)}× CPU; load ${load()}`);
}

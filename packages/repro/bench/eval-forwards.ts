/**
 * The transformer forwards of one evaluation (study.ts evaluateModel) at the toy preset's sizes, eager
 * (VREPA_TF_GRAPH=0) against compiled forwards (the default), interleaved in one process: probe features of
 * `--clips` test clips (context latents, align layer), the held-out loss (36 clips × 5 timesteps) with its TRD
 * tokens, 12 continuations and 6 caption-only clips (10 sampler steps each). Random weights and latents (the
 * cost does not depend on the values); each round makes its own compiled forwards, as an evaluation does, so
 * tracing is counted. Prints CPU seconds (user + system, all threads) and wall seconds per round.
 *
 *   npx tsx bench/eval-forwards.ts [--rounds 3] [--clips 720]
 */
import os from 'node:os';
import * as tf from '@tensorflow/tfjs';
import { initBackend, Rng } from '@vrepa/core';
import { CogVideoXTransformer3DModel, compiledForward } from '@vrepa/cogvideox';
import { featureRows, heldOutDiffusionLoss, sampleLatents, sliceFeatures, studentAlignTokens } from '../src/measures.js';
import { transformerConfig } from '../src/models.js';
import { reproPreset } from '../src/presets.js';

const arg = (name: string, d: number) => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? Number(process.argv[i + 1]) : d;
};
await initBackend({ quiet: true });
const c = reproPreset('toy');
const [F, h, w, C, K] = [5, 12, 18, 192, 3]; // toy latents: 17 frames / 4 + 1, 48×72 / 4, 4·4·4·3 channels; 9 context frames → 3
const model = new CogVideoXTransformer3DModel(transformerConfig(c.student, [F, h, w, C]), { rng: Rng.fromSeed(0), align: { align_layer: c.student.alignLayer, align_dims: [c.teacher.embedDim], projector_dim: c.student.projectorDim } });
const n = arg('clips', 720);
const latents = tf.randomNormal([n, F, h, w, C], 0, 1, 'float32', 1);
const text = tf.randomNormal([n, c.text.length, c.text.dim], 0, 1, 'float32', 2);
const B = c.eval.batch;
const layer = c.student.alignLayer;
const rows = (x: tf.Tensor, s: number, k: number) => tf.slice(x, [s], [k]);

const cpu = () => {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1e6;
};

/** CPU seconds of the three parts: probe features, held-out loss, generations */
function evaluation(compiled: boolean): number[] {
  const parts: number[] = [];
  let c0 = cpu();
  const mark = () => {
    const t = cpu();
    parts.push(t - c0);
    c0 = t;
  };
  const alignFwd = compiled ? compiledForward(model, { alignLayer: layer, projectAligned: false }) : undefined;
  const plainFwd = compiled ? compiledForward(model, { alignLayer: 0 }) : undefined;
  featureRows(n, B, (s, k) =>
    tf.tidy(() => {
      const lat = tf.slice(latents, [s, 0, 0, 0, 0], [k, K, h, w, C]);
      const r = studentAlignTokens(model, lat, rows(text, s, k), c.eval.probeTimestep, 1000 + s, layer, alignFwd);
      return sliceFeatures(r.tokens, r.grid);
    }),
  );
  mark();
  for (let s = 0; s < c.eval.lossClips; s += B) {
    tf.tidy(() => {
      const lat = rows(latents, s, B);
      const txt = rows(text, s, B);
      heldOutDiffusionLoss(model, lat, txt, c.eval.lossTimesteps, 7 + s, plainFwd);
      studentAlignTokens(model, lat, txt, c.eval.probeTimestep, 2000 + s, layer).tokens.dispose(); // eager in evaluateModel too
    });
  }
  mark();
  for (const [count, ctx] of [
    [c.eval.continuations, K],
    [c.eval.captionClips, 0],
  ] as const) {
    for (let s = 0; s < count; s += B) {
      const k = Math.min(B, count - s);
      tf.tidy(() => {
        sampleLatents(model, rows(text, s, k), [k, F, h, w, C], { steps: c.eval.sampleSteps, seed: 31 + s, contextFrames: ctx, compiled: plainFwd }, ctx ? rows(latents, s, k) : undefined);
      });
    }
  }
  mark();
  alignFwd?.dispose();
  plainFwd?.dispose();
  return parts;
}
const rounds = arg('rounds', 3);
console.log(`toy-sized evaluation forwards: ${n} probe clips; ${os.cpus().length} cores; load average ${os.loadavg().map((x) => x.toFixed(2)).join(' / ')}`);
const got: Record<string, number[]> = { eager: [], graph: [] };
for (let r = 0; r < rounds; r++) {
  for (const mode of r % 2 ? (['graph', 'eager'] as const) : (['eager', 'graph'] as const)) {
    if (mode === 'eager') process.env.VREPA_TF_GRAPH = '0';
    else delete process.env.VREPA_TF_GRAPH;
    const c0 = cpu();
    const t0 = performance.now();
    const parts = evaluation(mode === 'graph');
    const sec = cpu() - c0;
    got[mode]!.push(sec);
    console.log(`round ${r + 1} ${mode}: ${sec.toFixed(2)} CPU s (probe ${parts.map((x) => x.toFixed(2)).join(', loss ').replace(/, loss ([\d.]+)$/, ', generation $1')}), ${((performance.now() - t0) / 1000).toFixed(2)} wall s, load average ${os.loadavg()[0]!.toFixed(2)}, tensors ${tf.memory().numTensors}`);
  }
}
const med = (x: number[]) => [...x].sort((a, b) => a - b)[Math.floor(x.length / 2)]!;
console.log(`median CPU s: eager ${med(got.eager!).toFixed(2)}, graph ${med(got.graph!).toFixed(2)} (×${(med(got.eager!) / med(got.graph!)).toFixed(2)}); load average ${os.loadavg().map((x) => x.toFixed(2)).join(' / ')}`);

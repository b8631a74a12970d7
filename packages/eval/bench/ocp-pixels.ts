/**
 * End-to-end sanity check of the OCP pipeline with a model-free extractor: generate scenes, take the context
 * frames' pixels (3 evenly spaced frames of the context, average-pooled 8×8, as "tokens" on a grid), run the
 * probe. `tsx bench/ocp-pixels.ts [clipsPerSubset=40] [subsets=roll,collide]` (needs ffmpeg).
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { initBackend } from '@vrepa/core';
import { generateDataset } from '../src/dataset.js';
import { readFeatureFile } from '../src/feature-file.js';
import { trainProbe } from '../src/probe.js';
import { extractSceneFeatures } from '../src/scene-features.js';
import { DEFAULT_CONTEXT, type Subset } from '../src/scenes.js';

await initBackend({ quiet: true });
const n = Number(process.argv[2] ?? 40);
const subsets = (process.argv[3] ?? 'roll,collide').split(',') as Subset[];
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ocp-pixels-'));
let t0 = performance.now();
await generateDataset({ subsets, n, seed: 1, out: dir });
console.log(`generated ${n * subsets.length} clips in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
t0 = performance.now();
const out = path.join(dir, 'feats.safetensors');
await extractSceneFeatures(
  dir,
  (video) =>
    tf.tidy(() => {
      const [, f, h, w] = video.shape;
      const pooled = tf.avgPool(video.reshape([f!, h!, w!, 3]) as tf.Tensor4D, 8, 8, 'valid'); // [F, h/8, w/8, 3]
      const [, ph, pw] = pooled.shape;
      return { tokens: pooled.reshape([1, f * ph * pw, 3]), grid: { frames: f, height: ph, width: pw } };
    }),
  { out, maxFrames: DEFAULT_CONTEXT, progress: false },
);
const ds = readFeatureFile(out);
console.log(`features [${ds.features.n}, ${ds.features.d}] in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
t0 = performance.now();
const { cv } = await trainProbe(ds, { folds: 5 });
console.log(`pixel probe on the ${DEFAULT_CONTEXT} context frames: accuracy ${(100 * cv.accuracy).toFixed(1)}% ± ${(100 * cv.std).toFixed(1)} (chance 50%), ${((performance.now() - t0) / 1000).toFixed(1)} s`);
for (const g of cv.perGroup) console.log(`  ${g.name}: ${(100 * g.accuracy).toFixed(1)}% (n = ${g.n})`);
fs.rmSync(dir, { recursive: true, force: true });

import fs from 'node:fs'; import os from 'node:os'; import path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { initBackend } from '@vrepa/core';
import { Trainer, presetConfig } from '../src/index.js';
await initBackend({ backend: 'tensorflow', quiet: true });
const t = new Trainer(presetConfig('tiny'), { out: fs.mkdtempSync(path.join(os.tmpdir(), 'k-')), progress: false, log: () => {}, maxSteps: 10 });
t.trainStep(); t.trainStep();
const engine = tf.engine() as any;
const orig = engine.runKernelFunc;
const counts = new Map<string, number>();
let stackTag = '';
engine.runKernelFunc = function (p: any) {
  const name = p.kernelName ?? 'custom';
  // attribute by JS call site (first frame in our packages outside core's nn/custom)
  const st = new Error().stack!.split('\n').slice(2).map((l) => l.trim());
  const site = st.find((l) => /packages\/(cogvideox|core|relations|align-dims|trainer)\/src/.test(l) && !/custom\.ts|op-profile/.test(l)) ?? '?';
  const m = /packages\/([^)]+)\)?$/.exec(site);
  let key = `${name} @ ${(m ? m[1] : site).replace(/:\d+$/, '')}`;
  if (site === '?' && (name === 'Cast' || name === 'Identity' || name === 'Reshape' || name === 'Multiply')) key = name + ' ?? ' + st.slice(0, 6).map((l) => l.replace(/^at /, '').replace(/\(.*node_modules\/.pnpm\/[^/]+\/node_modules\//, '(').slice(0, 90)).join(' < ');
  counts.set(key, (counts.get(key) ?? 0) + 1);
  return orig.call(this, p);
};
t.trainStep();
engine.runKernelFunc = orig;
const rows = [...counts].sort((a, b) => b[1] - a[1]);
console.log('total', rows.reduce((s, r) => s + r[1], 0));
for (const [k, v] of rows.slice(0, 70)) console.log(v, k);
t.dispose();

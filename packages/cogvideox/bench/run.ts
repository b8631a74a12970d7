/**
 * `pnpm bench` for @vrepa/cogvideox: runs each bench module in turn (add yours to the list).
 * `VREPA_BENCH_ONLY=name` runs one.
 */
import { initBackend } from '@vrepa/core';

const modules: Record<string, () => Promise<{ run: () => Promise<void> }>> = {
  schedulers: () => import('./schedulers.bench.js'),
  transformer: () => import('./transformer.bench.js'),
  t5: () => import('./t5.bench.js'),
  vae: () => import('./vae.bench.js'),
  pipeline: () => import('./pipeline.bench.js'),
};

await initBackend();
const only = process.env.VREPA_BENCH_ONLY;
for (const [name, load] of Object.entries(modules)) {
  if (only && only !== name) continue;
  await (await load()).run();
}

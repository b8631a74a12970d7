/**
 * `pnpm bench` for @vrepa/core: runs each bench module in turn and prints one table each.
 * Add a module by adding one line to `modules`. `VREPA_BENCH_ONLY=name` runs one.
 */
import { initBackend } from '../src/index.js';

const modules: Record<string, () => Promise<{ run: () => Promise<void> }>> = {
  checkpoint: () => import('./checkpoint.bench.js'),
  backends: () => import('./backends.bench.js'),
  nn: () => import('./nn.bench.js'),
};

await initBackend();
const only = process.env.VREPA_BENCH_ONLY;
for (const [name, load] of Object.entries(modules)) {
  if (only && only !== name) continue;
  await (await load()).run();
}

/** `vrepa prepare`: fill the per-sample caches so that training never re-encodes. */
import type { TrainConfig } from './config.js';
import { CachedDataset, SyntheticDataset, disposeSample } from './data.js';
import { ProgressBar } from '@vrepa/core';
import { prepareFolder } from './folder.js';

export interface PrepareResult {
  written: number;
  cached: number;
  skipped: string[];
}

export async function prepareCaches(c: TrainConfig, opts: { progress?: boolean } = {}): Promise<PrepareResult> {
  if (!c.data.cache_dir) throw new Error('prepareCaches: data.cache_dir is not set');
  if (c.data.source === 'folder') {
    const r = prepareFolder(c, { progress: opts.progress });
    return { written: r.written, cached: r.cached, skipped: r.skipped };
  }
  const textDim = typeof c.model.transformer === 'string' ? 0 : Number((c.model.transformer as Record<string, unknown>).text_embed_dim);
  const ds = new CachedDataset(SyntheticDataset.fromConfig(c, textDim), { dir: c.data.cache_dir, memory: false });
  const bar = new ProgressBar(ds.length, 0, opts.progress ?? true);
  try {
    for (let i = 0; i < ds.length; i++) {
      disposeSample(ds.get(i));
      bar.count(i + 1, 'caching sample');
    }
  } finally {
    bar.done();
  }
  return { written: ds.stats.misses, cached: ds.stats.hits, skipped: [] };
}

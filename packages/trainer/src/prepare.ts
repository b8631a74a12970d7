/** `vrepa prepare`: fill the per-sample caches so that training never re-encodes; sharded; verify. */
import fs from 'node:fs';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import type { TrainConfig } from './config.js';
import { CachedDataset, SyntheticDataset, disposeSample, readSample } from './data.js';
import { ProgressBar } from '@vrepa/core';
import { prepareFolder, verifyFolderCache, type CacheVerifyReport, type Shard } from './folder.js';

export interface PrepareResult {
  written: number;
  cached: number;
  skipped: string[];
}

function syntheticCache(c: TrainConfig): CachedDataset {
  const textDim = typeof c.model.transformer === 'string' ? 0 : Number((c.model.transformer as Record<string, unknown>).text_embed_dim);
  return new CachedDataset(SyntheticDataset.fromConfig(c, textDim), { dir: c.data.cache_dir, memory: false });
}

/**
 * Fill the cache of `c` (data.cache_dir). With `shard` ({index, count}) only samples i ≡ index (mod count) —
 * array jobs (Slurm, Kubernetes) fill one shared cache in parallel; `verifyCaches` checks the result.
 */
export async function prepareCaches(c: TrainConfig, opts: { progress?: boolean; shard?: Shard } = {}): Promise<PrepareResult> {
  if (!c.data.cache_dir) throw new Error('prepareCaches: data.cache_dir is not set');
  if (c.data.source === 'folder') {
    const r = prepareFolder(c, { progress: opts.progress, shard: opts.shard });
    return { written: r.written, cached: r.cached, skipped: r.skipped };
  }
  const ds = syntheticCache(c);
  const mine = Array.from({ length: ds.length }, (_, i) => i).filter((i) => !opts.shard || i % opts.shard.count === opts.shard.index);
  const bar = new ProgressBar(mine.length, 0, opts.progress ?? true);
  try {
    mine.forEach((i, k) => {
      disposeSample(ds.get(i));
      bar.count(k + 1, 'caching sample');
    });
  } finally {
    bar.done();
  }
  return { written: ds.stats.misses, cached: ds.stats.hits, skipped: [] };
}

/** Check the cache of `c`: which samples are missing or cannot be read. Writes nothing. */
export function verifyCaches(c: TrainConfig): CacheVerifyReport {
  if (!c.data.cache_dir) throw new Error('verify: data.cache_dir is not set');
  if (c.data.source === 'folder') return verifyFolderCache(c);
  const n = c.data.num_samples;
  const report: CacheVerifyReport = { rows: n, ok: 0, skipped: [], missing: [], corrupt: [] };
  let shapes: string | undefined;
  for (let i = 0; i < n; i++) {
    const file = `sample-${i}.safetensors`;
    const p = path.join(c.data.cache_dir, file);
    if (!fs.existsSync(p)) {
      report.missing.push(i);
      continue;
    }
    let s: ReturnType<typeof readSample> | undefined;
    try {
      s = readSample(p);
      const all = [s.latents, s.text, ...(s.teacher ? [s.teacher] : [])];
      if (all.some((t) => t.dataSync().some((v) => !Number.isFinite(v)))) throw new Error('non-finite values');
      const sh = JSON.stringify(all.map((t) => t.shape));
      shapes ??= sh;
      if (sh !== shapes) throw new Error(`shapes ${sh} differ from the other entries' ${shapes}`);
      report.ok++;
    } catch (e) {
      report.corrupt.push({ row: i, file, reason: (e as Error).message.split('\n')[0]! });
    } finally {
      if (s) tf.dispose([s.latents, s.text, ...(s.teacher ? [s.teacher] : [])]);
    }
  }
  return report;
}

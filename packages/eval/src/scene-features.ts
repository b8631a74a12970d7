/**
 * The Node side of the Physion-style probe: feature extraction over a scene dataset on disk (mp4 clips decoded with ffmpeg). physion.ts keeps the pure parts for the browser.
 */
import path from 'node:path';
import type * as tf from '@tensorflow/tfjs';
import { readSceneLabels } from './dataset.js';
import { writeFeatureFile } from './feature-file.js';
import { loadVideoTensor } from './ffmpeg.js';
import { extractFeatures, type ExtractOptions, type FeatureExtractor } from './physion.js';
import type { FeatureMatrix } from './probe.js';

/**
 * Features of every clip of a scene dataset (`vrepa physics generate` output, mp4 files) through `extractor`,
 * written as a feature file for `vrepa probe` with the contact labels and subset groups. The extractor gets
 * each clip as `[1, frames, H, W, 3]` in [−1, 1] (the first `maxFrames` frames, e.g. the OCP context).
 */
export async function extractSceneFeatures(
  dir: string,
  extractor: FeatureExtractor<tf.Tensor5D>,
  opts: ExtractOptions & { out: string; maxFrames?: number },
): Promise<FeatureMatrix> {
  const lab = readSceneLabels(dir);
  async function* videos() {
    for (const clip of lab.clips) yield await loadVideoTensor(path.join(dir, `${clip}.mp4`), { maxFrames: opts.maxFrames });
  }
  const features = await extractFeatures(
    videos(),
    async (video, i) => {
      try {
        return await extractor(video, i);
      } finally {
        video.dispose();
      }
    },
    { ...opts, total: lab.clips.length },
  );
  writeFeatureFile(opts.out, { features, labels: lab.labels, groups: lab.groups, groupNames: lab.groupNames });
  return features;
}

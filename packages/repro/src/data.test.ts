import { describe, expect, it } from 'vitest';
import { SPLITS, generateSplit, sceneCaption, sharedSeeds, splitClipSeed, type DataConfig } from './data.js';
import { sampleScene, SUBSETS } from '@vrepa/eval';
import { captionWords, embedCaptions } from './text.js';

const cfg: DataConfig = { subsets: ['collide', 'drop'], perSubset: { train: 4, val: 2, test: 4 }, seed: 5, frames: 9, width: 48, height: 32, fps: 4, context: 5 };

describe('data splits', () => {
  it('splits are disjoint, labels balanced per subset, captions never name the outcome', async () => {
    const splits = [];
    for (const s of SPLITS) splits.push(await generateSplit(cfg, s));
    for (let i = 0; i < 3; i++) for (let j = i + 1; j < 3; j++) expect(sharedSeeds(splits[i]!, splits[j]!)).toEqual([]);
    for (const d of splits) {
      expect(d.n).toBe(cfg.perSubset[d.split] * 2);
      expect(d.pixels.length).toBe(d.n * 9 * 32 * 48 * 3);
      for (const sub of cfg.subsets) {
        const lab = d.labels.filter((_, i) => d.subsets[i] === sub);
        expect(lab.filter((l) => l === 1).length).toBe(Math.floor(lab.length / 2));
      }
      for (const c of d.captions) expect(captionWords(c).some((w) => ['contact', 'touch', 'touches', 'hit', 'hits', 'miss', 'misses'].includes(w))).toBe(false);
      d.firstContactFrames.forEach((f, i) => {
        if (d.labels[i]) expect(f).toBeGreaterThanOrEqual(cfg.context);
      });
    }
  }, 120_000);

  it('split seeds differ across splits for every subset and index', () => {
    const seen = new Set<number>();
    for (const s of SPLITS) for (const sub of SUBSETS) for (let i = 0; i < 50; i++) seen.add(splitClipSeed(0, s, sub, i));
    expect(seen.size).toBe(3 * SUBSETS.length * 50);
  });

  it('captions are a function of the initial scene and differ between scenes', () => {
    const a = sampleScene('roll', 1);
    expect(sceneCaption(a)).toBe(sceneCaption(sampleScene('roll', 1)));
    const caps = new Set(Array.from({ length: 20 }, (_, i) => sceneCaption(sampleScene(SUBSETS[i % SUBSETS.length]!, i))));
    expect(caps.size).toBeGreaterThan(5);
  });

  it('caption embeddings: same word → same vector, padding zeros, seeded', () => {
    const e = embedCaptions(['red ball', 'ball red'], 4, 3, 7);
    expect(Array.from(e.subarray(0, 3))).toEqual(Array.from(e.subarray(4 * 3 + 3, 4 * 3 + 6)));
    expect(Array.from(e.subarray(6, 12))).toEqual([0, 0, 0, 0, 0, 0]);
    expect(embedCaptions(['red ball'], 4, 3, 8)).not.toEqual(embedCaptions(['red ball'], 4, 3, 7));
  });
});

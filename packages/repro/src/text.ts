/**
 * Caption conditioning: each word of a caption (the closed vocabulary of data.ts' caption grammar) is
 * mapped to a fixed, seeded random vector — an embedding table that is never trained — and the sequence
 * is padded with zero vectors to `length` tokens. The student's own text projection (`text_proj`, trained
 * with the transformer) learns what the words mean; nothing about the caption is hand-encoded as features.
 */
import { Rng } from '@vrepa/core';

function wordStream(word: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < word.length; i++) h = Math.imul(h ^ word.charCodeAt(i), 0x01000193) >>> 0;
  return h;
}

export function captionWords(caption: string): string[] {
  return caption
    .toLowerCase()
    .split(/[^a-z0-9]+/)
    .filter(Boolean);
}

/** `[n · length · dim]` row-major embeddings of the captions (words beyond `length` are dropped). */
export function embedCaptions(captions: string[], length: number, dim: number, seed: number): Float32Array {
  const out = new Float32Array(captions.length * length * dim);
  const cache = new Map<string, Float32Array>();
  captions.forEach((c, i) => {
    captionWords(c)
      .slice(0, length)
      .forEach((w, j) => {
        let v = cache.get(w);
        if (!v) {
          v = Rng.fromSeed(seed, wordStream(w)).fillNormal(new Float32Array(dim));
          cache.set(w, v);
        }
        out.set(v, (i * length + j) * dim);
      });
  });
  return out;
}

import * as tf from '@tensorflow/tfjs';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { Rng, tensorLeakAcross } from '@vrepa/core';
import {
  PRETRAIN_CONFIGS,
  VideoMAEPretrain,
  makePretrainMasks,
  maskedMse,
  maskedPerFrame,
  patchifyClip,
  pretrainConfig,
  pretrainLoss,
  pretrainLossAndGrads,
  pretrainNoWeightDecay,
  pretrainTargets,
  reconstructionFrames,
  runningCellMap,
  futureMask,
  tubeMask,
  unnormalizeClip,
  unpatchify,
  type PretrainMasks,
  type VideoMAEPretrainConfig,
} from './index.js';

/** A tiny config: 4 frames of 16×16, patch 4, tubelet 2 → grid 2×4×4 (32 tokens). */
const TINY: VideoMAEPretrainConfig = {
  ...PRETRAIN_CONFIGS['videomae-pretrain-tiny']!,
  name: 'test-tiny',
  imgSize: 16,
  numFrames: 4,
  patchSize: 4,
  encoderEmbedDim: 16,
  encoderDepth: 2,
  encoderNumHeads: 2,
  decoderEmbedDim: 8,
  decoderDepth: 1,
  decoderNumHeads: 2,
};

const clipOf = (seed: number, b = 2, c: VideoMAEPretrainConfig = TINY) => {
  const [h, w] = typeof c.imgSize === 'number' ? [c.imgSize, c.imgSize] : c.imgSize;
  return Rng.fromSeed(seed).randomTensor([b, c.numFrames, h, w, 3], 'normal') as tf.Tensor5D;
};
const read = (t: tf.Tensor) => Array.from(t.dataSync());

describe('tube masks (official TubeMaskingGenerator)', () => {
  it('exactly int(ratio·h·w) masked per frame slot, the same spatial mask in every slot', () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 4 }), fc.integer({ min: 1, max: 6 }), fc.integer({ min: 2, max: 6 }), fc.double({ min: 0.05, max: 0.95, noNaN: true }), fc.nat(1000), (t, h, w, ratio, seed) => {
        const grid = { frames: t, height: h, width: w };
        const k = Math.floor(ratio * h * w);
        if (k < 1 || k >= h * w) {
          expect(() => tubeMask(grid, ratio, Rng.fromSeed(seed))).toThrow(/masks \d+; at least one token must be masked and one visible/);
          return;
        }
        const m = tubeMask(grid, ratio, Rng.fromSeed(seed));
        expect(m.length).toBe(t * h * w);
        const first = Array.from(m.subarray(0, h * w));
        expect(first.reduce((a, b) => a + b, 0)).toBe(k);
        for (let s = 1; s < t; s++) expect(Array.from(m.subarray(s * h * w, (s + 1) * h * w))).toEqual(first);
      }),
      { numRuns: 60 },
    );
  });

  it('is seeded: same seed, same masks; the official count uses int() (0.9 of 196 → 176)', () => {
    const g = { frames: 8, height: 14, width: 14 };
    expect(Array.from(tubeMask(g, 0.9, Rng.fromSeed(3)))).toEqual(Array.from(tubeMask(g, 0.9, Rng.fromSeed(3))));
    expect(Array.from(tubeMask(g, 0.9, Rng.fromSeed(3)))).not.toEqual(Array.from(tubeMask(g, 0.9, Rng.fromSeed(4))));
    expect(maskedPerFrame(g, 0.9)).toBe(176);
    expect(maskedPerFrame({ frames: 1, height: 10, width: 10 }, 0.29)).toBe(28); // float product 28.999…, int() → 28
  });

  it('a mask ratio outside (0, 1) is one clear error', () => {
    const g = { frames: 2, height: 4, width: 4 };
    for (const r of [0, 1, -0.1, 1.5, NaN]) expect(() => tubeMask(g, r, Rng.fromSeed(0))).toThrow(/mask ratio must lie in \(0, 1\)/);
    expect(() => makePretrainMasks(2, g, { maskRatio: 1 }, Rng.fromSeed(0))).toThrow(/mask ratio must lie in \(0, 1\)/);
  });
});

describe('running-cell decoder masks (official RunningCellMaskingGenerator)', () => {
  it('hand-derived maps for ratio 0.5: queue [1,1,0,0] rotated one step per slot', () => {
    const g = { frames: 3, height: 2, width: 2 };
    // phase 0: the pointer is 1, 2, 3 at slots 0, 1, 2 → cells [1,0,0,1], [0,0,1,1], [0,1,1,0]
    expect(Array.from(runningCellMap(g, 0.5, 0))).toEqual([1, 0, 0, 1, 0, 0, 1, 1, 0, 1, 1, 0]);
    // a 4×4 frame tiles the 2×2 cell
    const big = runningCellMap({ frames: 1, height: 4, width: 4 }, 0.5, 0);
    expect(Array.from(big)).toEqual([1, 0, 1, 0, 0, 1, 0, 1, 1, 0, 1, 0, 0, 1, 0, 1]);
  });

  it('every 2×2 cell of every slot hides exactly int(4·ratio) tokens; odd grids and bad ratios are errors', () => {
    for (const ratio of [0.25, 0.5, 0.75])
      for (let phase = 0; phase < 4; phase++) {
        const m = runningCellMap({ frames: 4, height: 4, width: 6 }, ratio, phase);
        for (let t = 0; t < 4; t++)
          for (let h = 0; h < 4; h += 2)
            for (let w = 0; w < 6; w += 2) {
              const at = (dh: number, dw: number) => m[(t * 4 + h + dh) * 6 + w + dw]!;
              expect(at(0, 0) + at(0, 1) + at(1, 0) + at(1, 1)).toBe(Math.floor(4 * ratio));
            }
      }
    expect(() => runningCellMap({ frames: 2, height: 3, width: 4 }, 0.5, 0)).toThrow(/even height and width/);
    expect(() => runningCellMap({ frames: 2, height: 4, width: 4 }, 0.1, 0)).toThrow(/must mask 1, 2 or 3/);
    expect(() => runningCellMap({ frames: 2, height: 4, width: 4 }, 1, 0)).toThrow(/decoder mask ratio must lie in \(0, 1\)/);
  });

  it('makePretrainMasks: decoder mask = 1 − encoder mask without decoder masking', () => {
    const m = makePretrainMasks(3, { frames: 2, height: 4, width: 4 }, { maskRatio: 0.75 }, Rng.fromSeed(1));
    expect(m.encoderMask.length).toBe(96);
    for (let i = 0; i < 96; i++) expect(m.decoderMask[i]).toBe(1 - m.encoderMask[i]!);
    const d = makePretrainMasks(3, { frames: 2, height: 4, width: 4 }, { maskRatio: 0.75, decoderMaskType: 'run_cell', decoderMaskRatio: 0.5 }, Rng.fromSeed(1));
    expect(d.decoderMask.reduce((a, b) => a + b, 0)).toBe(48);
  });

  it('future masking: the last slots wholly masked, the earlier slots the tube mask of the same draw', () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 5 }), fc.integer({ min: 2, max: 4 }), fc.integer({ min: 2, max: 5 }), fc.double({ min: 0.3, max: 0.9, noNaN: true }), fc.integer({ min: 0, max: 1000 }), (frames, h, w, ratio, seed) => {
        const grid = { frames, height: h, width: w };
        const p = h * w;
        if (Math.floor(ratio * p) < 1 || Math.floor(ratio * p) >= p) return;
        for (let k = 0; k < frames; k++) {
          const m = futureMask(grid, ratio, k, Rng.fromSeed(seed));
          const tube = tubeMask(grid, ratio, Rng.fromSeed(seed));
          for (let t = 0; t < frames; t++)
            for (let i = 0; i < p; i++) expect(m[t * p + i]).toBe(t >= frames - k ? 1 : tube[t * p + i]);
        }
        expect(() => futureMask(grid, ratio, frames, Rng.fromSeed(seed))).toThrow(/futureSlots must be an integer in \[0, /);
      }),
      { numRuns: 40 },
    );
    // batches: the same count in every sample, decoder predicts exactly the hidden tokens; 0 slots = the official masks
    const m = makePretrainMasks(4, { frames: 4, height: 3, width: 4 }, { maskRatio: 0.75, futureSlots: 2 }, Rng.fromSeed(3));
    for (let b = 0; b < 4; b++) expect(m.encoderMask.subarray(b * 48, (b + 1) * 48).reduce((a, c) => a + c, 0)).toBe(2 * 12 + 2 * 9);
    for (let i = 0; i < m.encoderMask.length; i++) expect(m.decoderMask[i]).toBe(1 - m.encoderMask[i]!);
    const off = makePretrainMasks(4, { frames: 4, height: 3, width: 4 }, { maskRatio: 0.75, futureSlots: 0 }, Rng.fromSeed(3));
    expect(off.encoderMask).toEqual(makePretrainMasks(4, { frames: 4, height: 3, width: 4 }, { maskRatio: 0.75 }, Rng.fromSeed(3)).encoderMask);
  });
});

describe('targets (official normlize_target)', () => {
  it('normalised targets have zero mean and unit unbiased std per token and channel', () => {
    const clip = clipOf(5);
    const t = pretrainTargets(clip, 2, 4); // [2, 32, 2·4·4·3]
    const x = tf.reshape(t, [2, 32, 32, 3]);
    const mean = tf.mean(x, 2);
    const std = tf.sqrt(tf.div(tf.sum(tf.square(tf.sub(x, tf.expandDims(mean, 2))), 2), 31));
    for (const v of read(mean)) expect(Math.abs(v)).toBeLessThan(1e-5);
    for (const v of read(std)) expect(Math.abs(v - 1)).toBeLessThan(1e-4); // (x−m)/(s+1e-6) has std s/(s+1e-6)
    tf.dispose([clip, t, x, mean, std]);
  });

  it('raw targets are the un-normalised pixels in (p0 p1 p2 c) order (hand-indexed)', () => {
    const clip = clipOf(6, 1);
    const t = pretrainTargets(clip, 2, 4, { normalizeTarget: false });
    const px = unnormalizeClip(clip);
    const P = px.arraySync() as number[][][][][];
    const T = t.arraySync() as number[][][];
    // token (t=1, h=2, w=3) = index 1·16 + 2·4 + 3 = 27; pixel (p0=1, p1=2, p2=0), channel 2
    const idx = ((1 * 4 + 2) * 4 + 0) * 3 + 2;
    expect(T[0]![27]![idx]).toBeCloseTo(P[0]![1 * 2 + 1]![2 * 4 + 2]![3 * 4 + 0]![2]!, 6);
    tf.dispose([clip, t, px]);
  });

  it('normalised targets are invariant to a per-tubelet brightness/contrast change a·x + b (a > 0)', () => {
    const clip = clipOf(7, 1);
    const patches = patchifyClip(clip, 2, 4);
    const a = tf.reshape(tf.linspace(0.5, 2, 32), [1, 32, 1, 1]);
    const b = tf.reshape(tf.linspace(-1, 1, 32), [1, 32, 1, 1]);
    const changed = unpatchify(tf.reshape(tf.add(tf.mul(patches, a), b), [1, 32, 96]), { frames: 2, height: 4, width: 4 }, 2, 4);
    const t0 = pretrainTargets(clip, 2, 4);
    const t1 = pretrainTargets(changed, 2, 4);
    expect(tf.max(tf.abs(tf.sub(t0, t1))).dataSync()[0]).toBeLessThan(1e-3);
    tf.dispose([clip, patches, a, b, changed, t0, t1]);
  });

  it('unpatchify inverts patchify', () => {
    const clip = clipOf(8);
    const p = patchifyClip(clip, 2, 4);
    const back = unpatchify(tf.reshape(p, [2, 32, 96]), { frames: 2, height: 4, width: 4 }, 2, 4);
    expect(read(back)).toEqual(read(clip));
    tf.dispose([clip, p, back]);
  });
});

describe('VideoMAEPretrain', () => {
  it('official names and shapes (state-dict order: mask_token, encoder, decoder, encoder_to_decoder)', () => {
    const m = new VideoMAEPretrain(TINY, { seed: 1 });
    const sd = m.stateDictShapes();
    const names = [...sd.keys()];
    expect(names[0]).toBe('mask_token');
    expect(names.at(-1)).toBe('encoder_to_decoder.weight');
    expect(sd.get('encoder.patch_embed.proj.weight')).toEqual([16, 3, 2, 4, 4]);
    expect(sd.get('encoder.blocks.1.attn.q_bias')).toEqual([16]);
    expect(sd.get('decoder.head.weight')).toEqual([96, 8]);
    expect(sd.get('encoder_to_decoder.weight')).toEqual([8, 16]);
    expect(sd.has('encoder_to_decoder.bias')).toBe(false);
    expect(sd.has('encoder.blocks.0.gamma_1')).toBe(false);
    expect([...m.params.keys()]).toEqual(names);
    m.dispose();
    const ls = new VideoMAEPretrain({ ...TINY, initValues: 0.1, qkvBias: false });
    expect(read(ls.getParameter('decoder.blocks.0.gamma_2').value)).toEqual(Array(8).fill(Math.fround(0.1)));
    expect(ls.stateDictShapes().has('encoder.blocks.0.attn.q_bias')).toBe(false);
    ls.dispose();
  });

  it('official init: seeded, xavier bounds, zero biases, mask_token within ±0.02', () => {
    const a = new VideoMAEPretrain(TINY, { seed: 3 });
    const b = new VideoMAEPretrain(TINY, { seed: 3 });
    const c = new VideoMAEPretrain(TINY, { seed: 4 });
    const w = (m: VideoMAEPretrain, n: string) => read(m.getParameter(n).value);
    expect(w(a, 'decoder.head.weight')).toEqual(w(b, 'decoder.head.weight'));
    expect(w(a, 'decoder.head.weight')).not.toEqual(w(c, 'decoder.head.weight'));
    const bound = Math.sqrt(6 / (16 + 48));
    const qkv = w(a, 'encoder.blocks.0.attn.qkv.weight');
    expect(Math.max(...qkv.map(Math.abs))).toBeLessThanOrEqual(bound);
    expect(Math.max(...qkv.map(Math.abs))).toBeGreaterThan(bound * 0.8);
    expect(w(a, 'encoder.blocks.0.mlp.fc1.bias').every((v) => v === 0)).toBe(true);
    expect(w(a, 'mask_token').every((v) => Math.abs(v) <= 0.02 && v !== 0)).toBe(true);
    for (const m of [a, b, c]) m.dispose();
  });

  it('the encoder sees only visible tokens: changing masked tubelets changes neither the encoding nor the predictions', () => {
    const m = new VideoMAEPretrain(TINY, { seed: 2 });
    const clip = clipOf(9);
    const masks = makePretrainMasks(2, m.grid, { maskRatio: 0.75 }, Rng.fromSeed(9));
    // noise only where the encoder mask is 1
    const maskPix = unpatchify(tf.tile(tf.reshape(tf.tensor2d(Float32Array.from(masks.encoderMask), [2, 32]), [2, 32, 1]), [1, 1, 96]), m.grid, 2, 4);
    const other = tf.add(clip, tf.mul(maskPix, clipOf(10)));
    const f0 = m.forward(clip, masks);
    const f1 = m.forward(other, masks);
    expect(f0.encoded.shape).toEqual([2, 8, 16]);
    expect(f0.outputs.shape).toEqual([2, 24, 96]);
    expect(tf.max(tf.abs(tf.sub(f0.encoded, f1.encoded))).dataSync()[0]).toBe(0);
    expect(tf.max(tf.abs(tf.sub(f0.outputs, f1.outputs))).dataSync()[0]).toBe(0);
    // …while the loss (targets of the masked tubelets) does change
    const l0 = pretrainLoss(m, clip, masks);
    const l1 = pretrainLoss(m, other, masks);
    expect(l0.loss.dataSync()[0]).not.toBeCloseTo(l1.loss.dataSync()[0]!, 3);
    tf.dispose([clip, maskPix, other, f0.encoded, f0.outputs, f1.encoded, f1.outputs, ...Object.values(l0), ...Object.values(l1)]);
    m.dispose();
  });

  it('encodeAllTokens (the cost baseline) runs the encoder on every token: then masked pixels do reach the visible outputs', () => {
    const m = new VideoMAEPretrain(TINY, { seed: 2 });
    const clip = clipOf(15);
    const masks = makePretrainMasks(2, m.grid, { maskRatio: 0.75 }, Rng.fromSeed(4));
    const maskPix = unpatchify(tf.tile(tf.reshape(tf.tensor2d(Float32Array.from(masks.encoderMask), [2, 32]), [2, 32, 1]), [1, 1, 96]), m.grid, 2, 4);
    const other = tf.add(clip, tf.mul(maskPix, clipOf(16)));
    const a = m.forward(clip, masks, { encodeAllTokens: true });
    const b = m.forward(other, masks, { encodeAllTokens: true });
    expect(a.encoded.shape).toEqual([2, 8, 16]);
    expect(a.outputs.shape).toEqual([2, 24, 96]);
    expect(tf.max(tf.abs(tf.sub(a.encoded, b.encoded))).dataSync()[0]).toBeGreaterThan(1e-3);
    // with every token visible the two paths are the same computation
    const all = m.encode(clip, null);
    const viaAll = m.encode(clip, null, { encodeAllTokens: true });
    expect(read(viaAll)).toEqual(read(all));
    tf.dispose([clip, maskPix, other, a.encoded, a.outputs, b.encoded, b.outputs, all, viaAll]);
    m.dispose();
  });

  it('loss invariances: permuting the batch (with its masks) keeps the loss; the masked MSE ignores unweighted tokens', () => {
    const m = new VideoMAEPretrain(TINY, { seed: 2 });
    const clip = clipOf(11);
    const masks = makePretrainMasks(2, m.grid, { maskRatio: 0.5 }, Rng.fromSeed(2));
    const swap = (a: Uint8Array): Uint8Array => Uint8Array.from([...a.subarray(32), ...a.subarray(0, 32)]);
    const swapped: PretrainMasks = { ...masks, encoderMask: swap(masks.encoderMask), decoderMask: swap(masks.decoderMask) };
    const clip2 = tf.concat([tf.slice(clip, [1], [1]), tf.slice(clip, [0], [1])]);
    const a = pretrainLoss(m, clip, masks);
    const b = pretrainLoss(m, clip2, swapped);
    expect(b.loss.dataSync()[0]).toBeCloseTo(a.loss.dataSync()[0]!, 5);
    // maskedMse: hand values
    const out = tf.tensor3d([[[1, 1], [5, 5]]]);
    const lab = tf.tensor3d([[[0, 2], [0, 0]]]);
    expect(maskedMse(out, lab, tf.tensor2d([[1, 0]])).dataSync()[0]).toBeCloseTo(1, 6);
    expect(maskedMse(out, lab, tf.tensor2d([[1, 1]])).dataSync()[0]).toBeCloseTo(13, 6);
    tf.dispose([clip, clip2, out, lab, ...Object.values(a), ...Object.values(b)]);
    m.dispose();
  });

  it('gradients reach every trainable parameter and one SGD step lowers the loss', () => {
    const m = new VideoMAEPretrain(TINY, { seed: 5 });
    const clip = clipOf(12);
    const masks = makePretrainMasks(2, m.grid, { maskRatio: 0.75 }, Rng.fromSeed(5));
    const { loss, grads } = pretrainLossAndGrads(m, clip, masks);
    expect([...grads.keys()].sort()).toEqual([...m.params.keys()].sort());
    const before = loss.dataSync()[0]!;
    for (const [n, g] of grads) m.params.get(n)!.assign(tf.tidy(() => tf.sub(m.params.get(n)!, tf.mul(g, 0.05))));
    const after = pretrainLoss(m, clip, masks);
    expect(after.loss.dataSync()[0]).toBeLessThan(before);
    tf.dispose([clip, loss, ...grads.values(), ...Object.values(after)]);
    m.dispose();
  });

  it('no tensor leaks across forward, loss, gradients and reconstruction calls', async () => {
    const m = new VideoMAEPretrain(TINY, { seed: 1 });
    const clip = clipOf(13);
    const masks = makePretrainMasks(2, m.grid, { maskRatio: 0.75 }, Rng.fromSeed(1));
    m.positionTables();
    const leak = await tensorLeakAcross(() => {
      const r = pretrainLossAndGrads(m, clip, masks, { keepOutputs: true });
      const pics = reconstructionFrames(m, clip, r.outputs!, masks);
      tf.dispose([r.loss, r.outputs!, ...r.grads.values(), pics.original, pics.masked, pics.reconstructed]);
    });
    expect(leak).toBe(0);
    clip.dispose();
    m.dispose();
  });

  it('reconstruction frames: visible tubelets are the original pixels; a perfect prediction reconstructs the clip', () => {
    const m = new VideoMAEPretrain(TINY, { seed: 1 });
    const clip = tf.tidy(() => tf.clipByValue(clipOf(14), -1.5, 1.5));
    const masks = makePretrainMasks(2, m.grid, { maskRatio: 0.75 }, Rng.fromSeed(3));
    const { labels, ...rest } = pretrainLoss(m, clip, masks);
    const pics = reconstructionFrames(m, clip, labels, masks);
    const orig = tf.clipByValue(unnormalizeClip(clip), 0, 1);
    expect(tf.max(tf.abs(tf.sub(pics.reconstructed, orig))).dataSync()[0]).toBeLessThan(1e-4);
    const grey = read(pics.masked).filter((v) => v === 0.5).length;
    expect(grey).toBe(2 * 24 * 96); // 24 masked tokens × 96 values per sample
    tf.dispose([clip, labels, ...Object.values(rest), orig, pics.original, pics.masked, pics.reconstructed]);
    m.dispose();
  });

  it('bad input: one clear error each', () => {
    expect(() => pretrainConfig(TINY, { patchSize: 5 })).toThrow(/patch size 5 does not divide the frame size 16×16/);
    expect(() => pretrainConfig(TINY, { tubeletSize: 3 })).toThrow(/tubelet size 3 does not divide numFrames 4/);
    expect(() => pretrainConfig('nope')).toThrow(/not registered; known: videomae-pretrain-tiny/);
    const m = new VideoMAEPretrain(TINY, { init: 'zeros' });
    const masks = makePretrainMasks(1, m.grid, { maskRatio: 0.75 }, Rng.fromSeed(0));
    const short = tf.zeros([1, 2, 16, 16, 3]);
    const small = tf.zeros([1, 4, 12, 16, 3]);
    expect(() => m.forward(short, masks)).toThrow(/the clip has 2 frames, fewer than numFrames 4/);
    expect(() => m.forward(small, masks)).toThrow(/frame size 12×16 does not match the model's 16×16/);
    const clip = tf.zeros([2, 4, 16, 16, 3]);
    expect(() => m.forward(clip, masks)).toThrow(/masks are for 1 × 32 tokens/);
    expect(() => patchifyClip(tf.zeros([1, 3, 8, 8, 3]), 2, 4)).toThrow(/tubelet size 2 does not divide 3 frames/);
    tf.dispose([short, small, clip]);
    m.dispose();
  });

  it('weight-decay rule of the official parameter groups', () => {
    expect(pretrainNoWeightDecay('mask_token', [1, 1, 8])).toBe(true);
    expect(pretrainNoWeightDecay('encoder.blocks.0.attn.q_bias', [16])).toBe(true);
    expect(pretrainNoWeightDecay('decoder.head.bias', [96])).toBe(true);
    expect(pretrainNoWeightDecay('decoder.head.weight', [96, 8])).toBe(false);
  });
});

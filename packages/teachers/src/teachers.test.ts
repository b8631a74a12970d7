/** Properties, bad input and memory of the teacher encoders (tiny random models). */
import * as tf from '@tensorflow/tfjs';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { Rng, conv3d, tensorLeakAcross } from '@vrepa/core';
import { interpolateSinusoidPosEmbed, interpolateVjepaPosEmbed, videoMaeSinusoidTable, vjepaSincosTable } from './posembed.js';
import { VideoMAE } from './videomae.js';
import { VideoMAEv2 } from './videomaev2.js';
import { VJEPA } from './vjepa.js';
import { OmniMAE } from './omnimae.js';
import { TEACHER_CONFIGS, inferTeacherConfig, teacherConfig } from './configs.js';
import type { TeacherConfig, TeacherFamily, VideoTeacher } from './teacher.js';

function tiny(family: TeacherFamily, extra: Partial<TeacherConfig> = {}): TeacherConfig {
  const base = teacherConfig(undefined, family);
  return { ...base, name: `${family}-tiny`, embedDim: 16, depth: 2, numHeads: 2, patchSize: 4, imgSize: 8, numFrames: 4, ...extra };
}
function build(family: TeacherFamily, extra: Partial<TeacherConfig> = {}): VideoTeacher {
  const c = tiny(family, extra);
  return family === 'videomaev2' ? new VideoMAEv2(c) : family === 'videomae' ? new VideoMAE(c) : family === 'omnimae' ? new OmniMAE(c) : new VJEPA(c);
}
const rnd = (shape: number[], seed: number, lo = -1, hi = 1) => Rng.fromSeed(seed).randomTensor(shape, 'uniform', { low: lo, high: hi });
const maxAbsDiff = (a: tf.Tensor, b: tf.Tensor) => tf.tidy(() => tf.max(tf.abs(tf.sub(a, b))).dataSync()[0]!);

describe('position tables', () => {
  it('interpolating to the same grid is the identity (both families)', () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 4 }), fc.integer({ min: 1, max: 5 }), fc.integer({ min: 1, max: 5 }), fc.integer({ min: 1, max: 6 }), (t, h, w, d2) => {
        const g = { frames: t, height: h, width: w };
        const table = videoMaeSinusoidTable(g, 2 * d2);
        const a = interpolateSinusoidPosEmbed(table, g, g);
        const b = interpolateVjepaPosEmbed(table, g, g);
        const ok = maxAbsDiff(a, table) === 0 && maxAbsDiff(b, table) === 0;
        tf.dispose([table, a, b]);
        return ok;
      }),
      { numRuns: 20 },
    );
  });

  it('a resize that keeps one axis changes nothing along it; time-only stretch of a time-constant table is constant', () => {
    // a table constant over time stays constant over time after the trilinear stretch (weights sum to 1)
    const g = { frames: 2, height: 3, width: 4 };
    const slot = videoMaeSinusoidTable({ frames: 1, height: 3, width: 4 }, 8);
    const table = tf.concat([slot, slot]);
    const out = interpolateSinusoidPosEmbed(table, g, { frames: 6, height: 3, width: 4 });
    const slots = tf.split(out, 6);
    for (const s of slots) expect(maxAbsDiff(s, slot)).toBeLessThan(1e-6);
    tf.dispose([slot, table, out, ...slots]);
  });

  it('V-JEPA table columns: [depth | height | width] sincos parts, cut to dim (uniform_power)', () => {
    // dim 10: parts of ceil(10/6)*2 = 4 columns each (12), cut to 10; position (t=1, h=0, w=0)
    const t = vjepaSincosTable(10, { frames: 2, height: 1, width: 1 }, true);
    const row = t.arraySync()[1]!;
    const omega = [1, 1 / 100]; // 1/10000^(i/2), i = 0, 1
    const want = [Math.sin(omega[0]!), Math.sin(omega[1]!), Math.cos(omega[0]!), Math.cos(omega[1]!), 0, 0, 1, 1, 0, 0];
    row.forEach((v, i) => expect(v).toBeCloseTo(want[i]!, 6));
    t.dispose();
  });

  it('rejects a table that does not fit its grid', () => {
    const t = tf.zeros([5, 4]);
    expect(() => interpolateSinusoidPosEmbed(t, { frames: 1, height: 2, width: 2 }, { frames: 2, height: 2, width: 2 })).toThrow(/\[4, dim\]/);
    t.dispose();
  });
});

describe('encoders', () => {
  for (const family of ['videomaev2', 'videomae', 'vjepa', 'omnimae'] as const) {
    it(`${family}: patchify+matmul embedding equals the strided Conv3d`, () => {
      const m = build(family);
      const clip = rnd([1, 4, 8, 12, 3], 3);
      const got = m.patchEmbed.forward(clip);
      const want = tf.tidy(() => {
        const y = conv3d(clip, m.patchEmbed.proj.weight.value, m.patchEmbed.proj.bias.value, { stride: [2, 4, 4] });
        return tf.reshape(y, [1, -1, 16]);
      });
      expect(maxAbsDiff(got, want)).toBeLessThan(1e-5);
      tf.dispose([clip, got, want]);
      m.dispose();
    });

    it(`${family}: batch items are independent (a batch = its items encoded alone)`, () => {
      const m = build(family);
      const clip = rnd([2, 4, 8, 12, 3], 7);
      const { tokens, grid } = m.encode(clip);
      expect(grid).toEqual({ frames: 2, height: 2, width: 3 });
      expect(tokens.shape).toEqual([2, 12, 16]);
      for (let i = 0; i < 2; i++) {
        const one = tf.slice(clip, [i, 0, 0, 0, 0], [1, -1, -1, -1, -1]);
        const r = m.encode(one);
        const row = tf.slice(tokens, [i, 0, 0], [1, -1, -1]);
        expect(maxAbsDiff(r.tokens, row)).toBeLessThan(1e-5);
        tf.dispose([one, r.tokens, row]);
      }
      tf.dispose([clip, tokens]);
      m.dispose();
    });

    it(`${family}: encode({ blocks: k }) is block k's output`, () => {
      const m = build(family);
      const clip = rnd([1, 4, 8, 12, 3], 13);
      const trace = m.encodeTrace(clip);
      const first = m.encode(clip, { blocks: 1 });
      expect(maxAbsDiff(first.tokens, trace.blocks[0]!)).toBe(0);
      expect(() => m.encode(clip, { blocks: 3 })).toThrow(/1\.\.2, got 3/);
      tf.dispose([clip, first.tokens, trace.tokens, trace.patchEmbed, trace.posEmbed, ...trace.blocks]);
      m.dispose();
    });

    it(`${family}: query-chunked attention equals unchunked`, () => {
      const big = build(family);
      const small = build(family, { maxScoreElements: 2 * 5 }); // 2 heads × 5 … forces chunks of < N queries
      const sd = big.stateDict();
      small.loadStateDict(sd);
      const clip = rnd([1, 4, 8, 12, 3], 11);
      const a = big.encode(clip);
      const b = small.encode(clip);
      expect(maxAbsDiff(a.tokens, b.tokens)).toBeLessThan(1e-5);
      tf.dispose([clip, a.tokens, b.tokens, ...sd.values()]);
      big.dispose();
      small.dispose();
    });

    it(`${family}: encode and encodeVideo leak no tensors`, async () => {
      const m = build(family);
      const clip = rnd([1, 4, 8, 12, 3], 5);
      const video = rnd([1, 5, 24, 36, 3], 6);
      expect(await tensorLeakAcross(() => m.encode(clip).tokens)).toBe(0);
      expect(await tensorLeakAcross(() => m.encodeVideo(video).tokens)).toBe(0);
      expect(await tensorLeakAcross(() => m.encodeTrace(clip))).toBe(0);
      tf.dispose([clip, video]);
      m.dispose();
    });
  }

  it('layer scale (init_values > 0): gamma 1 equals no layer scale; gamma 0 makes every block the identity', () => {
    const plain = build('videomaev2');
    const scaled = build('videomaev2', { layerScale: 1 });
    const sd = plain.stateDict();
    const report = scaled.loadStateDict(sd, { strict: false });
    expect(report.missing.sort()).toEqual(['blocks.0.gamma_1', 'blocks.0.gamma_2', 'blocks.1.gamma_1', 'blocks.1.gamma_2']);
    const clip = rnd([1, 4, 8, 12, 3], 17);
    const a = plain.encode(clip);
    const b = scaled.encode(clip);
    expect(maxAbsDiff(a.tokens, b.tokens)).toBe(0);
    const zero = build('videomaev2', { layerScale: 1e-30 });
    zero.loadStateDict(sd, { strict: false });
    const t = zero.encodeTrace(clip);
    expect(maxAbsDiff(t.tokens, tf.add(t.patchEmbed, t.posEmbed))).toBeLessThan(1e-6);
    tf.dispose([clip, a.tokens, b.tokens, t.tokens, t.patchEmbed, t.posEmbed, ...t.blocks, ...sd.values()]);
    [plain, scaled, zero].forEach((m) => m.dispose());
  });

  it('encodeVideo = preprocess (drop frame 0, normalise, bicubic ÷3) then encode', () => {
    const m = build('videomaev2');
    const video = rnd([1, 5, 24, 36, 3], 9);
    const clip = m.preprocess(video);
    expect(clip.shape).toEqual([1, 4, 8, 12, 3]);
    const a = m.encodeVideo(video);
    const b = m.encode(clip);
    expect(maxAbsDiff(a.tokens, b.tokens)).toBe(0);
    tf.dispose([video, clip, a.tokens, b.tokens]);
    m.dispose();
  });

  it('teacher-input strategies: reduced = encodeVideo; temporal groups = groups encoded alone, concatenated in time', () => {
    const m = build('videomaev2');
    const video = rnd([1, 9, 8, 12, 3], 21);
    const big = rnd([1, 9, 24, 36, 3], 22);
    const red = m.encodeWithStrategy(big, { kind: 'reduced' });
    const direct = m.encodeVideo(big);
    expect(maxAbsDiff(red.tokens, direct.tokens)).toBe(0);
    tf.dispose([big, direct.tokens]);
    expect(red.grid).toEqual({ frames: 4, height: 2, width: 3 });
    red.tokens.dispose();
    const groups = m.encodeWithStrategy(video, { kind: 'temporal-groups', groups: 2 });
    expect(groups.grid).toEqual({ frames: 4, height: 2, width: 3 });
    const clip = m.preprocess(video, { factor: 1 }); // frames 1..8 at full size, normalised
    const first = tf.slice(clip, [0, 0, 0, 0, 0], [1, 4, -1, -1, -1]);
    const alone = m.encode(first);
    const head = tf.slice(groups.tokens, [0, 0, 0], [1, 12, -1]); // group 0: 2×2×3 tokens
    expect(maxAbsDiff(alone.tokens, head)).toBeLessThan(1e-5);
    tf.dispose([video, clip, first, alone.tokens, head, groups.tokens]);
    expect(() => m.encodeWithStrategy(tf.zeros([1, 7, 8, 12, 3]), { kind: 'temporal-groups', groups: 2 })).toThrow(/3 frames is not a positive multiple of the tubelet size 2/);
    m.dispose();
  });

  it('pool and classify (VideoMAE head)', () => {
    const m = build('videomae', { fcNorm: true, numClasses: 3 });
    const tokens = rnd([2, 6, 16], 1);
    const p = m.pool(tokens);
    const logits = m.classify(tokens);
    expect(p.shape).toEqual([2, 16]);
    expect(logits.shape).toEqual([2, 3]);
    // fc_norm with weight 1, bias 0: each pooled row has mean 0
    const rowMeans = tf.mean(p, 1);
    rowMeans.dataSync().forEach((v) => expect(Math.abs(v)).toBeLessThan(1e-5));
    tf.dispose([tokens, p, logits, rowMeans]);
    expect(() => build('videomaev2').classify(tf.zeros([1, 2, 16]))).toThrow(/no classifier head/);
    m.dispose();
  });

  it('the config is inferred from state-dict shapes (registered configs only)', () => {
    const shapesOf = (c: TeacherConfig, extra: Record<string, number[]> = {}) => {
      const m = new Map<string, number[]>([['patch_embed.proj.weight', [c.embedDim, 3, c.tubeletSize, c.patchSize, c.patchSize]], ...Object.entries(extra)]);
      for (let i = 0; i < c.depth; i++) m.set(`blocks.${i}.mlp.fc1.weight`, [Math.floor(c.embedDim * c.mlpRatio), c.embedDim]);
      return m;
    };
    for (const c of Object.values(TEACHER_CONFIGS)) {
      const s = Math.floor(c.imgSize / c.patchSize);
      const m = shapesOf(c, c.family === 'vjepa' ? { pos_embed: [1, (c.numFrames / c.tubeletSize) * s * s, c.embedDim] } : {});
      expect(inferTeacherConfig(c.family, [...m.keys()], (n) => m.get(n)!).name).toBe(c.name);
    }
    const odd = shapesOf({ ...TEACHER_CONFIGS['videomaev2-b']!, embedDim: 640 });
    expect(() => inferTeacherConfig('videomaev2', [...odd.keys()], (n) => odd.get(n)!)).toThrow(/no registered videomaev2 config has dim 640, depth 12, patch 16/);
  });

  it('registered configs mirror the official factories', () => {
    const g = TEACHER_CONFIGS['videomaev2-g']!;
    expect([g.embedDim, g.depth, g.numHeads, g.patchSize, Math.floor(g.embedDim * g.mlpRatio)]).toEqual([1408, 40, 16, 14, 6144]);
    const b = TEACHER_CONFIGS['videomaev2-b']!;
    expect([b.embedDim, b.depth, b.numHeads, b.patchSize, b.tubeletSize, b.qkvBias, b.layerNormEps]).toEqual([768, 12, 12, 16, 2, 'qv', 1e-6]);
    expect(TEACHER_CONFIGS['vjepa-l']!.qkvBias).toBe('qkv');
    expect(() => teacherConfig('vjepa-l', 'videomaev2')).toThrow(/vjepa config, not videomaev2/);
    expect(() => teacherConfig('nope', 'videomaev2')).toThrow(/not registered/);
  });
});

describe('bad input', () => {
  const m = build('videomaev2');
  const cases: Array<[string, number[], RegExp]> = [
    ['rank 4', [4, 8, 12, 3], /rank 5/],
    ['4 channels', [1, 4, 8, 12, 4], /3 channels.*got 4/],
    ['odd frame count', [1, 3, 8, 12, 3], /3 frames is not a positive multiple of the tubelet size 2/],
    ['size not divisible by the patch', [1, 4, 8, 10, 3], /8×10 is not a positive multiple of the patch size 4/],
  ];
  for (const [what, shape, re] of cases) {
    it(`encode: ${what}`, () => {
      const x = tf.zeros(shape);
      expect(() => m.encode(x)).toThrow(re);
      x.dispose();
    });
  }
  it('preprocess: frames or size that do not divide after pre-processing name the pre-processed shape', () => {
    const x = tf.zeros([1, 4, 24, 36, 3]); // 3 frames after dropping frame 0
    expect(() => m.preprocess(x)).toThrow(/after pre-processing to \[1, 3, 8, 12, 3\].*tubelet/);
    const y = tf.zeros([1, 5, 24, 30, 3]); // 8×10 after ÷3
    expect(() => m.preprocess(y)).toThrow(/patch size/);
    tf.dispose([x, y]);
  });
  it('preprocess: values outside [-1, 1] throw by default, warn or pass on request', () => {
    const x = tf.fill([1, 5, 24, 36, 3], 255);
    expect(() => m.preprocess(x)).toThrow(/\[-1, 1\], got \[255, 255\]/);
    const warn = console.warn;
    const seen: string[] = [];
    console.warn = (s: string) => seen.push(s);
    try {
      m.preprocess(x, { onOutOfRange: 'warn' }).dispose();
    } finally {
      console.warn = warn;
    }
    expect(seen.length).toBe(1);
    m.preprocess(x, { onOutOfRange: 'off' }).dispose();
    x.dispose();
  });
  it('preprocess: integer video is refused', () => {
    const x = tf.zeros([1, 5, 24, 36, 3], 'int32');
    expect(() => m.preprocess(x)).toThrow(/float32/);
    x.dispose();
  });
});

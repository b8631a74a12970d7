import { describe, expect, it } from 'vitest';
import * as tf from '@tensorflow/tfjs';
import { Rng, tensorLeakAcross } from '@vrepa/core';
import { Downsampler } from './downsampler.js';
import { Projector } from './projector.js';
import { GRID_MATCH_STRATEGIES, matchGrids, OFFICIAL_GRID_MATCH, targetGrid, teacherOnLossGrid } from './strategies.js';
import { alignmentForward, alignmentLoss } from './align.js';
import { interpolate } from './interpolate.js';
import { dropFirstFrame, normalizeFrames, teacherInputs } from './teacher-input.js';

const studentGrid = { frames: 4, height: 6, width: 9 };
const teacherGrid = { frames: 6, height: 2, width: 3 };
const D = 5;

describe('grid matching strategies (Table 5)', () => {
  it('official: drop frame 0, ×2 in time, learned conv in space → teacher grid; teacher untouched', () => {
    const ds = new Downsampler({ channels: D }, { rng: Rng.fromSeed(1) });
    try {
      tf.tidy(() => {
        const s = tf.randomNormal([2, 4 * 6 * 9, D], 0, 1, 'float32', 1);
        const t = tf.randomNormal([2, 6 * 2 * 3, 7], 0, 1, 'float32', 2);
        const m = matchGrids(s, t, { studentGrid, teacherGrid, downsampler: ds, timeScaleFactor: 2 });
        expect(m.grid).toEqual(teacherGrid);
        expect(m.student.shape).toEqual([2, 36, D]);
        expect(m.interpolated.shape).toEqual([2, 6, 6, 9, D]);
        expect(tf.max(tf.abs(tf.sub(m.teacher, t))).dataSync()[0]).toBe(0);
        // independent: the same steps by hand
        const g = tf.reshape(s, [2, 4, 6, 9, D]).slice([0, 1], [2, 3]);
        const up = interpolate(g, { size: [6, 6, 9], mode: 'trilinear' });
        const conv = ds.apply(tf.reshape(up, [12, 6, 9, D])).reshape([2, 36, D]);
        expect(tf.max(tf.abs(tf.sub(m.student, conv))).dataSync()[0]).toBeLessThan(1e-6);
      });
    } finally {
      ds.dispose();
    }
  });

  it('student space + student time: the student keeps its grid (minus frame 0), the teacher is interpolated onto it', () => {
    tf.tidy(() => {
      const s = tf.randomNormal([1, 4 * 6 * 9, D], 0, 1, 'float32', 3);
      const t = tf.randomNormal([1, 36, D], 0, 1, 'float32', 4);
      const m = matchGrids(s, t, { studentGrid, teacherGrid, strategy: GRID_MATCH_STRATEGIES['student-space-student-time'] });
      expect(m.grid).toEqual({ frames: 3, height: 6, width: 9 });
      const want = tf.reshape(s, [1, 4, 54, D]).slice([0, 1], [1, 3]).reshape([1, 162, D]);
      expect(tf.max(tf.abs(tf.sub(m.student, want))).dataSync()[0]).toBe(0);
      const tw = interpolate(tf.reshape(t, [1, 6, 2, 3, D]), { size: [3, 6, 9], mode: 'trilinear' }).reshape([1, 162, D]);
      expect(tf.max(tf.abs(tf.sub(m.teacher, tw))).dataSync()[0]).toBe(0);
    });
  });

  it('teacher space (conv) + student time, and pure interpolation to the teacher grid', () => {
    const ds = new Downsampler({ channels: D });
    try {
      tf.tidy(() => {
        const s = tf.randomNormal([1, 4 * 6 * 9, D]);
        const t = tf.randomNormal([1, 36, D]);
        const a = matchGrids(s, t, { studentGrid, teacherGrid, downsampler: ds, strategy: GRID_MATCH_STRATEGIES['teacher-space-student-time'] });
        expect(a.grid).toEqual({ frames: 3, height: 2, width: 3 });
        expect(a.teacher.shape).toEqual([1, 18, D]);
        const b = matchGrids(s, t, { studentGrid, teacherGrid, strategy: GRID_MATCH_STRATEGIES['teacher-interpolated'] });
        expect(b.grid).toEqual(teacherGrid);
        expect(b.student.shape).toEqual([1, 36, D]);
      });
    } finally {
      ds.dispose();
    }
  });

  it('targetGrid follows the strategy', () => {
    expect(targetGrid({ studentGrid: { frames: 13, height: 30, width: 45 }, teacherGrid: { frames: 24, height: 10, width: 15 } })).toEqual({ frames: 24, height: 10, width: 15 });
    expect(targetGrid({ studentGrid: { frames: 13, height: 30, width: 45 }, teacherGrid: { frames: 24, height: 10, width: 15 }, strategy: { space: 'student', time: 'teacher' } })).toEqual({ frames: 24, height: 30, width: 45 });
    expect(OFFICIAL_GRID_MATCH).toEqual({ space: 'teacher', time: 'teacher', spaceBy: 'conv' });
  });

  it('bad input: grid/token mismatch, one latent frame, downsampler not reaching the teacher grid, missing downsampler, scale factor mismatch', () => {
    const ds = new Downsampler({ channels: D, kernel: 2, stride: 2 });
    const s = tf.zeros([1, 4 * 6 * 9, D]);
    const t = tf.zeros([1, 36, D]);
    const one = tf.zeros([1, 54, D]);
    try {
      expect(() => matchGrids(s, t, { studentGrid: { frames: 4, height: 6, width: 8 }, teacherGrid, downsampler: ds })).toThrow(/student: grid 4×6×8 \(192 tokens\) does not match the 216 tokens/);
      expect(() => matchGrids(one, t, { studentGrid: { frames: 1, height: 6, width: 9 }, teacherGrid, downsampler: ds })).toThrow(/1 latent frame\(s\); dropping latent frame 0 needs at least 2/);
      expect(() => matchGrids(s, t, { studentGrid, teacherGrid, downsampler: ds })).toThrow(/downsampler maps 6×9 to 3×4, but the teacher grid 6×2×3 is 2×3/);
      expect(() => matchGrids(s, t, { studentGrid, teacherGrid })).toThrow(/needs a downsampler/);
      const ds3 = new Downsampler({ channels: D });
      expect(() => matchGrids(s, t, { studentGrid, teacherGrid, downsampler: ds3, timeScaleFactor: 3 })).toThrow(/timeScaleFactor 3 maps 3 student frames to 9/);
      ds3.dispose();
      expect(() => matchGrids(s, t, { studentGrid, teacherGrid, strategy: { space: 'both' as 'teacher', time: 'teacher' } })).toThrow(/strategy.space/);
    } finally {
      tf.dispose([s, t, one]);
      ds.dispose();
    }
  });
});

describe('alignmentLoss', () => {
  it('is differentiable in the hidden state and every parameter; REPA needs equal dims; no leaks', async () => {
    const projector = new Projector({ inDim: 8, hiddenDim: 12, outDim: D }, { rng: Rng.fromSeed(2) });
    const downsampler = new Downsampler({ channels: D }, { rng: Rng.fromSeed(3) });
    const hidden = tf.variable(tf.randomNormal([2, 4 * 6 * 9, 8], 0, 1, 'float32', 7));
    const teacher = tf.randomNormal([2, 36, D], 0, 1, 'float32', 8);
    const opts = { projector, downsampler, studentGrid, teacherGrid };
    try {
      const vars = [hidden, ...projector.parameters(), ...downsampler.parameters()];
      for (const loss of ['trd', 'trd-paper', 'repa'] as const) {
        const { value, grads } = tf.variableGrads(() => alignmentLoss(hidden, teacher, { ...opts, loss }), vars);
        expect(Number.isFinite(value.dataSync()[0])).toBe(true);
        for (const v of vars) {
          const g = grads[v.name]!;
          expect(g.shape).toEqual(v.shape);
          expect(tf.max(tf.abs(g)).dataSync()[0]).toBeGreaterThan(0);
        }
        tf.dispose([value, ...Object.values(grads)]);
      }
      const f = alignmentForward(hidden, teacher, opts);
      expect(f.grid).toEqual(teacherGrid);
      expect(f.projected.shape).toEqual([2, 216, D]);
      tf.dispose([f.loss, f.projected, f.interpolated, f.studentGridTensor, f.student, f.teacher]);
      const t7 = tf.zeros([2, 36, 7]);
      expect(() => alignmentLoss(hidden, t7, { ...opts, loss: 'repa' })).toThrow(/REPA needs equal feature dims.*5.*7/);
      t7.dispose();
      expect(await tensorLeakAcross(() => alignmentLoss(hidden, teacher, opts))).toBe(0);
      expect(await tensorLeakAcross(() => tf.variableGrads(() => alignmentLoss(hidden, teacher, opts), vars))).toBe(0);
    } finally {
      projector.dispose();
      downsampler.dispose();
      hidden.dispose();
      teacher.dispose();
    }
  });
});

describe('alignmentLoss with the teacher moved to the student grid (VFM → VDM)', () => {
  it('a prepared teacher gives the same loss as in-step interpolation, and TRD gradients flow', () => {
    const projector = new Projector({ inDim: 8, hiddenDim: 12, outDim: D }, { rng: Rng.fromSeed(5) });
    const hidden = tf.variable(tf.randomNormal([1, 4 * 6 * 9, 8], 0, 1, 'float32', 9));
    const teacher = tf.randomNormal([1, 36, D], 0, 1, 'float32', 10);
    const base = { projector, studentGrid, teacherGrid, strategy: GRID_MATCH_STRATEGIES['student-space-student-time']! };
    try {
      const prepared = teacherOnLossGrid(teacher, base);
      expect(prepared.grid).toEqual({ frames: 3, height: 6, width: 9 });
      for (const loss of ['trd', 'repa'] as const) {
        const a = alignmentLoss(hidden, teacher, { ...base, loss });
        const b = alignmentLoss(hidden, prepared.tokens, { ...base, loss, teacherPrepared: true });
        expect(Math.abs(a.dataSync()[0]! - b.dataSync()[0]!)).toBeLessThan(1e-6);
        const { value, grads } = tf.variableGrads(() => alignmentLoss(hidden, prepared.tokens, { ...base, loss, teacherPrepared: true }), [hidden]);
        expect(tf.max(tf.abs(grads[hidden.name]!)).dataSync()[0]).toBeGreaterThan(0);
        tf.dispose([a, b, value, ...Object.values(grads)]);
      }
      prepared.tokens.dispose();
    } finally {
      projector.dispose();
      hidden.dispose();
      teacher.dispose();
    }
  });
});

describe('teacher input strategies (Table 6)', () => {
  const video = () => tf.randomUniform([1, 5, 6, 8, 3], -1, 1, 'float32', 11);
  /** A stand-in "encoder" whose tokens are the pixels themselves: grid = the clip's (frames, h, w). */
  const encode = (clip: tf.Tensor) => {
    const [b, f, h, w, c] = clip.shape as number[];
    return { tokens: tf.reshape(clip, [b!, f! * h! * w!, c!]), grid: { frames: f!, height: h!, width: w! } };
  };

  it('reduced (official): normalised frames 1..F-1 at H/3×W/3', () => {
    tf.tidy(() => {
      const v = tf.randomUniform([2, 4, 9, 12, 3], -1, 1);
      const r = teacherInputs(v, { kind: 'reduced' });
      expect(r.clips.map((c) => c.shape)).toEqual([[2, 3, 3, 4, 3]]);
    });
  });

  it('temporal groups and spatial crops reassemble exactly onto the full clip grid', () => {
    tf.tidy(() => {
      const v = video();
      const full = dropFirstFrame(normalizeFrames(v));
      const fullTokens = tf.reshape(full, [1, 4 * 6 * 8, 3]);
      const tg = teacherInputs(v, { kind: 'temporal-groups', groups: 2 });
      expect(tg.clips.map((c) => c.shape)).toEqual([[1, 2, 6, 8, 3], [1, 2, 6, 8, 3]]);
      const enc = tg.clips.map(encode);
      const a = tg.assemble(enc.map((e) => e.tokens), enc.map((e) => e.grid));
      expect(a.grid).toEqual({ frames: 4, height: 6, width: 8 });
      expect(tf.max(tf.abs(tf.sub(a.tokens, fullTokens))).dataSync()[0]).toBe(0);
      const sc = teacherInputs(v, { kind: 'spatial-crops', rows: 2, cols: 2 });
      expect(sc.clips.map((c) => c.shape)).toEqual(new Array(4).fill([1, 4, 3, 4, 3]));
      const enc2 = sc.clips.map(encode);
      const b = sc.assemble(enc2.map((e) => e.tokens), enc2.map((e) => e.grid));
      expect(b.grid).toEqual({ frames: 4, height: 6, width: 8 });
      expect(tf.max(tf.abs(tf.sub(b.tokens, fullTokens))).dataSync()[0]).toBe(0);
    });
  });

  it('bad input: groups not dividing the frames, crops not dividing the frame, one frame, wrong feature count', () => {
    tf.tidy(() => {
      const v = video();
      expect(() => teacherInputs(v, { kind: 'temporal-groups', groups: 3 })).toThrow(/dividing the 4 frames, got 3/);
      expect(() => teacherInputs(v, { kind: 'spatial-crops', rows: 4, cols: 2 })).toThrow(/4×2 must be positive integers dividing the 6×8 frames/);
      expect(() => teacherInputs(tf.zeros([1, 1, 6, 8, 3]), { kind: 'reduced' })).toThrow(/1 frame\(s\); dropping frame 0 needs at least 2/);
      const tg = teacherInputs(v, { kind: 'temporal-groups', groups: 2 });
      expect(() => tg.assemble([tf.zeros([1, 96, 3])], [{ frames: 2, height: 6, width: 8 }])).toThrow(/expected 2 feature tensors/);
    });
  });

  it('leaks no tensors', async () => {
    const v = video();
    expect(await tensorLeakAcross(() => teacherInputs(v, { kind: 'spatial-crops', rows: 2, cols: 2 }).clips)).toBe(0);
    expect(await tensorLeakAcross(() => teacherInputs(v, { kind: 'reduced' }).clips)).toBe(0);
    v.dispose();
  });
});

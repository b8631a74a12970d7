import fs from 'node:fs';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { describe, expect, it } from 'vitest';
import { rotary1dHost, rotary3d, sincos1d, sincos2d, sincos3d, sinusoidTable, timestepEmbedding } from './embeddings.js';
import { SafetensorsFile } from '../safetensors.js';
import { fixturesDir } from '../fixtures.js';
import { maxAbsDiff } from './testutil.js';

const fx = fixturesDir();

/** Reads the reference tables the official code stored in a fixture (shapes and configs from its manifest). */
function fixtureCase(name: string) {
  const dir = path.join(fx!, name);
  const manifest = JSON.parse(fs.readFileSync(path.join(dir, 'manifest.json'), 'utf8'));
  return manifest.subcases.map((sc: any) => {
    const f = SafetensorsFile.open(path.join(dir, sc.file));
    const read = (k: string) => {
      const h = f.read(k);
      return tf.tensor(Float32Array.from(h.data as ArrayLike<number>), h.shape);
    };
    const out = { sc, read, has: (k: string) => f.has(k), close: () => f.close() };
    return out;
  });
}

describe('hand-derived tables', () => {
  it('timestepEmbedding: t = 1, dim 4, shift 1 → [sin 1, sin 1e-4, cos 1, cos 1e-4]; flip; odd dims pad', () => {
    const e = timestepEmbedding([1, 0], 4).arraySync();
    [Math.sin(1), Math.sin(1e-4), Math.cos(1), Math.cos(1e-4)].forEach((v, i) => expect(e[0]![i]).toBeCloseTo(v, 6));
    expect(e[1]).toEqual([0, 0, 1, 1]);
    expect(timestepEmbedding([1], 4, { flipSinToCos: true }).arraySync()[0]![0]).toBeCloseTo(Math.cos(1), 6);
    // shift 0: freqs exp(−ln(1e4)·i/2) = [1, 0.01]; scale 2 doubles the angle
    const s = timestepEmbedding([3], 5, { downscaleFreqShift: 0, scale: 2 }).arraySync()[0]!;
    [Math.sin(6), Math.sin(0.06), Math.cos(6), Math.cos(0.06), 0].forEach((v, i) => expect(s[i]).toBeCloseTo(v, 5));
  });

  it('sinusoidTable: angle p/10000^(2⌊j/2⌋/d), sin on even, cos on odd columns', () => {
    const t = sinusoidTable(3, 4).arraySync();
    expect(t[0]).toEqual([0, 1, 0, 1]);
    [Math.sin(2), Math.cos(2), Math.sin(0.02), Math.cos(0.02)].forEach((v, i) => expect(t[2]![i]).toBeCloseTo(v, 6));
  });

  it('sincos1d/2d/3d layouts: [sin | cos] halves; 2-D w-half first; 3-D [temporal | spatial]', () => {
    const e1 = sincos1d(4, [2]).arraySync()[0]!;
    [Math.sin(2), Math.sin(0.02), Math.cos(2), Math.cos(0.02)].forEach((v, i) => expect(e1[i]).toBeCloseTo(v, 6));
    // 2-D, grid 2×3, base 16: positions i/(n/16) → rows (r, c); first 4 columns encode c·16/3
    const e2 = sincos2d(8, [2, 3]).arraySync();
    expect(e2.length).toBe(6);
    expect(e2[4]![0]).toBeCloseTo(Math.sin((1 * 16) / 3), 5); // row 1, col 1: w-part
    expect(e2[4]![4]).toBeCloseTo(Math.sin(16 / 2), 5); // h-part
    expect(sincos2d(8, 2, { extraTokens: 1 }).arraySync()[0]).toEqual(new Array(8).fill(0));
    // 3-D: frames 2, h 1, w 2, dim 16 → temporal 4 columns [sin t, sin t/100, cos t, cos t/100], spatial 12 (w 6, h 6)
    const e3 = sincos3d(16, { frames: 2, height: 1, width: 2 }).arraySync();
    [Math.sin(1), Math.sin(0.01), Math.cos(1), Math.cos(0.01)].forEach((v, i) => expect(e3[1]![1]![i]).toBeCloseTo(v, 6));
    expect(e3[1]![1]![4]).toBeCloseTo(Math.sin(1), 6); // spatial w-part of col 1
    expect(e3[1]![1]![10]).toBeCloseTo(0, 6); // spatial h-part of row 0: sin 0
  });

  it('rotary1d: freqs 1/θ^(2i/d), cos/sin repeat-interleaved', () => {
    const { cos, sin } = rotary1dHost(4, [3], 100);
    expect(Array.from(cos).map((v) => +v.toFixed(5))).toEqual([Math.cos(3), Math.cos(3), Math.cos(0.3), Math.cos(0.3)].map((v) => +v.toFixed(5)));
    expect(sin[2]).toBeCloseTo(Math.sin(0.3), 6);
  });
});

it('the fixture comparison runs wherever VREPA_FIXTURES names a fixture set (as test-all and CI set it)', () => {
  if (process.env.VREPA_FIXTURES) expect(fx, `VREPA_FIXTURES=${process.env.VREPA_FIXTURES} was not found`).toBeTruthy();
});

describe.skipIf(!fx)('tables equal the official ones stored in the fixtures', () => {
  it('VideoMAE / VideoMAEv2 get_sinusoid_encoding_table', () => {
    for (const name of ['teacher_videomaev2', 'teacher_videomae']) {
      for (const c of fixtureCase(name)) {
        const want = c.read('pos_embed_table');
        const [, n, d] = want.shape;
        expect(maxAbsDiff(sinusoidTable(n, d).reshape(want.shape), want)).toBeLessThan(1e-6);
        c.close();
      }
    }
  });

  it('CogVideoX 2B 3-D sincos table (text rows zero) and 5B rotary tables (linspace and slice grids)', () => {
    let sincos = 0;
    let rope = 0;
    for (const c of fixtureCase('cogvideox_transformer')) {
      const p = c.sc.params;
      const cfg = p.config;
      const [lh, lw] = p.input_hw ?? [p.sample_h, p.sample_w];
      const grid = { frames: p.latent_frames, height: lh / cfg.patch_size, width: lw / cfg.patch_size };
      if (c.has('sincos_pos_embedding')) {
        const want = c.read('sincos_pos_embedding');
        const table = sincos3d(p.inner_dim, grid, {
          spatialInterpolationScale: cfg.spatial_interpolation_scale,
          temporalInterpolationScale: cfg.temporal_interpolation_scale,
        });
        const got = tf.concat([tf.zeros([p.text_len, p.inner_dim]), table.reshape([-1, p.inner_dim])], 0).reshape(want.shape);
        expect(maxAbsDiff(got, want)).toBeLessThan(1e-6);
        sincos++;
      }
      if (c.has('rotary_cos_trainer')) {
        const base: [number, number] = [p.sample_h / cfg.patch_size, p.sample_w / cfg.patch_size];
        const t = rotary3d(cfg.attention_head_dim, grid, { gridType: 'slice', maxSize: base });
        expect(maxAbsDiff(t.cos, c.read('rotary_cos_trainer'))).toBeLessThan(1e-6);
        expect(maxAbsDiff(t.sin, c.read('rotary_sin_trainer'))).toBeLessThan(1e-6);
        // pipeline (linspace) grid; crop region of diffusers' get_resize_crop_region_for_grid
        const [th, tw] = base;
        const r = grid.height / grid.width;
        const [rh, rw] = r > th / tw ? [th, Math.round((th / grid.height) * grid.width)] : [Math.round((tw / grid.width) * grid.height), tw];
        const top = Math.round((th - rh) / 2);
        const left = Math.round((tw - rw) / 2);
        const l = rotary3d(cfg.attention_head_dim, grid, { cropsCoords: [[top, left], [top + rh, left + rw]] });
        expect(maxAbsDiff(l.cos, c.read('rotary_cos'))).toBeLessThan(1e-5);
        expect(maxAbsDiff(l.sin, c.read('rotary_sin'))).toBeLessThan(1e-5);
        rope++;
      }
      c.close();
    }
    expect(sincos).toBeGreaterThan(0);
    expect(rope).toBeGreaterThan(0);
  });
});

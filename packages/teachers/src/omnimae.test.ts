/**
 * OmniMAE has no fixture of its own. Its math is VideoMAE's with one `qkv.bias` instead of
 * `q_bias`/`v_bias` (k bias 0), so the teacher_videomae fixture, with its weights renamed to OmniMAE's
 * layout (`patch_embed.proj.1.*`, `qkv.bias = [q_bias, 0, v_bias]`, the sinusoid `pos_embed` buffer),
 * must be reproduced; and a checkpoint in OmniMAE's layout (`trunk.…`, `head.…`) must load.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { afterAll, describe, expect, it } from 'vitest';
import { SafetensorsFile, compareTensors, fixturesDir, writeSafetensors } from '@vrepa/core';
import { configFromParams } from './conformance.js';
import { OmniMAE } from './omnimae.js';
import { videoMaeSinusoidTable } from './posembed.js';
import type { TeacherConfig } from './teacher.js';

const dir = fixturesDir()!;
const caseDir = path.join(dir, 'teacher_videomae');
const manifest = JSON.parse(fs.readFileSync(path.join(caseDir, 'manifest.json'), 'utf8'));
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'vrepa-omnimae-'));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

/** The VideoMAE fixture weights in OmniMAE's names (host tensors). */
function omniWeights(sub: any, cfg: TeacherConfig): Map<string, tf.Tensor> {
  const w = SafetensorsFile.open(path.join(caseDir, sub.weights_file));
  const out = new Map<string, tf.Tensor>();
  try {
    for (const k of w.keys()) {
      if (k.startsWith('fc_norm.') || k.startsWith('head.')) continue;
      if (k.endsWith('attn.q_bias')) {
        const pre = k.slice(0, -'q_bias'.length);
        const q = w.tensor(k);
        const v = w.tensor(`${pre}v_bias`);
        out.set(`${pre}qkv.bias`, tf.concat([q, tf.zerosLike(q), v]));
        tf.dispose([q, v]);
      } else if (k.endsWith('attn.v_bias')) continue;
      else out.set(k.replace(/^patch_embed\.proj\./, 'patch_embed.proj.1.'), w.tensor(k));
    }
  } finally {
    w.close();
  }
  const s = Math.floor(cfg.imgSize / cfg.patchSize);
  out.set('pos_embed', tf.tidy(() => tf.expandDims(videoMaeSinusoidTable({ frames: cfg.numFrames / cfg.tubeletSize, height: s, width: s }, cfg.embedDim), 0)));
  return out;
}

describe('OmniMAE', () => {
  for (const sub of manifest.subcases) {
    const base = configFromParams('videomae', sub.params, new Set());
    const cfg: TeacherConfig = { ...base, family: 'omnimae', name: 'omnimae-fixture', qkvBias: 'qkv', patchEmbedSeqIndex: 1, fcNorm: false, numClasses: undefined, finalNorm: false };

    it(`official parameter names (${sub.name})`, () => {
      const m = new OmniMAE(cfg, { init: 'zeros' });
      const names = [...m.stateDictShapes().keys()];
      expect(names).toContain('patch_embed.proj.1.weight');
      expect(names).toContain('pos_embed');
      expect(names).toContain('blocks.0.attn.qkv.bias');
      expect(names.some((n) => n.includes('q_bias'))).toBe(false);
      m.dispose();
    });

    it(`reproduces the VideoMAE fixture with the weights in OmniMAE's layout (${sub.name})`, () => {
      const weights = omniWeights(sub, cfg);
      const m = new OmniMAE(cfg, { init: 'zeros' });
      m.loadStateDict(weights);
      const data = SafetensorsFile.open(path.join(caseDir, sub.file));
      const clip = tf.tidy(() => tf.transpose(data.tensor('input'), [0, 2, 3, 4, 1]));
      const { tokens } = m.encode(clip);
      const want = data.tensor('features');
      const r = compareTensors('features', tokens, want, sub.tolerances.features);
      tf.dispose([clip, tokens, want, ...weights.values()]);
      data.close();
      m.dispose();
      expect(r.pass, `worst ratio ${r.ratio}`).toBe(true);
    });

    it(`loads a checkpoint in the OmniMAE(trunk, head) layout, ignoring head/decoder/mask_token (${sub.name})`, () => {
      const weights = omniWeights(sub, cfg);
      const file = path.join(tmp, `${sub.name}.safetensors`);
      const entries = new Map<string, tf.Tensor>();
      for (const [k, v] of weights) entries.set(`trunk.${k}`, v);
      const extra = { 'trunk.mask_token': tf.zeros([1, cfg.embedDim]), 'trunk.decoder.norm.weight': tf.ones([4]), 'head.weight': tf.zeros([6, 4]), 'head.bias': tf.zeros([6]) };
      for (const [k, v] of Object.entries(extra)) entries.set(k, v);
      writeSafetensors(file, entries);
      tf.dispose([...entries.values()]);
      const m = OmniMAE.fromCheckpoint(file, { config: cfg });
      expect(m.loadReport!.ignored.sort()).toEqual(['decoder.norm.weight', 'head.bias', 'head.weight', 'mask_token']);
      m.dispose();
      // without a config: the tiny fixture fits no registered config, and the error says what it found
      expect(() => OmniMAE.fromCheckpoint(file)).toThrow(/no registered omnimae config has dim/);
    });
  }
});

import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { afterAll, describe, expect, it } from 'vitest';
import { PthFile, Rng, SafetensorsFile, collectTensors, fixturesDir, writePth } from '@vrepa/core';
import {
  PRETRAIN_CONFIGS,
  VideoMAEPretrain,
  VideoMAEv2,
  inferPretrainConfig,
  loadPretrainCheckpoint,
  pretrainConfigFromParams,
  readPretrainCheckpointConfig,
  savePretrainCheckpoint,
  type VideoMAEPretrainConfig,
} from './index.js';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'vrepa-mae-ck-'));
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

/** non-square, layer scale, no qkv bias: the parts most likely to be lost on the way */
const CFG: VideoMAEPretrainConfig = {
  ...PRETRAIN_CONFIGS['videomae-pretrain-tiny']!,
  name: 'ck-test',
  imgSize: [8, 12],
  numFrames: 4,
  patchSize: 4,
  encoderEmbedDim: 16,
  encoderDepth: 2,
  encoderNumHeads: 2,
  decoderEmbedDim: 8,
  decoderDepth: 1,
  decoderNumHeads: 1,
  initValues: 0.1,
  qkvBias: true,
};

const maxDiff = (a: tf.Tensor, b: tf.Tensor) => tf.tidy(() => tf.max(tf.abs(tf.sub(a, b))).dataSync()[0]!);

function sameParams(a: VideoMAEPretrain, b: VideoMAEPretrain) {
  const pa = a.params;
  const pb = b.params;
  expect([...pb.keys()]).toEqual([...pa.keys()]);
  for (const [n, v] of pa) expect(maxDiff(v, pb.get(n)!), n).toBe(0);
}

describe('pre-training checkpoints', () => {
  for (const ext of ['pth', 'safetensors'] as const) {
    it(`.${ext}: the official layout, the config stored, and a bit-exact strict reload`, () => {
      const m = new VideoMAEPretrain(CFG, { seed: 7 });
      const file = path.join(dir, `ck.${ext}`);
      savePretrainCheckpoint(m, file, ext === 'pth' ? { extra: { epoch: 2 } } : {});
      if (ext === 'pth') {
        const pth = PthFile.open(file);
        const root = pth.root as any;
        expect([...root.map.keys()]).toEqual(['model', 'vrepa_pretrain_config', 'epoch']);
        expect([...root.map.get('model').map.keys()]).toEqual([...m.stateDictShapes().keys()]);
        expect(collectTensors(pth.root).get('model.encoder.patch_embed.proj.weight')!.shape).toEqual([16, 3, 2, 4, 4]);
        pth.close();
      } else {
        const f = SafetensorsFile.open(file);
        expect(f.keys().sort()).toEqual([...m.stateDictShapes().keys()].sort());
        f.close();
      }
      expect(readPretrainCheckpointConfig(file)).toEqual(CFG);
      const back = loadPretrainCheckpoint(file);
      expect(back.config).toEqual(CFG);
      sameParams(m, back);
      m.dispose();
      back.dispose();
    });
  }

  it("VideoMAEv2.fromCheckpoint reads the encoder of our checkpoint: its features = the pre-training encoder's last block (no norm) on all tokens", () => {
    const m = new VideoMAEPretrain(CFG, { seed: 8 });
    const file = path.join(dir, 'teacher.pth');
    savePretrainCheckpoint(m, file);
    const teacher = VideoMAEv2.fromCheckpoint(file);
    expect(teacher.baseGrid).toEqual({ frames: 2, height: 2, width: 3 });
    expect(teacher.loadReport!.ignored.sort()).toEqual(expect.arrayContaining(['mask_token', 'encoder_to_decoder.weight', 'norm.weight', 'norm.bias', 'decoder.head.weight']));
    const clip = Rng.fromSeed(1).randomTensor([1, 4, 8, 12, 3], 'normal');
    const want = m.encode(clip, null, { norm: false });
    const got = teacher.encode(clip);
    expect(maxDiff(got.tokens, want)).toBeLessThan(1e-5);
    tf.dispose([clip, want, got.tokens]);
    teacher.dispose();
    m.dispose();
  });

  it('an official checkpoint (torch.save of utils.save_model: model, optimizer, epoch, scaler, argparse args) resumes here', () => {
    const file = path.join(import.meta.dirname, '__testdata__', 'official_pretrain_tiny.pth');
    const fixture = path.join(path.dirname(fixturesDir()!), 'fixtures-pretrain', 'videomae_pretrain', 'tube05_raw_layerscale_16x24.weights.safetensors');
    expect(readPretrainCheckpointConfig(file)).toBeNull();
    // widths 16 / 8 match no registered preset: the head counts are asked for
    expect(() => loadPretrainCheckpoint(file)).toThrow(/no registered preset has encoder width 16.*pass encoderNumHeads \/ decoderNumHeads/);
    const m = loadPretrainCheckpoint(file, { overrides: { imgSize: [16, 24], numFrames: 6, encoderNumHeads: 2, decoderNumHeads: 1 } });
    expect(m.config).toMatchObject({ encoderEmbedDim: 16, encoderDepth: 2, decoderEmbedDim: 8, decoderDepth: 1, patchSize: 8, tubeletSize: 2, qkvBias: false, mlpRatio: 4 });
    expect(m.config.initValues).toBeGreaterThan(0);
    const ref = SafetensorsFile.open(fixture);
    const sd = m.stateDict();
    for (const k of ref.keys()) {
      const want = tf.tensor(ref.read(k).data as Float32Array, ref.read(k).shape);
      expect(maxDiff(sd.get(k)!, want), k).toBe(0);
      want.dispose();
    }
    expect(sd.size).toBe(ref.keys().length);
    ref.close();
    tf.dispose([...sd.values()]);
    m.dispose();
  });

  it('strict: a checkpoint with a missing and an unexpected key is one error naming both; nothing is half-loaded', () => {
    const m = new VideoMAEPretrain(CFG, { seed: 9 });
    const sd = m.stateDict();
    const w = sd.get('decoder.head.weight')!;
    sd.delete('decoder.head.weight');
    sd.set('decoder.extra.weight', w);
    const file = path.join(dir, 'bad.pth');
    writePth(file, { model: sd });
    expect(() => loadPretrainCheckpoint(file, { config: CFG })).toThrow(/1 missing key\(s\): decoder\.head\.weight\. 1 unexpected key\(s\): decoder\.extra\.weight/);
    tf.dispose([...sd.values()]);
    m.dispose();
  });

  it('inferPretrainConfig: the state-dict shapes of a registered preset give that preset back', () => {
    const ref = new VideoMAEPretrain('videomae-pretrain-tiny', { init: 'zeros' });
    const shapes = ref.stateDictShapes();
    const c = inferPretrainConfig([...shapes.keys()], (n) => shapes.get(n)!);
    ref.dispose();
    expect(c).toEqual({ ...PRETRAIN_CONFIGS['videomae-pretrain-tiny'], imgSize: 224, maxScoreElements: undefined });
  });

  it('no file, or not a pre-training checkpoint: clear errors', () => {
    expect(() => loadPretrainCheckpoint(path.join(dir, 'nope.pth'))).toThrow(/no such checkpoint/);
    const f = path.join(dir, 'other.safetensors');
    const t = tf.zeros([2]);
    writePth(path.join(dir, 'other.pth'), { model: new Map([['blocks.0.x', t]]) });
    expect(() => loadPretrainCheckpoint(path.join(dir, 'other.pth'))).toThrow(/no encoder\.patch_embed\.proj\.weight/);
    t.dispose();
    expect(fs.existsSync(f)).toBe(false);
  });
});

describe('pretrainConfigFromParams', () => {
  it('nested encoder/decoder params and the official flat argument names give the same config', () => {
    const common = { img_size: [16, 24], frames: 6, patch_size: 8, tubelet_size: 2, mlp_ratio: 4, qkv_bias: false, init_values: 0.1, norm_eps: 1e-6 };
    const nested = pretrainConfigFromParams({ ...common, encoder: { embed_dim: 16, depth: 2, num_heads: 2 }, decoder: { embed_dim: 8, depth: 1, num_heads: 1 } });
    const flat = pretrainConfigFromParams({ ...common, encoder_embed_dim: 16, encoder_depth: 2, encoder_num_heads: 2, decoder_embed_dim: 8, decoder_depth: 1, decoder_num_heads: 1 });
    expect(flat).toEqual(nested);
    expect(nested).toMatchObject({ imgSize: [16, 24], numFrames: 6, encoderEmbedDim: 16, decoderNumHeads: 1, qkvBias: false, initValues: 0.1 });
    expect(() => pretrainConfigFromParams({ ...common, encoder: { embed_dim: 16, depth: 2 } })).toThrow(/params lack encoder\.num_heads/);
    expect(() => pretrainConfigFromParams({ ...common, use_learnable_pos_emb: true })).toThrow(/use_learnable_pos_emb/);
  });
});

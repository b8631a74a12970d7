/**
 * Loading every teacher checkpoint layout in the shared fixtures (`checkpoints/index.json`) reproduces
 * the fixture features; heads/decoders are reported as ignored; bad files and wrong configs fail clearly.
 */
import fs from 'node:fs';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { describe, expect, it } from 'vitest';
import { SafetensorsFile, compareTensors, fixturesDir, tensorLeakAcross } from '@vrepa/core';
import { configFromParams } from './conformance.js';
import { VideoMAE } from './videomae.js';
import { VideoMAEv2 } from './videomaev2.js';
import { VJEPA } from './vjepa.js';
import { OmniMAE } from './omnimae.js';
import type { TeacherFamily, VideoTeacher, FromCheckpointOptions } from './teacher.js';

const dir = fixturesDir()!;
const ckDir = path.join(dir, 'checkpoints');
const index = JSON.parse(fs.readFileSync(path.join(ckDir, 'index.json'), 'utf8')) as { files: Array<Record<string, any>> };

const FAMILY: Record<string, TeacherFamily> = { teacher_videomaev2: 'videomaev2', teacher_videomae: 'videomae', teacher_vjepa: 'vjepa' };
const LOADERS: Record<TeacherFamily, (p: string, o: FromCheckpointOptions) => VideoTeacher> = {
  videomaev2: (p, o) => VideoMAEv2.fromCheckpoint(p, o),
  videomae: (p, o) => VideoMAE.fromCheckpoint(p, o),
  vjepa: (p, o) => VJEPA.fromCheckpoint(p, o),
  omnimae: (p, o) => OmniMAE.fromCheckpoint(p, o),
};

/** The fixture a checkpoint entry expects: case, family, sub-case manifest entry, weights. */
function expected(entry: Record<string, any>) {
  const [caseName, weightsFile] = String(entry.expected).split(' ')[0]!.split('/') as [string, string];
  const manifest = JSON.parse(fs.readFileSync(path.join(dir, caseName, 'manifest.json'), 'utf8'));
  const sub = manifest.subcases.find((s: any) => s.weights_file === weightsFile);
  const weights = SafetensorsFile.open(path.join(dir, caseName, weightsFile));
  const names = new Set(weights.keys());
  weights.close();
  return { caseName, family: FAMILY[caseName], sub, config: configFromParams(FAMILY[caseName]!, sub.params, names), names };
}

const teacherEntries = index.files.filter((e) => typeof e.expected === 'string' && e.expected.startsWith('teacher_') && e.file.endsWith('.pth'));

describe('official checkpoint layouts', () => {
  it('covers every teacher .pth in the index', () => {
    expect(teacherEntries.length).toBeGreaterThanOrEqual(4);
  });

  for (const entry of teacherEntries) {
    it(`${entry.file} (${entry.state_dict_at}, strip '${entry.strip_prefix}') reproduces ${entry.expected.split(' ')[0]} features`, () => {
      const ex = expected(entry);
      expect(ex.family, `family of ${ex.caseName}`).toBeTruthy();
      const model = LOADERS[ex.family!](path.join(ckDir, entry.file), { config: { ...ex.config, fcNorm: undefined, finalNorm: undefined, numClasses: undefined } });
      const data = SafetensorsFile.open(path.join(dir, ex.caseName, ex.sub.file));
      try {
        expect(model.loadReport!.ignored.sort()).toEqual([...(entry.extra_keys ?? [])].sort());
        expect(model.loadReport!.loaded.length).toBe(model.stateDictShapes().size);
        const clip = tf.tidy(() => tf.transpose(data.tensor('input'), [0, 2, 3, 4, 1]));
        const { tokens } = model.encode(clip);
        const want = data.tensor('features');
        const r = compareTensors('features', tokens, want, ex.sub.tolerances.features);
        tf.dispose([clip, tokens, want]);
        expect(r.pass, `features worst ratio ${r.ratio}`).toBe(true);
      } finally {
        data.close();
        model.dispose();
      }
    });
  }

  for (const entry of index.files.filter((e) => /videomaev2\.(bf16|f16)\.safetensors$/.test(e.file))) {
    it(`${entry.file}: ${entry.dtype} weights are widened to float32 (each within its rounding of the fixture weights)`, () => {
      const ex = expected({ expected: 'teacher_videomaev2/videomaev2.weights.safetensors' });
      const model = VideoMAEv2.fromCheckpoint(path.join(ckDir, entry.file), { config: ex.config });
      const ref = SafetensorsFile.open(path.join(dir, 'teacher_videomaev2', 'videomaev2.weights.safetensors'));
      const relUlp = entry.dtype === 'BF16' ? 2 ** -8 : 2 ** -11;
      try {
        const sd = model.stateDict();
        let worst = 0;
        let changed = 0;
        for (const [k, t] of sd) {
          const got = t.dataSync();
          const want = ref.read(k).data as Float32Array;
          for (let i = 0; i < want.length; i++) {
            const err = Math.abs(got[i]! - want[i]!);
            if (err > 0) changed++;
            // f16 subnormals: allow an absolute floor of 2^-24
            worst = Math.max(worst, err / Math.max(Math.abs(want[i]!) * relUlp, 2 ** -24));
          }
        }
        tf.dispose([...sd.values()]);
        expect(worst).toBeLessThanOrEqual(1);
        expect(changed).toBeGreaterThan(0); // it really is the rounded file
      } finally {
        ref.close();
        model.dispose();
      }
    });
  }

  for (const entry of index.files.filter((e) => e.expect_error)) {
    it(`${entry.file} is refused (${entry.expect_error})`, () => {
      expect(() => VideoMAEv2.fromCheckpoint(path.join(ckDir, entry.file), { config: 'videomaev2-s' })).toThrow(/legacy|global|posix|refuse/i);
    });
  }

  it('a checkpoint of another config fails listing the mismatched shapes', () => {
    const v2 = expected({ expected: 'teacher_videomaev2/videomaev2.weights.safetensors' });
    const v1file = teacherEntries.find((e) => e.expected.startsWith('teacher_videomae/'))!.file;
    let msg = '';
    try {
      VideoMAEv2.fromCheckpoint(path.join(ckDir, v1file), { config: v2.config }).dispose();
    } catch (e) {
      msg = (e as Error).message;
    }
    expect(msg).toMatch(/mis-shaped key\(s\)/);
    expect(msg).toMatch(/patch_embed\.proj\.weight: checkpoint \[\d+(, \d+){4}\] vs model \[\d+(, \d+){4}\]/);
    expect(msg).toContain(v1file);
  });

  it('loading and disposing (and a failed load) leave no tensors behind', async () => {
    const ex = expected({ expected: 'teacher_videomaev2/videomaev2.weights.safetensors' });
    const file = path.join(ckDir, teacherEntries.find((e) => e.expected.startsWith('teacher_videomaev2/'))!.file);
    expect(await tensorLeakAcross(() => VideoMAEv2.fromCheckpoint(file, { config: ex.config }).dispose())).toBe(0);
    const wrong = { ...ex.config, embedDim: ex.config.embedDim * 2 };
    expect(
      await tensorLeakAcross(() => {
        expect(() => VideoMAEv2.fromCheckpoint(file, { config: wrong })).toThrow(/mis-shaped/);
      }),
    ).toBe(0);
  });

  it('without a config, a checkpoint that fits no registered config says what it found', () => {
    const file = teacherEntries.find((e) => e.expected.startsWith('teacher_videomaev2/'))!.file;
    expect(() => VideoMAEv2.fromCheckpoint(path.join(ckDir, file))).toThrow(/no registered videomaev2 config has dim \d+, depth \d+.*pass config/);
  });

  it('a missing key is named', () => {
    const ex = expected({ expected: 'teacher_vjepa/vjepa.weights.safetensors' });
    const deeper = { ...ex.config, depth: ex.config.depth + 1 };
    const file = teacherEntries.find((e) => e.expected.startsWith('teacher_vjepa/'))!.file;
    expect(() => VJEPA.fromCheckpoint(path.join(ckDir, file), { config: deeper })).toThrow(new RegExp(`missing key\\(s\\): blocks\\.${ex.config.depth}\\.`));
  });

  it('an explicit key that holds no state dict fails naming it', () => {
    const file = teacherEntries.find((e) => e.expected.startsWith('teacher_videomaev2/'))!.file;
    expect(() => VideoMAEv2.fromCheckpoint(path.join(ckDir, file), { config: 'videomaev2-s', key: 'no_such_key' })).toThrow(/no_such_key/);
  });
});

/**
 * `vrepa repro`: the whole study as cached stages — data → latents → teacher → pretrained student → arms ×
 * seeds → measures on the test split → report. Each stage's folder name carries the hash of its config (and
 * of the stages it reads), so a re-run resumes and a changed arm reruns alone.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { SafetensorsFile, encodePng, writeSafetensors } from '@vrepa/core';
import { compiledForward, fromPretrained, type CogVideoXTransformer3DModel, type CompiledForward } from '@vrepa/cogvideox';
import { contactSheet } from '@vrepa/eval';
import { SPLITS, clipPixels, readSplit, writeData, type Split, type SplitData } from './data.js';
import { encodeLatents, latentFrames, pixelsToTensor, type LatentSpace } from './latent.js';
import { embedCaptions } from './text.js';
import { MemoryDataset, readTrainLog, teacherTokens, trainStudent, transformerConfig } from './models.js';
import { pretrainTeacher, randomTeacher } from './teacher-pretrain.js';
import { featureRows, heldOutDiffusionLoss, heldOutTrd, latentsToClips, pixelFeatures, probeAccuracy, sampleLatents, scoreClip, sliceFeatures, studentAlignTokens, type ClipScore, type ProbeSummary } from './measures.js';
import type { ArmSpec, ReproConfig } from './presets.js';
import { StageRunner, readJson, writeFileAtomic, type StageRecord } from './stages.js';

export interface StudyOptions {
  out: string;
  log?: (m: string) => void;
  progress?: boolean;
  /** also run the validation sweep (config.sweep) */
  sweep?: boolean;
  /** run only the stages the sweep needs and the sweep itself (no arms, measures or report) */
  sweepOnly?: boolean;
}

export interface SweepResult {
  name: string;
  variant: import('./presets.js').SweepVariant;
  probe: ProbeSummary;
  diffusionLoss: number;
  trdRaw: number;
}

export interface TeacherSweepResult {
  name: string;
  pretrain: import('./presets.js').TeacherPretrainSpec;
  /** the study's own teacher (the preset's recipe) */
  chosen: boolean;
  probe: ProbeSummary;
  lossEnd: number | null;
}

export interface ModelEval {
  id: string;
  arm: string;
  seed: number | null;
  split: Split;
  probe: ProbeSummary;
  diffusionLoss: number;
  /** per clip */
  diffusionLossPerClip: number[];
  trdProjected: number | null;
  trdRaw: number;
  continuations: ClipScore[];
  captionOnly: ClipScore[];
  sheet: string;
  captionSheet: string;
}

export interface StudyResult {
  config: ReproConfig;
  stages: StageRecord[];
  evals: ModelEval[];
  baselines: { teacher: ProbeSummary; randomTeacher: ProbeSummary; pixels: ProbeSummary; teacherFullClip: ProbeSummary; pixelsFullClip: ProbeSummary; groundTruth: ClipScore[] };
  /** the validation sweep (with --sweep) */
  sweep: SweepResult[];
  /** the sweep's choice confirmed on the test split (with --sweep and a preset followUp): each seed's variant and reference evaluations */
  followUp: { variant: import('./presets.js').SweepVariant; reference: import('./presets.js').SweepVariant; runs: { seed: number; variant: ModelEval; reference: ModelEval }[] } | null;
  /** the teacher part of the validation sweep (with --sweep): recipes probed on val, and raw pixels on the same folds */
  teacherSweep: { pixels: ProbeSummary; teachers: TeacherSweepResult[] } | null;
  curves: { id: string; log: { step: number; loss: number | null; loss_diff: number | null; loss_align: number | null }[] }[];
  teacherCurve: { step: number; loss: number }[];
  latentSpace: LatentSpace;
  env: Record<string, string>;
  seconds: number;
}

interface SplitTensors {
  latents: tf.Tensor5D;
  text: tf.Tensor3D;
}

function loadLatents(dir: string, split: Split): SplitTensors {
  const f = SafetensorsFile.open(path.join(dir, `${split}.safetensors`));
  try {
    return { latents: f.tensor('latents') as tf.Tensor5D, text: f.tensor('text') as tf.Tensor3D };
  } finally {
    f.close();
  }
}

function readTensor(file: string, name: string): tf.Tensor {
  const f = SafetensorsFile.open(file);
  try {
    return f.tensor(name);
  } finally {
    f.close();
  }
}

/** Clip indices spread over a split: `count` of them, cycling through subsets. */
export function spreadIndices(d: Pick<SplitData, 'subsets' | 'n'>, count: number): number[] {
  const bySubset = new Map<string, number[]>();
  d.subsets.forEach((s, i) => bySubset.set(s, [...(bySubset.get(s) ?? []), i]));
  const lists = [...bySubset.values()];
  const out: number[] = [];
  for (let k = 0; out.length < Math.min(count, d.n); k++) for (const l of lists) if (k < l.length && out.length < count) out.push(l[k]!);
  return out;
}

const sliceRows = (t: tf.Tensor, start: number, count: number) => tf.slice(t, [start], [count]);

/** Rows `idx` of a tensor along axis 0. */
const gatherRows = (t: tf.Tensor, idx: number[]) => tf.gather(t, tf.tensor1d(idx, 'int32'));

export async function runStudy(config: ReproConfig, opts: StudyOptions): Promise<StudyResult> {
  const t0 = performance.now();
  const log = opts.log ?? ((m: string) => process.stderr.write(`${m}\n`));
  const runner = new StageRunner({ out: opts.out, log });
  const c = config;

  // 1. data
  const dataStage = await runner.run('data', c.data, (dir) => writeData(c.data, dir, log));

  // 2. latents + caption embeddings
  const latentCfg = { data: dataStage.hash, latent: c.latent, text: c.text };
  const latentStage = await runner.run('latents', latentCfg, (dir) => {
    const train = readSplit(dataStage.dir, 'train');
    // latent = (space-to-depth(x) − mean)·(1/std), both from the train split's pixels
    let s = 0;
    let s2 = 0;
    for (let i = 0; i < train.pixels.length; i++) {
      const v = train.pixels[i]! / 127.5 - 1;
      s += v;
      s2 += v * v;
    }
    const m = s / train.pixels.length;
    const space: LatentSpace = { ...c.latent, shift: m, scale: 1 / Math.sqrt(Math.max(1e-8, s2 / train.pixels.length - m * m)) };
    for (const split of SPLITS) {
      const d = split === 'train' ? train : readSplit(dataStage.dir, split);
      const latents = tf.tidy(() => {
        const parts: tf.Tensor[] = [];
        for (let i = 0; i < d.n; i += 16) {
          const k = Math.min(16, d.n - i);
          parts.push(encodeLatents(pixelsToTensor(d.pixels.subarray(i * d.frames * d.height * d.width * 3, (i + k) * d.frames * d.height * d.width * 3), k, d.frames, d.height, d.width), space));
        }
        return tf.concat(parts, 0);
      });
      const text = tf.tensor3d(embedCaptions(d.captions, c.text.length, c.text.dim, c.text.seed), [d.n, c.text.length, c.text.dim]);
      writeSafetensors(path.join(dir, `${split}.safetensors`), { latents, text }, { metadata: { format: 'vrepa-repro-latents/1' } });
      tf.dispose([latents, text]);
    }
    writeFileAtomic(path.join(dir, 'space.json'), JSON.stringify(space) + '\n');
  });
  const space = readJson<LatentSpace>(path.join(latentStage.dir, 'space.json'));

  // 3. teacher: pretrained on the train split's clips, then its tokens for every split (full clips and context)
  const teacherCfg = { data: dataStage.hash, teacher: c.teacher };
  const teacherStage = await runner.run('teacher', teacherCfg, async (dir) => {
    const train = readSplit(dataStage.dir, 'train');
    const d = c.data;
    const teacher = await pretrainTeacher(c.teacher, c.teacher.pretrain, train, dir, log);
    const random = randomTeacher(c.teacher, c.teacher.pretrain, d.frames, d.height, d.width);
    try {
      for (const split of SPLITS) {
        const d = split === 'train' ? train : readSplit(dataStage.dir, split);
        const out: Record<string, tf.Tensor> = {};
        for (const [name, model] of [
          ['', teacher],
          ['random_', random],
        ] as const) {
          if (name === 'random_' && split !== 'test') continue;
          let grid = { frames: 0, height: 0, width: 0 };
          let ctxGrid = grid;
          const full: tf.Tensor[] = [];
          const ctx: tf.Tensor[] = [];
          for (let i = 0; i < d.n; i += 16) {
            const k = Math.min(16, d.n - i);
            tf.tidy(() => {
              const clips = pixelsToTensor(d.pixels.subarray(i * d.frames * d.height * d.width * 3, (i + k) * d.frames * d.height * d.width * 3), k, d.frames, d.height, d.width);
              const r = teacherTokens(model, clips);
              grid = r.grid;
              full.push(tf.keep(r.tokens));
              const rc = teacherTokens(model, tf.slice(clips, [0, 0, 0, 0, 0], [k, d.context, d.height, d.width, 3]));
              ctxGrid = rc.grid;
              ctx.push(tf.keep(rc.tokens));
            });
          }
          out[`${name}tokens`] = tf.concat(full, 0);
          out[`${name}context_tokens`] = tf.concat(ctx, 0);
          tf.dispose([...full, ...ctx]);
          writeFileAtomic(path.join(dir, `${name}grid.json`), JSON.stringify({ full: grid, context: ctxGrid }) + '\n');
        }
        writeSafetensors(path.join(dir, `${split}.safetensors`), out, { metadata: { format: 'vrepa-repro-teacher-tokens/1' } });
        tf.dispose(Object.values(out));
      }
    } finally {
      teacher.dispose();
      random.dispose();
    }
  });
  const teacherGrids = readJson<{ full: { frames: number; height: number; width: number }; context: { frames: number; height: number; width: number } }>(path.join(teacherStage.dir, 'grid.json'));

  // 4. the pretrained video diffusion model (diffusion only, from a seeded init)
  const trainLat = loadLatents(latentStage.dir, 'train');
  const latentShape = trainLat.latents.shape.slice(1);
  const pretrainCfg = { latents: latentStage.hash, student: c.student, pretrain: c.pretrain, teacherDim: c.teacher.embedDim };
  const pretrainStage = await runner.run('pretrain', pretrainCfg, async (dir) => {
    const data = new MemoryDataset(trainLat.latents, trainLat.text);
    await trainStudent({
      out: dir,
      from: transformerConfig(c.student, latentShape),
      student: c.student,
      teacherDim: c.teacher.embedDim,
      train: { ...c.pretrain, lambda: 0, loss: 'trd', margin: 0.1, gridMatch: c.finetune.gridMatch },
      data,
      log,
      progress: opts.progress,
    });
  });
  const pretrainedDir = path.join(pretrainStage.dir, 'final', 'transformer');
  const ctxLatentFrames = latentFrames(c.data.context, c.latent.temporal);

  // the teacher part of the validation sweep: each recipe pretrained on the train split, its context tokens probed on val next to raw pixels (same folds)
  const runTeacherSweep = async (): Promise<StudyResult['teacherSweep']> => {
    const val = readSplit(dataStage.dir, 'val');
    const vLabels = Uint8Array.from(val.labels);
    const vNames = [...new Set(val.subsets)];
    const vGroups = Int32Array.from(val.subsets, (s) => vNames.indexOf(s));
    const folds = c.eval.probeFolds;
    const ctxClips = (s: number, k: number) =>
      tf.slice(pixelsToTensor(val.pixels.subarray(s * val.frames * val.height * val.width * 3, (s + k) * val.frames * val.height * val.width * 3), k, val.frames, val.height, val.width), [0, 0, 0, 0, 0], [k, val.context, val.height, val.width, 3]);
    const px = await runner.run('sweep-teacher-pixels', { data: dataStage.hash, folds, version: 1 }, async (dir) => {
      const x = featureRows(val.n, 16, (s, k) => tf.tidy(() => pixelFeatures(ctxClips(s, k))));
      writeFileAtomic(path.join(dir, 'probe.json'), JSON.stringify(await probeAccuracy(x, vLabels, vGroups, folds, 0)) + '\n');
    });
    const teachers: TeacherSweepResult[] = [];
    const variants = [{ name: 'study teacher', pretrain: c.teacher.pretrain }, ...c.sweep.teachers.filter((v) => JSON.stringify(v.pretrain) !== JSON.stringify(c.teacher.pretrain))];
    for (const v of variants) {
      const chosen = v.pretrain === c.teacher.pretrain;
      const spec = { ...c.teacher, pretrain: v.pretrain };
      const st = await runner.run(`sweep-teacher-${chosen ? 'study' : v.name}`, { data: dataStage.hash, teacher: spec, folds, ...(chosen ? { stage: teacherStage.hash, version: 2 } : { version: 1 }) }, async (dir) => {
        let tokens: tf.Tensor3D;
        let grid = teacherGrids.context;
        let lossEnd: number | null = null;
        if (chosen) {
          tokens = readTensor(path.join(teacherStage.dir, 'val.safetensors'), 'context_tokens') as tf.Tensor3D;
          const tl = readTrainLog(path.join(teacherStage.dir, 'pretrain-log.jsonl'));
          lossEnd = tl.length ? (tl[tl.length - 1]!.loss ?? null) : null;
        } else {
          const teacher = await pretrainTeacher(spec, v.pretrain, readSplit(dataStage.dir, 'train'), dir, log);
          try {
            const parts: tf.Tensor[] = [];
            for (let i = 0; i < val.n; i += 16) {
              const k = Math.min(16, val.n - i);
              tf.tidy(() => {
                const r = teacherTokens(teacher, ctxClips(i, k));
                grid = r.grid;
                parts.push(tf.keep(r.tokens));
              });
            }
            tokens = tf.concat(parts, 0) as tf.Tensor3D;
            tf.dispose(parts);
          } finally {
            teacher.dispose();
          }
          const tl = readTrainLog(path.join(dir, 'pretrain-log.jsonl'));
          lossEnd = tl.length ? (tl[tl.length - 1]!.loss ?? null) : null;
        }
        const x = featureRows(val.n, 32, (s, k) => tf.tidy(() => sliceFeatures(sliceRows(tokens, s, k) as tf.Tensor3D, grid)));
        tokens.dispose();
        const probe = await probeAccuracy(x, vLabels, vGroups, folds, 0);
        writeFileAtomic(path.join(dir, 'probe.json'), JSON.stringify({ name: v.name, pretrain: v.pretrain, chosen, probe, lossEnd }) + '\n');
      });
      teachers.push(readJson<TeacherSweepResult>(path.join(st.dir, 'probe.json')));
    }
    return { pixels: readJson<ProbeSummary>(path.join(px.dir, 'probe.json')), teachers };
  };

  /**
   * One finetuning run from the pretrained model (an arm × seed, a sweep variant, a follow-up run), cached by
   * its config: the stage config is the same for every caller, so equal settings share a hash.
   */
  type Finetune = { alignLayer: number; steps: number; loss: ArmSpec['loss']; lambda: number; margin: number };
  const finetuneStage = (name: string, v: Finetune, seed: number, train: SplitTensors, teacherTokensTrain: tf.Tensor) => {
    const student = { ...c.student, alignLayer: v.alignLayer };
    const armCfg = { pretrain: pretrainStage.hash, teacher: teacherStage.hash, latents: latentStage.hash, student, finetune: { ...c.finetune, steps: v.steps }, arm: { loss: v.loss, lambda: v.lambda, margin: v.margin }, seed };
    return runner.run(name, armCfg, async (dir) => {
      const data = new MemoryDataset(train.latents, train.text, v.lambda > 0 ? teacherTokensTrain : undefined, teacherGrids.full);
      await trainStudent({ out: dir, from: pretrainedDir, student, teacherDim: c.teacher.embedDim, train: { ...c.finetune, steps: v.steps, seed, lambda: v.lambda, loss: v.loss, margin: v.margin }, data, log, progress: opts.progress });
    });
  };

  // the validation sweep, as a function: `sweepOnly` runs it alone (e.g. beside a running study)
  const runSweep = async (): Promise<SweepResult[]> => {
    const sweep: SweepResult[] = [];
    const val = readSplit(dataStage.dir, 'val');
    const valLat = loadLatents(latentStage.dir, 'val');
    const vLabels = Uint8Array.from(val.labels);
    const vNames = [...new Set(val.subsets)];
    const vGroups = Int32Array.from(val.subsets, (s) => vNames.indexOf(s));
    const trainLat2 = loadLatents(latentStage.dir, 'train');
    const teacherTrain2 = readTensor(path.join(teacherStage.dir, 'train.safetensors'), 'tokens');
    try {
      for (const v of c.sweep.variants) {
        const st = await finetuneStage(`sweep-${v.name}`, v, c.sweep.seed, trainLat2, teacherTrain2);
        const ev = await runner.run(`sweep-eval-${v.name}`, { data: dataStage.hash, latents: latentStage.hash, teacher: teacherStage.hash, eval: c.eval, folds: c.sweep.probeFolds, model: st.hash, split: 'val' }, async (dir) => {
          const model = fromPretrained(path.join(st.dir, 'final', 'transformer')).model;
          try {
            const e = await evaluateModel(model, { test: val, testLat: valLat, labels: vLabels, groups: vGroups, ctxLatentFrames, space, c, teacherDir: teacherStage.dir, contIdx: [], capIdx: [], split: 'val', dir, margin: v.margin, layer: v.alignLayer, folds: c.sweep.probeFolds, log });
            writeFileAtomic(path.join(dir, 'eval.json'), JSON.stringify({ name: v.name, variant: v, probe: e.probe, diffusionLoss: e.diffusionLoss, trdRaw: e.trdRaw }) + '\n');
          } finally {
            model.dispose();
          }
        });
        sweep.push(readJson<SweepResult>(path.join(ev.dir, 'eval.json')));
      }
    } finally {
      tf.dispose([valLat.latents, valLat.text, trainLat2.latents, trainLat2.text, teacherTrain2]);
    }
    return sweep;
  };
  if (opts.sweepOnly) {
    const teacherSweep = await runTeacherSweep();
    const sweep = await runSweep();
    return { config: c, stages: runner.records, evals: [], baselines: null as never, sweep, teacherSweep, followUp: null, curves: [], teacherCurve: [], latentSpace: space, env: environment(), seconds: (performance.now() - t0) / 1000 };
  }

  // 5. arms × seeds, all from the pretrained checkpoint, same steps / data order per seed
  const teacherTrain = readTensor(path.join(teacherStage.dir, 'train.safetensors'), 'tokens');
  const runs: { id: string; arm: ArmSpec | null; seed: number | null; dir: string; stage: StageRecord }[] = [{ id: 'pretrained', arm: null, seed: null, dir: pretrainedDir, stage: pretrainStage }];
  for (const arm of c.arms) {
    for (const seed of arm.allSeeds ? c.seeds : c.seeds.slice(0, 1)) {
      const st = await finetuneStage(`arm-${arm.name}-s${seed}`, { ...arm, alignLayer: c.student.alignLayer, steps: c.finetune.steps }, seed, trainLat, teacherTrain);
      runs.push({ id: `${arm.name}-s${seed}`, arm, seed, dir: path.join(st.dir, 'final', 'transformer'), stage: st });
    }
  }
  tf.dispose([trainLat.latents, trainLat.text, teacherTrain]);

  // 6. measures on the test split
  const split: Split = 'test';
  const test = readSplit(dataStage.dir, split);
  const testLat = loadLatents(latentStage.dir, split);
  const labels = Uint8Array.from(test.labels);
  const groupNames = [...new Set(test.subsets)];
  const groups = Int32Array.from(test.subsets, (s) => groupNames.indexOf(s));
  
  const evalCfgBase = { data: dataStage.hash, latents: latentStage.hash, teacher: teacherStage.hash, eval: c.eval, split, gridMatch: c.finetune.gridMatch };
  const contIdx = spreadIndices(test, c.eval.continuations);
  const capIdx = spreadIndices(test, c.eval.captionClips);
  const evals: ModelEval[] = [];
  for (const r of runs) {
    const st = await runner.run(`eval-${r.id}`, { ...evalCfgBase, model: r.stage.hash }, async (dir) => {
      const model = fromPretrained(r.dir).model;
      try {
        const e = await evaluateModel(model, { test, testLat, labels, groups, ctxLatentFrames, space, c, teacherDir: teacherStage.dir, contIdx, capIdx, split, dir, margin: r.arm?.margin ?? 0.1, log });
        writeFileAtomic(path.join(dir, 'eval.json'), JSON.stringify({ id: r.id, arm: r.arm?.name ?? 'pretrained', seed: r.seed, ...e }) + '\n');
      } finally {
        model.dispose();
      }
    });
    const e = readJson<ModelEval>(path.join(st.dir, 'eval.json'));
    evals.push({ ...e, sheet: path.join(st.dir, 'continuations.png'), captionSheet: path.join(st.dir, 'captions.png') });
  }

  // 7. baselines: teacher (pretrained and random init) and raw pixels, same folds; ground-truth clips through the scorer
  const baseStage = await runner.run('baselines', { version: 2, data: dataStage.hash, teacher: teacherStage.hash, eval: c.eval, split }, async (dir) => {
    const tf1 = path.join(teacherStage.dir, `${split}.safetensors`);
    const probeOf = async (name: string, grid = teacherGrids.context) => {
      const tokens = readTensor(tf1, name) as tf.Tensor3D;
      const x = featureRows(test.n, 32, (s, k) => tf.tidy(() => sliceFeatures(sliceRows(tokens, s, k) as tf.Tensor3D, grid)));
      tokens.dispose();
      return probeAccuracy(x, labels, groups, c.eval.probeFolds, 0);
    };
    const teacher = await probeOf('context_tokens');
    const randomTeacher = await probeOf('random_context_tokens');
    const px = featureRows(test.n, 16, (s, k) =>
      tf.tidy(() => {
        const clips = pixelsToTensor(test.pixels.subarray(s * test.frames * test.height * test.width * 3, (s + k) * test.frames * test.height * test.width * 3), k, test.frames, test.height, test.width);
        return pixelFeatures(tf.slice(clips, [0, 0, 0, 0, 0], [k, test.context, test.height, test.width, 3]));
      }),
    );
    const pixels = await probeAccuracy(px, labels, groups, c.eval.probeFolds, 0);
    // diagnostic, not the OCP protocol: the whole clip (the contact itself is visible)
    const teacherFullClip = await probeOf('tokens', teacherGrids.full);
    const pxFull = featureRows(test.n, 16, (s, k) =>
      tf.tidy(() => pixelFeatures(pixelsToTensor(test.pixels.subarray(s * test.frames * test.height * test.width * 3, (s + k) * test.frames * test.height * test.width * 3), k, test.frames, test.height, test.width))),
    );
    const pixelsFullClip = await probeAccuracy(pxFull, labels, groups, c.eval.probeFolds, 0);
    const groundTruth = contIdx.map((i) => scoreClip(clipPixels(test, i), test.width, test.height, test.states[i]!));
    writeFileAtomic(path.join(dir, 'baselines.json'), JSON.stringify({ teacher, randomTeacher, pixels, teacherFullClip, pixelsFullClip, groundTruth }) + '\n');
  });
  const baselines = readJson<StudyResult['baselines']>(path.join(baseStage.dir, 'baselines.json'));
  tf.dispose([testLat.latents, testLat.text]);

  // 8. the validation sweep (TRD variants against diffusion only with the same steps and layer, judged on val)
  const teacherSweep = opts.sweep ? await runTeacherSweep() : null;
  const sweep: SweepResult[] = opts.sweep ? await runSweep() : [];

  // 9. the sweep's choice, confirmed once on the test split: the variant and its diffusion-only reference, every seed
  let followUp: StudyResult['followUp'] = null;
  if (opts.sweep && c.followUp) {
    const variant = c.sweep.variants.find((v) => v.name === c.followUp)!;
    const reference = c.sweep.variants.find((v) => v.lambda === 0 && v.steps === variant.steps && v.alignLayer === variant.alignLayer);
    if (!reference) throw new Error(`vrepa repro: followUp '${variant.name}' has no diffusion-only sweep variant with the same steps and align layer`);
    const fl = loadLatents(latentStage.dir, 'train');
    const ft = readTensor(path.join(teacherStage.dir, 'train.safetensors'), 'tokens');
    const tl = loadLatents(latentStage.dir, split);
    const fRuns: NonNullable<StudyResult['followUp']>['runs'] = [];
    try {
      for (const seed of c.seeds) {
        const pair: ModelEval[] = [];
        for (const v of [variant, reference]) {
          const st = await finetuneStage(`followup-${v.name}-s${seed}`, v, seed, fl, ft);
          // probe, held-out loss and TRD on test (no generations: the follow-up asks about the features)
          const ev = await runner.run(`followup-eval-${v.name}-s${seed}`, { ...evalCfgBase, model: st.hash, layer: v.alignLayer, generations: false }, async (dir) => {
            const model = fromPretrained(path.join(st.dir, 'final', 'transformer')).model;
            try {
              const e = await evaluateModel(model, { test, testLat: tl, labels, groups, ctxLatentFrames, space, c, teacherDir: teacherStage.dir, contIdx: [], capIdx: [], split, dir, margin: v.margin, layer: v.alignLayer });
              writeFileAtomic(path.join(dir, 'eval.json'), JSON.stringify({ id: `followup-${v.name}-s${seed}`, arm: v.name, seed, ...e, sheet: '', captionSheet: '' }) + '\n');
            } finally {
              model.dispose();
            }
          });
          pair.push(readJson<ModelEval>(path.join(ev.dir, 'eval.json')));
        }
        fRuns.push({ seed, variant: pair[0]!, reference: pair[1]! });
      }
    } finally {
      tf.dispose([fl.latents, fl.text, ft, tl.latents, tl.text]);
    }
    followUp = { variant, reference, runs: fRuns };
  }

  const curves = runs.map((r) => ({ id: r.id, log: readTrainLog(path.join(r.stage.dir, 'log.jsonl')) }));
  const teacherLog = path.join(teacherStage.dir, 'pretrain-log.jsonl');
  const teacherCurve = fs.existsSync(teacherLog) ? readTrainLog(teacherLog).map((l) => ({ step: l.step, loss: l.loss ?? NaN })) : [];
  return {
    config: c,
    stages: runner.records,
    evals,
    baselines,
    sweep,
    teacherSweep,
    followUp,
    curves,
    teacherCurve,
    latentSpace: space,
    env: environment(),
    seconds: (performance.now() - t0) / 1000,
  };
}

export function environment(): Record<string, string> {
  const pkg = (name: string) => {
    try {
      return JSON.parse(fs.readFileSync(new URL(`../../${name}/package.json`, import.meta.url), 'utf8')).version as string;
    } catch {
      return 'unknown';
    }
  };
  return {
    node: process.version,
    tfjs_backend: tf.getBackend(),
    tfjs: tf.version_core,
    cpus: `${os.cpus().length} × ${os.cpus()[0]?.model ?? '?'}`,
    load_average: os.loadavg().map((x) => x.toFixed(2)).join(' / '),
    platform: `${os.platform()} ${os.release()}`,
    repro_version: pkg('repro'),
    date: new Date().toISOString(),
  };
}

interface EvalInputs {
  test: SplitData;
  testLat: SplitTensors;
  labels: Uint8Array;
  groups: Int32Array;
  ctxLatentFrames: number;
  space: LatentSpace;
  c: ReproConfig;
  teacherDir: string;
  contIdx: number[];
  capIdx: number[];
  split: Split;
  dir: string;
  margin: number;
  /** align layer whose features are probed (default the student's) */
  layer?: number;
  folds?: number;
  /** where a compiled forward's fallback to eager is reported */
  log?: (m: string) => void;
}

/**
 * One model's measures. Its transformer forwards run through two compiled forwards (@vrepa/cogvideox'
 * compiledForward: one TensorFlow graph per input shape once two traces of it match; weights captured, which
 * is fine since they do not change here), shared by every measure of this evaluation so each shape is traced
 * once: the align-layer forward of the probe features and the plain forward of the held-out loss and of every
 * sampler step. The held-out TRD's align-layer tokens (full-length clips: one call per loss batch, 3 at the toy
 * preset) stay eager: two traces cost more than so few graph runs save. With oneDNN on the compiled values
 * differ from eager ones in rounding; `VREPA_TF_GRAPH=0` runs everything eagerly.
 */
async function evaluateModel(model: CogVideoXTransformer3DModel, x: EvalInputs): Promise<Omit<ModelEval, 'id' | 'arm' | 'seed' | 'sheet' | 'captionSheet'>> {
  const layer = x.layer ?? x.c.student.alignLayer;
  const note = (r: string) => x.log?.(`${x.split} evaluation: a compiled forward runs eagerly (${r})`);
  const alignFwd = compiledForward(model, { alignLayer: layer, projectAligned: false, onFallback: note });
  const plainFwd = compiledForward(model, { alignLayer: 0, onFallback: note });
  try {
    return await evaluateWith(model, x, layer, alignFwd, plainFwd);
  } finally {
    alignFwd.dispose();
    plainFwd.dispose();
  }
}

async function evaluateWith(model: CogVideoXTransformer3DModel, x: EvalInputs, layer: number, alignFwd: CompiledForward, plainFwd: CompiledForward): Promise<Omit<ModelEval, 'id' | 'arm' | 'seed' | 'sheet' | 'captionSheet'>> {
  const { test, testLat, c, ctxLatentFrames: K } = x;
  const [n, F, h, w, C] = testLat.latents.shape;
  const B = c.eval.batch;
  // (i) probe of align-layer features on the context latents (3 slices, every spatial token)
  const feats = featureRows(n, B, (s, k) =>
    tf.tidy(() => {
      const lat = tf.slice(testLat.latents, [s, 0, 0, 0, 0], [k, K, h, w, C]);
      const r = studentAlignTokens(model, lat, sliceRows(testLat.text, s, k), c.eval.probeTimestep, 1000 + s, layer, alignFwd);
      return sliceFeatures(r.tokens, r.grid);
    }),
  );
  const probe = await probeAccuracy(feats, x.labels, x.groups, x.folds ?? c.eval.probeFolds, 0);
  // (iii) diffusion loss and (iv) TRD on held-out clips (full length)
  const m = Math.min(c.eval.lossClips, n);
  const lossIdx = spreadIndices(test, m);
  const teacherTokensAll = readTensor(path.join(x.teacherDir, `${x.split}.safetensors`), 'tokens') as tf.Tensor3D;
  const tGrid = readJson<{ full: { frames: number; height: number; width: number } }>(path.join(x.teacherDir, 'grid.json')).full;
  const perClip: number[] = [];
  let trdP = 0;
  let trdR = 0;
  for (let s = 0; s < m; s += B) {
    const idx = lossIdx.slice(s, s + B);
    const lat = gatherRows(testLat.latents, idx);
    const txt = gatherRows(testLat.text, idx);
    perClip.push(...heldOutDiffusionLoss(model, lat, txt, c.eval.lossTimesteps, 7 + s, plainFwd));
    const st = studentAlignTokens(model, lat, txt, c.eval.probeTimestep, 2000 + s, layer);
    const tt = gatherRows(teacherTokensAll, idx) as tf.Tensor3D;
    const r = heldOutTrd(model, st, { tokens: tt, grid: tGrid }, { margin: x.margin, gridMatch: c.finetune.gridMatch });
    trdP += r.projected * idx.length;
    trdR += r.raw * idx.length;
    tf.dispose([lat, txt, st.tokens, tt]);
  }
  teacherTokensAll.dispose();
  // (ii) generations: continuations of test scenes, and clips from captions alone (same seeds for every model)
  const cont: ClipScore[] = [];
  const contFrames: Uint8Array[] = [];
  for (let s = 0; s < x.contIdx.length; s += B) {
    const idx = x.contIdx.slice(s, s + B);
    const lat = gatherRows(testLat.latents, idx);
    const txt = gatherRows(testLat.text, idx);
    const gen = sampleLatents(model, txt, [idx.length, F, h, w, C], { steps: c.eval.sampleSteps, seed: 31 + s, contextFrames: K, compiled: plainFwd }, lat);
    latentsToClips(gen, x.space).forEach((clip, j) => {
      contFrames.push(clip);
      cont.push(scoreClip(clip, test.width, test.height, test.states[idx[j]!]!));
    });
    tf.dispose([lat, txt, gen]);
  }
  const caps: ClipScore[] = [];
  const capFrames: Uint8Array[] = [];
  for (let s = 0; s < x.capIdx.length; s += B) {
    const idx = x.capIdx.slice(s, s + B);
    const txt = gatherRows(testLat.text, idx);
    const gen = sampleLatents(model, txt, [idx.length, F, h, w, C], { steps: c.eval.sampleSteps, seed: 61 + s, contextFrames: 0, compiled: plainFwd });
    latentsToClips(gen, x.space).forEach((clip, j) => {
      capFrames.push(clip);
      caps.push(scoreClip(clip, test.width, test.height, test.states[idx[j]!]!));
    });
    tf.dispose([txt, gen]);
  }
  if (contFrames.length) writeSheet(path.join(x.dir, 'continuations.png'), contFrames, test, x.contIdx);
  if (capFrames.length) writeSheet(path.join(x.dir, 'captions.png'), capFrames, test, x.capIdx);
  return {
    split: x.split,
    probe,
    diffusionLoss: perClip.reduce((a, b) => a + b, 0) / perClip.length,
    diffusionLossPerClip: perClip,
    trdProjected: trdP / m,
    trdRaw: trdR / m,
    continuations: cont,
    captionOnly: caps,
  };
}

/** Rows: one clip each — the ground truth's frames above the generated ones at a few time points. */
function writeSheet(file: string, clips: Uint8Array[], d: SplitData, idx: number[]): void {
  const frames = [0, d.context - 1, Math.round((d.context + d.frames - 1) / 2), d.frames - 1];
  const { width: W, height: H } = d;
  const rows: Uint8Array[] = [];
  clips.forEach((clip, j) => {
    rows.push(contactSheet(clipPixels(d, idx[j]!), W, H, frames, frames.length).rgb);
    rows.push(contactSheet(clip, W, H, frames, frames.length).rgb);
  });
  const rowBytes = W * frames.length * H * 3;
  const out = new Uint8Array(rowBytes * rows.length);
  rows.forEach((r, i) => out.set(r, i * rowBytes));
  const z = upscale(out, W * frames.length, H * rows.length, 3);
  writeFileAtomic(file, encodePng(z.rgb, z.width, z.height));
}

/** Nearest-neighbour ×k (toy frames are tiny). */
function upscale(rgb: Uint8Array, width: number, height: number, k: number): { rgb: Uint8Array; width: number; height: number } {
  const W = width * k;
  const out = new Uint8Array(W * height * k * 3);
  for (let y = 0; y < height * k; y++)
    for (let x = 0; x < W; x++) {
      const src = (Math.floor(y / k) * width + Math.floor(x / k)) * 3;
      const dst = (y * W + x) * 3;
      out[dst] = rgb[src]!;
      out[dst + 1] = rgb[src + 1]!;
      out[dst + 2] = rgb[src + 2]!;
    }
  return { rgb: out, width: W, height: height * k };
}

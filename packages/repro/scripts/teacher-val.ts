/**
 * Teacher recipes against raw pixels on the VALIDATION split only (the README's "Choosing the teacher"
 * tables; the test split is never generated here). Generates the toy preset's train split and a validation
 * split of `--val` clips per subset once (cached in `--data`), pretrains one teacher recipe on the train split
 * with `vrepa teacher pretrain` (the study's `teacherRunConfig`, plus the recipe's changes), and probes its
 * context tokens after each encoder block next to raw pixels: the study's 3-slice probe, 5 folds × `--fold-seeds`,
 * differences paired over folds (t interval, as the README's table), and per clip (each clip's held-out
 * correctness averaged over the fold seeds; normal interval over clips). `--curve` adds a learning curve:
 * the same comparison on the first m clips per subset.
 *
 *   npx tsx scripts/teacher-val.ts --name study                                    # the toy preset's recipe
 *   npx tsx scripts/teacher-val.ts --name dec4 --recipe '{"model":{"decoderDepth":4}}'
 *   npx tsx scripts/teacher-val.ts --name e48 --recipe '{"teacher":{"embedDim":48}}' --last-block-only
 *   npx tsx scripts/teacher-val.ts --name study --curve 50,100,150,200
 *
 * `--recipe` keys: `teacher` (TeacherSpec fields), `pretrain` (TeacherPretrainSpec fields), `model`
 * (VideoMAE pre-training model fields, e.g. decoderDepth / decoderEmbedDim). One JSON line per run is
 * appended to `<out>/results.jsonl`.
 */
import fs from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';
import * as tf from '@tensorflow/tfjs';
import { initBackend } from '@vrepa/core';
import { crossValidateProbe, featureStats, standardizedGram, type FeatureMatrix } from '@vrepa/eval';
import { VideoMAEv2, modelConfigOf, pretrainTeacher, teacherConfigFromPretrain } from '@vrepa/teachers';
import { featureRows, generateSplit, pixelFeatures, pixelsToTensor, readSplit, reproPreset, sliceFeatures, splitSource, teacherRunConfig, writeFileAtomic, type SplitData } from '../src/index.js';

const { values: a } = parseArgs({
  options: {
    name: { type: 'string', default: 'study' },
    recipe: { type: 'string', default: '{}' },
    val: { type: 'string', default: '200' },
    'fold-seeds': { type: 'string', default: '2' },
    data: { type: 'string', default: 'runs/teacher-val/data' },
    out: { type: 'string', default: 'runs/teacher-val' },
    'last-block-only': { type: 'boolean', default: false },
    curve: { type: 'string' },
  },
});
type Recipe = { teacher?: Record<string, number>; pretrain?: Record<string, number>; model?: Record<string, number>; train?: number };
/** `--recipe`, checked: a JSON object of the known sections (a misspelt key would otherwise run the study's recipe). */
function parseRecipe(text: string): Recipe {
  let r: unknown;
  try {
    r = JSON.parse(text);
  } catch (e) {
    throw new Error(`teacher-val: --recipe is not valid JSON (${(e as Error).message}): ${text}`);
  }
  if (typeof r !== 'object' || r === null || Array.isArray(r)) throw new Error(`teacher-val: --recipe must be a JSON object, got ${text}`);
  const known = ['teacher', 'pretrain', 'model', 'train'];
  const bad = Object.keys(r).filter((k) => !known.includes(k));
  if (bad.length) throw new Error(`teacher-val: --recipe has unknown key(s) ${bad.join(', ')} (known: ${known.join(', ')})`);
  const rec = r as Recipe;
  if (rec.train !== undefined && !(Number.isInteger(rec.train) && rec.train >= 1)) throw new Error(`teacher-val: --recipe train (clips per subset) must be a positive integer, got ${JSON.stringify(rec.train)}`);
  const toyTeacher = reproPreset('toy').teacher;
  const badTeacher = Object.keys(rec.teacher ?? {}).filter((k) => !(k in toyTeacher) || k === 'pretrain');
  const badPretrain = Object.keys(rec.pretrain ?? {}).filter((k) => !['steps', 'batch', 'maskRatio', 'futureSlots'].includes(k));
  if (badTeacher.length || badPretrain.length) throw new Error(`teacher-val: --recipe has unknown field(s) ${[...badTeacher.map((k) => `teacher.${k}`), ...badPretrain.map((k) => `pretrain.${k}`)].join(', ')}`);
  return rec;
}
let recipe: Recipe;
try {
  recipe = parseRecipe(a.recipe!);
} catch (e) {
  process.stderr.write(`${(e as Error).message}\n`);
  process.exit(2);
}
await initBackend();
const toy = reproPreset('toy');
const perVal = Number(a.val);
const foldSeeds = Array.from({ length: Number(a['fold-seeds']) }, (_, i) => i);
const trainPer = recipe.train ?? toy.data.perSubset.train;
const dataCfg = { ...toy.data, perSubset: { train: trainPer, val: perVal, test: 0 } };
const dataDir = path.resolve(a.data!, `train${trainPer}-val${perVal}-seed${dataCfg.seed}`);
fs.mkdirSync(dataDir, { recursive: true });

async function split(name: 'train' | 'val'): Promise<SplitData> {
  if (fs.existsSync(path.join(dataDir, `${name}.json`))) return readSplit(dataDir, name);
  const d = await generateSplit(dataCfg, name);
  const { pixels, states, ...meta } = d;
  writeFileAtomic(path.join(dataDir, `${name}.clips.bin`), pixels);
  writeFileAtomic(path.join(dataDir, `${name}.states.jsonl`), states.join('\n') + '\n');
  writeFileAtomic(path.join(dataDir, `${name}.json`), JSON.stringify(meta) + '\n');
  return d;
}
const train = await split('train');
const val = await split('val');
if (train.seeds.some((s) => new Set(val.seeds).has(s))) throw new Error('teacher-val: train and validation share scenes');
const subsetNames = [...new Set(val.subsets)];
const fb = val.frames * val.height * val.width * 3;
/** Context frames of validation clips s..s+k `[k, context, H, W, 3]` in [-1, 1]. */
const ctxClips = (s: number, k: number) => tf.slice(pixelsToTensor(val.pixels.subarray(s * fb, (s + k) * fb), k, val.frames, val.height, val.width), [0, 0, 0, 0, 0], [k, val.context, val.height, val.width, 3]);

/** Rows `idx` of a feature matrix. */
function rows(x: FeatureMatrix, idx: number[]): FeatureMatrix {
  const data = new Float32Array(idx.length * x.d);
  idx.forEach((r, j) => data.set(x.data.subarray(r * x.d, (r + 1) * x.d), j * x.d));
  return { data, n: idx.length, d: x.d };
}

/** Fold accuracies (every fold seed) and per-clip held-out correctness (mean over fold seeds). */
async function probe(x: FeatureMatrix, idx: number[]): Promise<{ folds: number[]; perClip: number[] }> {
  const xs = rows(x, idx);
  const labels = Uint8Array.from(idx, (i) => val.labels[i]!);
  const groups = Int32Array.from(idx, (i) => subsetNames.indexOf(val.subsets[i]!));
  const k = await standardizedGram(xs, featureStats(xs));
  const folds: number[] = [];
  const perClip = new Array<number>(idx.length).fill(0);
  for (const seed of foldSeeds) {
    const r = crossValidateProbe(k, { features: xs, labels, groups }, { folds: 5, seed });
    folds.push(...r.foldAccuracies);
    r.heldOutProbability.forEach((p, i) => (perClip[i]! += ((p >= 0.5 ? 1 : 0) === labels[i] ? 1 : 0) / foldSeeds.length));
  }
  return { folds, perClip };
}

const mean = (v: number[]) => v.reduce((s, x) => s + x, 0) / v.length;
const sd = (v: number[]) => Math.sqrt(v.reduce((s, x) => s + (x - mean(v)) ** 2, 0) / (v.length - 1));
// two-sided 95% t quantiles by degrees of freedom (the fold-paired interval has folds × seeds − 1 df)
const T95: Record<number, number> = { 4: 2.776, 9: 2.262, 14: 2.145, 19: 2.093 };
/** Teacher − pixels: paired over folds (t) and over clips (normal), in points. */
function compare(t: { folds: number[]; perClip: number[] }, p: { folds: number[]; perClip: number[] }) {
  const df = t.folds.map((v, i) => v - p.folds[i]!);
  const dc = t.perClip.map((v, i) => v - p.perClip[i]!);
  const q = T95[df.length - 1] ?? 1.96;
  const pts = (v: number) => +(100 * v).toFixed(2);
  return {
    teacher: pts(mean(t.folds)),
    pixels: pts(mean(p.folds)),
    diff: pts(mean(df)),
    foldCi: [pts(mean(df) - (q * sd(df)) / Math.sqrt(df.length)), pts(mean(df) + (q * sd(df)) / Math.sqrt(df.length))],
    clipCi: [pts(mean(dc) - (1.96 * sd(dc)) / Math.sqrt(dc.length)), pts(mean(dc) + (1.96 * sd(dc)) / Math.sqrt(dc.length))],
  };
}

// the teacher: the toy preset's recipe with the changes asked for, pretrained on the train split
const t0 = performance.now();
const spec = { ...toy.teacher, ...recipe.teacher };
const pre = { ...toy.teacher.pretrain, ...recipe.pretrain };
const base = teacherRunConfig(spec, pre, train.frames, train.height, train.width);
const config = recipe.model ? { ...base, model_overrides: { ...base.model_overrides, ...recipe.model } } : base;
const runDir = path.resolve(a.out!, a.name!);
fs.rmSync(runDir, { recursive: true, force: true });
const r = await pretrainTeacher(config, { out: path.join(runDir, 'pretrain'), source: splitSource(train), progress: false, log: () => {} });
const teacher = VideoMAEv2.fromCheckpoint(r.teacher, { config: teacherConfigFromPretrain(modelConfigOf(config)) });
const pretrainSeconds = (performance.now() - t0) / 1000;

const all = Array.from({ length: val.n }, (_, i) => i);
const px = featureRows(val.n, 16, (s, k) => tf.tidy(() => pixelFeatures(ctxClips(s, k))));
const pxAll = await probe(px, all);
const result: Record<string, unknown> = { name: a.name, recipe, valClips: val.n, pretrainSeconds: Math.round(pretrainSeconds), lossEnd: r.lossEnd, blocks: {} };
let lastFeatures: FeatureMatrix | null = null;
for (let b = a['last-block-only'] ? spec.depth : 1; b <= spec.depth; b++) {
  let grid = { frames: 0, height: 0, width: 0 };
  const parts: tf.Tensor[] = [];
  for (let i = 0; i < val.n; i += 16) {
    const k = Math.min(16, val.n - i);
    tf.tidy(() => {
      const e = teacher.encodeVideo(ctxClips(i, k), { factor: 1, blocks: b });
      grid = e.grid;
      parts.push(tf.keep(e.tokens));
    });
  }
  const tokens = tf.concat(parts, 0) as tf.Tensor3D;
  tf.dispose(parts);
  const x = featureRows(val.n, 32, (s, k) => tf.tidy(() => sliceFeatures(tf.slice(tokens, [s], [k]) as tf.Tensor3D, grid)));
  tokens.dispose();
  const c = compare(await probe(x, all), pxAll);
  (result.blocks as Record<number, unknown>)[b] = c;
  console.log(`${a.name} block ${b}: teacher ${c.teacher} % vs pixels ${c.pixels} %: ${c.diff} points, fold-paired 95% CI [${c.foldCi.join(', ')}], per-clip [${c.clipCi.join(', ')}]`);
  lastFeatures = x;
}
teacher.dispose();

if (a.curve && lastFeatures) {
  const curve: unknown[] = [];
  for (const m of a.curve.split(',').map(Number)) {
    const idx = all.filter((i) => i - val.subsets.indexOf(val.subsets[i]!) < m);
    const c = compare(await probe(lastFeatures, idx), await probe(px, idx));
    curve.push({ clips: idx.length, ...c });
    console.log(`${a.name} curve ${idx.length} clips: teacher ${c.teacher} % vs pixels ${c.pixels} %: ${c.diff} points, per-clip 95% CI [${c.clipCi.join(', ')}]`);
  }
  result.curve = curve;
}
fs.mkdirSync(a.out!, { recursive: true });
fs.appendFileSync(path.join(a.out!, 'results.jsonl'), JSON.stringify(result) + '\n');

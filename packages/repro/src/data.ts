/**
 * The study's data: `vrepa physics generate` scenes (@vrepa/eval) of every requested subset, contact labels
 * balanced per subset and split, captions made from the scene parameters (never from the outcome), and
 * train / validation / test splits whose scene seeds derive from (data seed, split) — disjoint by
 * construction and checked.
 *
 * On disk (one data stage): `<split>.clips.bin` (uint8 `[n, F, H, W, 3]`), `<split>.json` (clip names, subsets,
 * seeds, labels, first contact frames, captions) and `<split>.states.jsonl` (one ground-truth states JSON per
 * clip, as `vrepa physics generate` writes them, for `vrepa physics metrics`).
 */
import fs from 'node:fs';
import path from 'node:path';
import {
  SUBSETS,
  balancedTargets,
  clipStatesJson,
  generateLabelledClip,
  initPhysics,
  mixSeed,
  renderClip,
  type Clip,
  type ClipOptions,
  type SceneObject,
  type SceneSpec,
  type Subset,
} from '@vrepa/eval';
import { writeFileAtomic } from './stages.js';

export const SPLITS = ['train', 'val', 'test'] as const;
export type Split = (typeof SPLITS)[number];

export interface DataConfig {
  subsets: Subset[];
  /** clips per subset in each split */
  perSubset: Record<Split, number>;
  seed: number;
  frames: number;
  width: number;
  height: number;
  fps: number;
  /** context frames K: no contact before frame K; the OCP question and the continuations start there */
  context: number;
}

export interface SplitMeta {
  split: Split;
  n: number;
  frames: number;
  width: number;
  height: number;
  fps: number;
  context: number;
  clips: string[];
  subsets: Subset[];
  seeds: number[];
  labels: (0 | 1)[];
  firstContactFrames: number[];
  captions: string[];
}

export interface SplitData extends SplitMeta {
  /** uint8 `[n, F, H, W, 3]` */
  pixels: Uint8Array;
  /** ground-truth states JSON per clip (the text `vrepa physics generate` writes) */
  states: string[];
}

const SPLIT_SALT: Record<Split, number> = { train: 0x7a1, val: 0x7a2, test: 0x7a3 };

/** The seed from which clip `i` of `subset` in `split` is searched (splits differ in their salt). */
export function splitClipSeed(dataSeed: number, split: Split, subset: Subset, i: number): number {
  return mixSeed(dataSeed, SPLIT_SALT[split], SUBSETS.indexOf(subset), i);
}

// ───────────────────────────── captions ─────────────────────────────

function shapeWord(o: SceneObject): string {
  if (o.parts.length > 1) return 'object';
  const p = o.parts[0]!;
  return p.kind === 'ball' ? 'ball' : p.kind === 'box' ? (Math.abs(p.hx - p.hy) < 0.08 ? 'cube' : p.hx > p.hy ? 'slab' : 'pillar') : 'wedge';
}

function sizeWord(o: SceneObject): string {
  const p = o.parts[0]!;
  const r = p.kind === 'ball' ? p.r : p.kind === 'box' ? Math.max(p.hx, p.hy) : 0.3;
  return r < 0.27 ? 'small' : r > 0.38 ? 'large' : 'medium';
}

function speedWord(o: SceneObject): string {
  const v = Math.hypot(o.vx, o.vy) + Math.abs(o.omega) * 0.3;
  return v < 0.3 ? 'resting' : v < 2.5 ? 'moving slowly' : 'moving fast';
}

const SUBSET_PHRASE: Record<Subset, string> = {
  roll: 'rolls down a ramp',
  contain: 'is tossed toward a container',
  collide: 'slides along the floor',
  drop: 'falls from above',
  dominoes: 'starts a row of dominoes',
  support: 'is pushed along a shelf',
};

/**
 * A caption from the scene's initial parameters only (subset, shapes, sizes, colours, initial motion,
 * which side the patient is on, how many distractors) — never from the simulated outcome, so a probe on
 * caption-conditioned features cannot read the contact label from the text.
 */
export function sceneCaption(spec: SceneSpec): string {
  const agent = spec.objects.find((o) => o.role === 'agent')!;
  const patient = spec.objects.find((o) => o.role === 'patient')!;
  const distractors = spec.objects.filter((o) => o.role === 'distractor').length;
  const side = patient.x < agent.x ? 'left' : 'right';
  const height = patient.y > agent.y + 0.3 ? 'above' : patient.y < agent.y - 0.3 ? 'below' : 'level';
  return [
    `a ${sizeWord(agent)} red ${shapeWord(agent)} ${SUBSET_PHRASE[spec.subset]}`,
    `${speedWord(agent)}`,
    `a ${sizeWord(patient)} yellow ${shapeWord(patient)} to the ${side} ${height}`,
    `${distractors === 0 ? 'no' : distractors === 1 ? 'one' : 'several'} other objects`,
  ].join(', ');
}

// ───────────────────────────── generation ─────────────────────────────

export function clipOptions(c: DataConfig): ClipOptions {
  return { width: c.width, height: c.height, frames: c.frames, fps: c.fps, context: c.context };
}

/** Simulate and render one split (balanced labels per subset). */
export async function generateSplit(c: DataConfig, split: Split, onClip?: (done: number, total: number) => void): Promise<SplitData> {
  await initPhysics();
  const opts = clipOptions(c);
  const n = c.perSubset[split];
  const frameBytes = c.width * c.height * 3 * c.frames;
  const total = n * c.subsets.length;
  const pixels = new Uint8Array(frameBytes * total);
  const meta: SplitData = { split, n: total, frames: c.frames, width: c.width, height: c.height, fps: c.fps, context: c.context, clips: [], subsets: [], seeds: [], labels: [], firstContactFrames: [], captions: [], pixels, states: [] };
  let k = 0;
  for (const subset of c.subsets) {
    const targets = balancedTargets(n, mixSeed(c.seed, SPLIT_SALT[split], SUBSETS.indexOf(subset), 0xba1));
    for (let i = 0; i < n; i++) {
      const clip: Clip = await generateLabelledClip(subset, splitClipSeed(c.seed, split, subset, i), targets[i]!, opts);
      const name = `${split}_${subset}_${String(i).padStart(4, '0')}`;
      pixels.set(renderClip(clip.spec, clip.sim, opts), k * frameBytes);
      meta.clips.push(name);
      meta.subsets.push(subset);
      meta.seeds.push(clip.seed);
      meta.labels.push(clip.sim.contact);
      meta.firstContactFrames.push(clip.sim.firstContactFrame);
      meta.captions.push(sceneCaption(clip.spec));
      meta.states.push(clipStatesJson(name, clip, opts));
      k++;
      onClip?.(k, total);
    }
  }
  return meta;
}

/** Scene seeds shared by two splits (must be none). */
export function sharedSeeds(a: Pick<SplitMeta, 'seeds'>, b: Pick<SplitMeta, 'seeds'>): number[] {
  const s = new Set(a.seeds);
  return b.seeds.filter((x) => s.has(x));
}

/** Generate every split into `dir`; throws if two splits share a scene. */
export async function writeData(c: DataConfig, dir: string, log: (m: string) => void = () => {}): Promise<void> {
  const metas: SplitData[] = [];
  for (const split of SPLITS) {
    const t0 = performance.now();
    const d = await generateSplit(c, split);
    metas.push(d);
    const { pixels, states, ...meta } = d;
    writeFileAtomic(path.join(dir, `${split}.clips.bin`), pixels);
    writeFileAtomic(path.join(dir, `${split}.states.jsonl`), states.join('\n') + '\n');
    writeFileAtomic(path.join(dir, `${split}.json`), JSON.stringify(meta) + '\n');
    log(`data: ${split}: ${d.n} clips (${d.labels.filter((l) => l === 1).length} with contact) in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
  }
  for (let i = 0; i < metas.length; i++)
    for (let j = i + 1; j < metas.length; j++) {
      const shared = sharedSeeds(metas[i]!, metas[j]!);
      if (shared.length) throw new Error(`data: splits ${metas[i]!.split} and ${metas[j]!.split} share ${shared.length} scene seed(s) (${shared.slice(0, 3).join(', ')})`);
    }
}

/** Read one split of a data stage. */
export function readSplit(dir: string, split: Split): SplitData {
  const meta = JSON.parse(fs.readFileSync(path.join(dir, `${split}.json`), 'utf8')) as SplitMeta;
  const buf = fs.readFileSync(path.join(dir, `${split}.clips.bin`));
  const pixels = new Uint8Array(buf.buffer, buf.byteOffset, buf.byteLength);
  const expected = meta.n * meta.frames * meta.height * meta.width * 3;
  if (pixels.length !== expected) throw new Error(`readSplit: ${split}.clips.bin has ${pixels.length} bytes, expected ${expected} for ${meta.n} clips of ${meta.frames}×${meta.height}×${meta.width}×3`);
  const states = fs.readFileSync(path.join(dir, `${split}.states.jsonl`), 'utf8').split('\n').filter((l) => l.trim());
  return { ...meta, pixels, states };
}

/** Bytes of one clip. */
export function clipBytes(d: Pick<SplitMeta, 'frames' | 'height' | 'width'>): number {
  return d.frames * d.height * d.width * 3;
}

/** The uint8 frames of clip `i` `[F, H, W, 3]` (a view). */
export function clipPixels(d: SplitData, i: number): Uint8Array {
  const b = clipBytes(d);
  return d.pixels.subarray(i * b, (i + 1) * b);
}

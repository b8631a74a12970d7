/**
 * Writing a scene dataset: per clip an mp4, a ground-truth states JSON, optionally a preview PNG, plus labels.csv
 * and dataset.json. Labels are balanced per subset; every clip regenerates from its recorded seed.
 */
import fs from 'node:fs';
import path from 'node:path';
import { encodePng } from '@vrepa/core';
import { parseCsvRecords, toCsv } from './csv.js';
import { encodeMp4, findFfmpeg } from './ffmpeg.js';
import { contactSheet } from './png.js';
import { Rng } from './rng.js';
import {
  DEFAULT_CONTEXT,
  DEFAULT_VIDEO,
  FLOOR_TOP,
  generateLabelledClip,
  mixSeed,
  objectArea,
  pixelsPerMeter,
  renderClip,
  SUBSETS,
  WORLD_WIDTH,
  type Clip,
  type ClipOptions,
  type Subset,
} from './scenes.js';

export interface DatasetOptions extends Partial<ClipOptions> {
  subsets: Subset[];
  /** Clips per subset. */
  n: number;
  seed: number;
  out: string;
  /** Write mp4 files (needs ffmpeg; default true). */
  video?: boolean;
  /** Write a 5-frame contact sheet PNG per clip. */
  preview?: boolean;
  onClip?: (done: number, total: number) => void;
}

export interface DatasetRow {
  clip: string;
  subset: Subset;
  seed: number;
  contact: 0 | 1;
  first_contact_frame: number;
  params: string;
}

/** Balanced 0/1 targets for n clips (⌊n/2⌋ of one, the rest of the other), in a seeded random order. */
export function balancedTargets(n: number, seed: number): (0 | 1)[] {
  const t: (0 | 1)[] = Array.from({ length: n }, (_, i) => (i % 2) as 0 | 1);
  return new Rng(seed).shuffle(t);
}

const r6 = (v: number) => Math.round(v * 1e6) / 1e6;

/** The ground-truth JSON of a clip: scene description and per-frame states (world units, see scenes.ts). */
export function clipStatesJson(name: string, clip: Clip, opts: ClipOptions): string {
  const { spec, sim } = clip;
  return JSON.stringify({
    clip: name,
    subset: spec.subset,
    seed: clip.seed,
    contact: sim.contact,
    first_contact_frame: sim.firstContactFrame,
    context_frames: opts.context,
    fps: opts.fps,
    frames: sim.states.length,
    width: opts.width,
    height: opts.height,
    world_width: WORLD_WIDTH,
    pixels_per_meter: pixelsPerMeter(opts.width),
    floor_top: FLOOR_TOP,
    background: spec.background,
    floor: spec.floor,
    params: spec.params,
    objects: spec.objects.map((o) => ({
      id: o.id,
      role: o.role,
      dynamic: o.dynamic,
      color: o.color,
      parts: o.parts,
      area: r6(objectArea(o)),
      density: r6(o.density),
      friction: r6(o.friction),
      restitution: r6(o.restitution),
    })),
    state_fields: ['x', 'y', 'angle', 'vx', 'vy', 'omega'],
    states: sim.states.map((fr) => fr.map((s) => s.map(r6))),
  });
}

/** Generate the dataset; returns the label rows. */
export async function generateDataset(opts: DatasetOptions): Promise<DatasetRow[]> {
  const clipOpts: ClipOptions = {
    width: opts.width ?? DEFAULT_VIDEO.width,
    height: opts.height ?? DEFAULT_VIDEO.height,
    frames: opts.frames ?? DEFAULT_VIDEO.frames,
    fps: opts.fps ?? DEFAULT_VIDEO.fps,
    context: opts.context ?? DEFAULT_CONTEXT,
    substeps: opts.substeps,
  };
  if (!(clipOpts.context >= 1 && clipOpts.context < clipOpts.frames))
    throw new RangeError(`generateDataset: context must be in [1, frames − 1] = [1, ${clipOpts.frames - 1}], got ${clipOpts.context}.`);
  if (!(Number.isInteger(opts.n) && opts.n >= 1)) throw new RangeError(`generateDataset: n must be a positive integer, got ${opts.n}.`);
  for (const s of opts.subsets)
    if (!(SUBSETS as readonly string[]).includes(s)) throw new RangeError(`generateDataset: unknown subset '${s}' (known: ${SUBSETS.join(', ')}).`);
  const video = opts.video ?? true;
  const ffmpeg = video ? findFfmpeg().path : undefined; // fail before simulating anything
  if (video && (clipOpts.width % 2 || clipOpts.height % 2)) throw new RangeError(`generateDataset: mp4 needs an even width and height, got ${clipOpts.width}×${clipOpts.height}.`);
  fs.mkdirSync(opts.out, { recursive: true });
  const rows: DatasetRow[] = [];
  const total = opts.subsets.length * opts.n;
  for (const subset of opts.subsets) {
    const si = SUBSETS.indexOf(subset);
    const targets = balancedTargets(opts.n, mixSeed(opts.seed, si, 0x7a11));
    for (let i = 0; i < opts.n; i++) {
      const name = `${subset}_${String(i).padStart(5, '0')}`;
      const clip = await generateLabelledClip(subset, mixSeed(opts.seed, si, i), targets[i]!, clipOpts);
      if (video || opts.preview) {
        const frames = renderClip(clip.spec, clip.sim, clipOpts);
        if (video) await encodeMp4(path.join(opts.out, `${name}.mp4`), frames, clipOpts.width, clipOpts.height, clipOpts.fps, { ffmpeg });
        if (opts.preview) {
          const f = clipOpts.frames;
          const idx = [0, clipOpts.context - 1, Math.round((f - 1) * 0.5), Math.round((f - 1) * 0.75), f - 1];
          const sheet = contactSheet(frames, clipOpts.width, clipOpts.height, idx, idx.length);
          fs.writeFileSync(path.join(opts.out, `${name}.preview.png`), encodePng(sheet.rgb, sheet.width, sheet.height));
        }
      }
      fs.writeFileSync(path.join(opts.out, `${name}.states.json`), clipStatesJson(name, clip, clipOpts));
      rows.push({ clip: name, subset, seed: clip.seed, contact: clip.sim.contact, first_contact_frame: clip.sim.firstContactFrame, params: JSON.stringify(clip.spec.params, (_k, v) => (typeof v === 'number' ? r6(v) : v)) });
      opts.onClip?.(rows.length, total);
    }
  }
  fs.writeFileSync(
    path.join(opts.out, 'labels.csv'),
    toCsv([['clip', 'subset', 'seed', 'contact', 'first_contact_frame', 'params'], ...rows.map((r) => [r.clip, r.subset, r.seed, r.contact, r.first_contact_frame, r.params])]),
  );
  fs.writeFileSync(
    path.join(opts.out, 'dataset.json'),
    JSON.stringify(
      {
        generator: '@vrepa/eval physics generate',
        seed: opts.seed,
        subsets: opts.subsets,
        clips_per_subset: opts.n,
        ...clipOpts,
        world_width: WORLD_WIDTH,
        pixels_per_meter: pixelsPerMeter(clipOpts.width),
        question:
          'Object contact prediction (OCP): given the first context frames (no agent-patient contact happens before them), will the red agent and the yellow patient touch later in the clip? Label from the simulation.',
        video,
      },
      null,
      2,
    ) + '\n',
  );
  return rows;
}

/**
 * Read a generated dataset's `labels.csv` (in file order): clip names, 0/1 contact labels, subset ids (`groups`,
 * index into `groupNames`) and seeds — the labels and groups a feature file for `vrepa probe` needs.
 */
export function readSceneLabels(dir: string): { clips: string[]; labels: Uint8Array; groups: Int32Array; groupNames: string[]; firstContactFrames: Int32Array } {
  const file = path.join(dir, 'labels.csv');
  if (!fs.existsSync(file)) throw new Error(`readSceneLabels: '${file}' does not exist (is '${dir}' a folder made by 'vrepa physics generate'?).`);
  const { columns, records } = parseCsvRecords(fs.readFileSync(file, 'utf8'), file);
  const missing = ['clip', 'subset', 'contact'].filter((c) => !columns.includes(c));
  if (missing.length) throw new Error(`readSceneLabels: ${file} lacks column(s) ${missing.join(', ')}.`);
  const groupNames = [...new Set(records.map((r) => r.subset!))];
  return {
    clips: records.map((r) => r.clip!),
    labels: Uint8Array.from(records, (r, i) => {
      if (r.contact !== '0' && r.contact !== '1') throw new Error(`readSceneLabels: ${file} row ${i + 2}: contact must be 0 or 1, got '${r.contact}'.`);
      return Number(r.contact);
    }),
    groups: Int32Array.from(records, (r) => groupNames.indexOf(r.subset!)),
    groupNames,
    firstContactFrames: Int32Array.from(records, (r) => Number(r.first_contact_frame ?? -1)),
  };
}

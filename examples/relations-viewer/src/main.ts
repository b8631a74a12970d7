/**
 * The relations viewer page: pick or drop a clip, optionally teacher weights and a student's features,
 * then click a token to see its relations for teacher and student side by side.
 */
import * as tf from '@tensorflow/tfjs';
import { SafetensorsBytes } from '@vrepa/core';
import { SUBSETS, type Subset } from '@vrepa/eval';
import type { TokenGrid } from '@vrepa/relations';
import type { VideoMAEv2 } from '@vrepa/teachers';
import { chooseBackend } from './backend.js';
import { safetensorsClip, sceneClip, videoFileClip, type Clip } from './clip.js';
import { distinctiveToken, encodeClip, studentFromBytes, teacherFromBytes, tinyTeacher, tokenRelations, trdAllForms, type TokenRelations, type TrdValues } from './model.js';

const $ = <T extends HTMLElement>(id: string) => document.getElementById(id) as T;
const params = new URLSearchParams(location.search);

interface State {
  backend: string;
  clip?: Clip;
  teacher?: VideoMAEv2;
  teacherLabel: string;
  /** the default student: a second random model; replaced by dropped features */
  studentModel?: VideoMAEv2;
  studentBytes?: { bytes: Uint8Array; name: string };
  studentLabel: string;
  teacherTokens?: tf.Tensor3D;
  studentTokens?: tf.Tensor3D;
  grid?: TokenGrid;
  trd?: TrdValues;
  margin: number;
  token: number;
  rel?: TokenRelations;
}
const state: State = { backend: '', teacherLabel: '', studentLabel: '', margin: 0.1, token: 0 };

/** For the browser test and for the curious: what the page computed. */
declare global {
  interface Window {
    __vrepa: { state: string; backend?: string; trd?: TrdValues; grid?: TokenGrid; token?: number; error?: string; teacher?: string; student?: string };
  }
}
window.__vrepa = { state: 'starting' };

function setStatus(kind: 'busy' | 'ready' | 'error', text: string): void {
  document.body.dataset.state = kind;
  window.__vrepa.state = kind;
  $('status').textContent = text;
  $('status').className = kind;
}

async function busy<T>(text: string, fn: () => Promise<T>): Promise<T | undefined> {
  setStatus('busy', text);
  await tf.nextFrame();
  try {
    const out = await fn();
    if (document.body.dataset.state === 'busy') setStatus('ready', state.clip ? 'done' : 'no clip yet: generate a scene or drop a clip');
    return out;
  } catch (e) {
    console.error(e);
    window.__vrepa.error = (e as Error).message;
    setStatus('error', (e as Error).message);
    return undefined;
  }
}

// ---- loading ------------------------------------------------------------------------------------------

async function setClip(clip: Clip): Promise<void> {
  state.clip?.video.dispose();
  state.clip = clip;
  $('clip-label').textContent = `${clip.label} — ${clip.frames} frames of ${clip.width}×${clip.height}`;
  await recompute();
}

/** Teacher and student tokens for the clip, then the TRD of each form; the default token is the centre. */
async function recompute(): Promise<void> {
  const { clip, teacher } = state;
  if (!clip || !teacher) return;
  tf.dispose([state.teacherTokens, state.studentTokens]);
  state.teacherTokens = state.studentTokens = undefined;
  const t0 = performance.now();
  const enc = encodeClip(teacher, clip.video);
  state.teacherTokens = enc.tokens;
  state.grid = enc.grid;
  if (state.studentBytes) state.studentTokens = studentFromBytes(state.studentBytes.bytes, state.studentBytes.name, enc.grid);
  else {
    state.studentModel ??= tinyTeacher(1);
    state.studentTokens = encodeClip(state.studentModel, clip.video).tokens;
  }
  await state.studentTokens.data(); // finish the encoders before timing TRD
  const tEnc = performance.now() - t0;
  // start on the most distinctive token of the middle frame (an object rather than background)
  state.token = await distinctiveToken(enc.tokens, enc.grid, Math.floor(enc.grid.frames / 2));
  await updateTrd(tEnc);
}

async function updateTrd(tEnc?: number): Promise<void> {
  const { studentTokens, teacherTokens, grid } = state;
  if (!studentTokens || !teacherTokens || !grid) return;
  const t0 = performance.now();
  state.trd = await trdAllForms(studentTokens, teacherTokens, grid, state.margin);
  const tTrd = performance.now() - t0;
  const N = grid.frames * grid.height * grid.width;
  $('trd').innerHTML = `<tr><th>TRD form</th><th>value (m = ${state.margin})</th></tr>` + Object.entries(state.trd).map(([k, v]) => `<tr><td>${k}</td><td data-form="${k}">${v.toPrecision(6)}</td></tr>`).join('');
  $('info').textContent =
    `tokens N = ${N} (grid ${grid.frames}×${grid.height}×${grid.width}); teacher dim ${teacherTokens.shape[2]}, student dim ${studentTokens.shape[2]}` +
    `${tEnc !== undefined ? `; encoders ${(tEnc / 1000).toFixed(2)} s` : ''}; TRD (4 forms, chunked) ${(tTrd / 1000).toFixed(2)} s`;
  Object.assign(window.__vrepa, { trd: state.trd, grid, teacher: state.teacherLabel, student: state.studentLabel });
  $('frame').setAttribute('max', String(grid.frames - 1));
  await selectToken(state.token);
}

// ---- one token's relations -----------------------------------------------------------------------------

async function selectToken(token: number): Promise<void> {
  const { studentTokens, teacherTokens, grid } = state;
  if (!studentTokens || !teacherTokens || !grid) return;
  state.token = token;
  state.rel = await tokenRelations(studentTokens, teacherTokens, grid, token, state.margin);
  window.__vrepa.token = token;
  ($('frame') as HTMLInputElement).value = String(state.rel.frame);
  draw();
  const P = grid.height * grid.width;
  const r = state.rel;
  const row = Math.floor((token % P) / grid.width);
  const col = token % grid.width;
  setStatus(
    'ready',
    `token ${token} (frame ${r.frame}, row ${row}, col ${col}): one row of each relation matrix in ${r.ms.toFixed(1)} ms; ` +
      `over the margin: ${(100 * r.overSpatial).toFixed(1)}% of its frame, ${(100 * r.overTemporal).toFixed(1)}% of the other frames`,
  );
}

// ---- drawing -------------------------------------------------------------------------------------------

/**
 * Colour scale of the maps: 'row' stretches the clicked token's row from its minimum (blue) to its maximum
 * (red), white at their middle — untrained features share one direction, so their cosines all sit near 1;
 * 'fixed' is cosine −1 … 0 … +1. Values are never changed, only their colours.
 */
let scale = { lo: -1, hi: 1 };
function setScale(rel: TokenRelations): void {
  if (($('scale') as HTMLSelectElement).value === 'fixed') scale = { lo: -1, hi: 1 };
  else {
    let lo = Infinity;
    let hi = -Infinity;
    for (const d of [rel.teacher, rel.student])
      for (let j = 0; j < d.length; j++) {
        if (j === rel.token) continue; // the diagonal is always 1
        lo = Math.min(lo, d[j]!);
        hi = Math.max(hi, d[j]!);
      }
    scale = hi > lo ? { lo, hi } : { lo: -1, hi: 1 };
  }
  $('scale-range').textContent = `blue ${scale.lo.toFixed(3)} · white ${((scale.lo + scale.hi) / 2).toFixed(3)} · red ${scale.hi.toFixed(3)}`;
}

/** Diverging colour for a cosine on the current scale: blue → white → red. */
function cosColor(v: number): [number, number, number] {
  const x = Math.max(-1, Math.min(1, (2 * (v - scale.lo)) / (scale.hi - scale.lo) - 1));
  return x >= 0 ? [255, Math.round(255 * (1 - x)), Math.round(255 * (1 - x))] : [Math.round(255 * (1 + x)), Math.round(255 * (1 + x)), 255];
}

/** Paint an `h×w` map at (ox, oy), each cell `s` px. */
function paintMap(img: ImageData, ox: number, oy: number, h: number, w: number, s: number, color: (i: number) => [number, number, number]): void {
  for (let y = 0; y < h * s; y++)
    for (let x = 0; x < w * s; x++) {
      const c = color(Math.floor(y / s) * w + Math.floor(x / s));
      const o = ((oy + y) * img.width + ox + x) * 4;
      img.data[o] = c[0];
      img.data[o + 1] = c[1];
      img.data[o + 2] = c[2];
      img.data[o + 3] = 255;
    }
}

const MASK_ON: [number, number, number] = [230, 120, 0];
const MASK_OFF: [number, number, number] = [250, 250, 250];

function draw(): void {
  const { clip, grid, rel } = state;
  if (!clip || !grid || !rel) return;
  setScale(rel);
  const P = grid.height * grid.width;
  // the clip frame the token's tubelet starts at (frame 0 is dropped for the teacher; tubelet 2)
  const tubelet = Math.max(1, Math.floor((clip.frames - 1) / grid.frames));
  const shown = Math.min(clip.frames - 1, 1 + rel.frame * tubelet);
  const frameCanvas = $('clip') as HTMLCanvasElement;
  frameCanvas.width = clip.width;
  frameCanvas.height = clip.height;
  const fctx = frameCanvas.getContext('2d')!;
  const fimg = fctx.createImageData(clip.width, clip.height);
  const base = shown * clip.width * clip.height * 3;
  for (let i = 0; i < clip.width * clip.height; i++) {
    fimg.data[4 * i] = clip.rgb[base + 3 * i]!;
    fimg.data[4 * i + 1] = clip.rgb[base + 3 * i + 1]!;
    fimg.data[4 * i + 2] = clip.rgb[base + 3 * i + 2]!;
    fimg.data[4 * i + 3] = 255;
  }
  fctx.putImageData(fimg, 0, 0);
  // token grid and the selected token
  const cw = clip.width / grid.width;
  const ch = clip.height / grid.height;
  fctx.strokeStyle = 'rgba(0,0,0,0.12)';
  fctx.lineWidth = 0.5;
  fctx.beginPath();
  for (let c = 1; c < grid.width; c++) (fctx.moveTo(c * cw, 0), fctx.lineTo(c * cw, clip.height));
  for (let r = 1; r < grid.height; r++) (fctx.moveTo(0, r * ch), fctx.lineTo(clip.width, r * ch));
  fctx.stroke();
  const row = Math.floor((rel.token % P) / grid.width);
  const col = rel.token % grid.width;
  fctx.lineWidth = 2;
  fctx.strokeStyle = '#00c000';
  fctx.strokeRect(col * cw + 1, row * ch + 1, cw - 2, ch - 2);
  $('frame-label').textContent = `teacher frame ${rel.frame} of ${grid.frames} (clip frame ${shown})`;

  // spatial maps: the token's own frame, large
  const S = Math.max(4, Math.floor(180 / grid.width));
  const frameOf = (data: ArrayLike<number>) => (i: number) => cosColor(data[rel.frame * P + i]!);
  for (const [id, color] of [
    ['spatial-teacher', frameOf(rel.teacher)],
    ['spatial-student', frameOf(rel.student)],
    ['spatial-mask', (i: number) => (rel.mask[rel.frame * P + i] ? MASK_ON : MASK_OFF)],
  ] as const) {
    const cv = $(id) as HTMLCanvasElement;
    cv.width = grid.width * S;
    cv.height = grid.height * S;
    const ctx = cv.getContext('2d')!;
    const img = ctx.createImageData(cv.width, cv.height);
    paintMap(img, 0, 0, grid.height, grid.width, S, color);
    ctx.putImageData(img, 0, 0);
    ctx.strokeStyle = '#00c000';
    ctx.lineWidth = 2;
    ctx.strokeRect(col * S + 1, row * S + 1, S - 2, S - 2);
  }

  // temporal maps: every frame, small, the token's frame outlined
  const s = Math.max(2, Math.floor(48 / grid.width));
  const cols = Math.min(grid.frames, 12);
  const lines = Math.ceil(grid.frames / cols);
  const gap = 3;
  for (const [id, color] of [
    ['temporal-teacher', (i: number) => cosColor(rel.teacher[i]!)],
    ['temporal-student', (i: number) => cosColor(rel.student[i]!)],
    ['temporal-mask', (i: number) => (rel.mask[i] ? MASK_ON : MASK_OFF)],
  ] as const) {
    const cv = $(id) as HTMLCanvasElement;
    cv.width = cols * (grid.width * s + gap);
    cv.height = lines * (grid.height * s + gap);
    const ctx = cv.getContext('2d')!;
    const img = ctx.createImageData(cv.width, cv.height);
    img.data.fill(255);
    for (let f = 0; f < grid.frames; f++) {
      const ox = (f % cols) * (grid.width * s + gap);
      const oy = Math.floor(f / cols) * (grid.height * s + gap);
      paintMap(img, ox, oy, grid.height, grid.width, s, (i) => color(f * P + i));
    }
    ctx.putImageData(img, 0, 0);
    ctx.strokeStyle = '#00c000';
    ctx.lineWidth = 2;
    ctx.strokeRect((rel.frame % cols) * (grid.width * s + gap), Math.floor(rel.frame / cols) * (grid.height * s + gap), grid.width * s, grid.height * s);
  }
}

// ---- inputs ---------------------------------------------------------------------------------------------

async function readFile(file: File): Promise<Uint8Array> {
  return new Uint8Array(await file.arrayBuffer());
}

async function loadClipFile(file: File): Promise<void> {
  await busy(`decoding ${file.name} …`, async () => {
    const clip = file.name.endsWith('.safetensors') ? safetensorsClip(await readFile(file), file.name) : await videoFileClip(file);
    await setClip(clip);
  });
}

async function loadTeacherFile(file: File): Promise<void> {
  await busy(`loading teacher weights ${file.name} …`, async () => {
    const teacher = teacherFromBytes(await readFile(file), file.name);
    state.teacher?.dispose();
    state.teacher = teacher;
    state.teacherLabel = `${file.name} (${teacher.config.name}, dim ${teacher.config.embedDim}, depth ${teacher.config.depth})`;
    $('teacher-label').textContent = state.teacherLabel;
    await recompute();
  });
}

async function loadStudentFile(file: File): Promise<void> {
  await busy(`loading student features ${file.name} …`, async () => {
    state.studentBytes = { bytes: await readFile(file), name: file.name };
    state.studentLabel = `${file.name} (features)`;
    $('student-label').textContent = state.studentLabel;
    await recompute();
  });
}

/** A dropped file goes where its content says: a video or `video` tensor → clip, `tokens` → student, else teacher. */
async function routeDrop(file: File): Promise<void> {
  if (!file.name.endsWith('.safetensors')) return loadClipFile(file);
  const f = SafetensorsBytes.from(await readFile(file), file.name);
  if (f.has('video')) return loadClipFile(file);
  if (f.has('tokens')) return loadStudentFile(file);
  return loadTeacherFile(file);
}

function wire(): void {
  const subset = $('subset') as HTMLSelectElement;
  subset.innerHTML = SUBSETS.map((s) => `<option>${s}</option>`).join('');
  subset.value = 'collide';
  $('generate').onclick = () => busy('simulating the scene …', async () => setClip(await sceneClip(subset.value as Subset, Number(($('seed') as HTMLInputElement).value) || 0)));
  for (const [id, load] of [
    ['clip-file', loadClipFile],
    ['teacher-file', loadTeacherFile],
    ['student-file', loadStudentFile],
  ] as const) {
    const input = $(id) as HTMLInputElement;
    input.onchange = () => {
      const file = input.files?.[0];
      if (file) void load(file);
    };
  }
  ($('margin') as HTMLInputElement).onchange = (e) => {
    const m = Number((e.target as HTMLInputElement).value);
    if (!(m >= 0)) return setStatus('error', `margin must be ≥ 0, got ${(e.target as HTMLInputElement).value}`);
    state.margin = m;
    void busy('TRD …', () => updateTrd());
  };
  ($('scale') as HTMLSelectElement).onchange = () => draw();
  ($('frame') as HTMLInputElement).oninput = (e) => {
    const { grid } = state;
    if (!grid) return;
    const f = Number((e.target as HTMLInputElement).value);
    const P = grid.height * grid.width;
    void selectToken(f * P + (state.token % P));
  };
  $('clip').onclick = (e) => {
    const { grid, clip, rel } = state;
    if (!grid || !clip || !rel) return;
    const r = (e.target as HTMLCanvasElement).getBoundingClientRect();
    const col = Math.min(grid.width - 1, Math.floor(((e.clientX - r.left) / r.width) * grid.width));
    const row = Math.min(grid.height - 1, Math.floor(((e.clientY - r.top) / r.height) * grid.height));
    void selectToken(rel.frame * grid.height * grid.width + row * grid.width + col);
  };
  document.body.ondragover = (e) => e.preventDefault();
  document.body.ondrop = (e) => {
    e.preventDefault();
    for (const file of e.dataTransfer?.files ?? []) void routeDrop(file);
  };
}

async function main(): Promise<void> {
  wire();
  const backend = await busy('starting tfjs …', () => chooseBackend(params.get('backend')));
  if (!backend) return;
  state.backend = backend.name;
  window.__vrepa.backend = backend.name;
  $('backend').textContent = `backend: ${backend.name}${backend.skipped.length ? ` (skipped ${backend.skipped.join('; ')})` : ''}`;
  state.teacher = tinyTeacher(0);
  state.teacherLabel = 'tiny VideoMAEv2, random weights (seed 0)';
  state.studentLabel = 'tiny VideoMAEv2, random weights (seed 1) — an untrained student';
  $('teacher-label').textContent = state.teacherLabel;
  $('student-label').textContent = state.studentLabel;
  if (params.get('clip') === 'none') return setStatus('ready', 'no clip yet: generate a scene or drop a clip');
  await busy('simulating the scene …', async () => setClip(await sceneClip('collide', Number(params.get('seed') ?? 3))));
}

void main();

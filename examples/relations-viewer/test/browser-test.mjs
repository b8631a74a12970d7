#!/usr/bin/env node
// The relations viewer in a real browser (Debian's chromium driven by playwright-core; no browser download).
//
//   1. Node makes the inputs: a physics-scene clip (17 frames of 64×96, @vrepa/eval), tiny VideoMAEv2 teacher
//      weights (seeded) and random student features, each a safetensors file; and computes, with
//      @vrepa/teachers and @vrepa/relations, the TRD of every form for them.
//   2. The built page (vite build) is served from a local HTTP server; chromium opens it, the three files are
//      given to its file inputs (the same path as dropping them), and the page computes TRD.
//   3. Pass: the page's TRD of each form equals Node's (relative 1e-4), a clicked token gets its relation
//      row, and the screenshot is not blank (pixel variance) — on the backend the page picks (wasm where
//      WebGL is a software renderer, as in headless chromium), and on WebGL as well when chromium has it;
//      and, where ffmpeg can make one, a webm given to the page decodes (<video>) into 3600 tokens and a TRD.
// No chromium (and none installable): prints SKIPPED with the reason and exits 0.
//
// Usage: node test/browser-test.mjs [--backend webgl|wasm|cpu] [--screenshot FILE] [--readme-screenshot FILE]
//   --readme-screenshot FILE  also open the page's default view (a 3600-token scene) and save it to FILE
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import zlib from 'node:zlib';

const here = path.dirname(fileURLToPath(import.meta.url));
const root = path.resolve(here, '..');
const { values: opts } = parseArgs({ options: { backend: { type: 'string' }, screenshot: { type: 'string' }, 'readme-screenshot': { type: 'string' } } });
const t0 = performance.now();
const log = (m) => console.log(`[relations-viewer browser test] ${m}`);
const secs = () => `${((performance.now() - t0) / 1000).toFixed(1)} s`;

// ---- 0. a chromium -----------------------------------------------------------------------------------------
/** An executable: a path as given, or the first match on PATH. */
function which(name) {
  if (name.includes('/')) return fs.existsSync(name) ? name : undefined;
  for (const dir of (process.env.PATH ?? '').split(path.delimiter).filter(Boolean)) {
    const p = path.join(dir, name);
    try {
      fs.accessSync(p, fs.constants.X_OK);
      return p;
    } catch {
      /* not here */
    }
  }
  return undefined;
}
function findChromium() {
  for (const c of [process.env.CHROMIUM_PATH, 'chromium', 'chromium-browser', 'google-chrome', 'google-chrome-stable'].filter(Boolean)) {
    const p = which(c);
    if (p) return p;
  }
  return undefined;
}
if (process.env.CHROMIUM_PATH && !which(process.env.CHROMIUM_PATH)) {
  log(`CHROMIUM_PATH=${process.env.CHROMIUM_PATH} is not an executable: fix or unset it`);
  process.exit(1);
}
const chromiumPath = findChromium();
if (!chromiumPath) {
  log('SKIPPED: no chromium on this machine (looked for $CHROMIUM_PATH, chromium, chromium-browser, google-chrome). On Debian/Ubuntu: apt-get install -y chromium — .ci/run does this when it can.');
  process.exit(0);
}

// ---- 1. inputs and Node's TRD ------------------------------------------------------------------------------
const tf = await import('@tensorflow/tfjs');
const core = await import('@vrepa/core');
const { renderClip, sampleScene, simulateScene } = await import('@vrepa/eval');
const { TRD_FORMS, trdLoss } = await import('@vrepa/relations');
const { VideoMAEv2, teacherConfig } = await import('@vrepa/teachers');
const nodeBackend = await core.initBackend({ quiet: true });

const work = fs.mkdtempSync(path.join(os.tmpdir(), 'vrepa-viewer-test-'));
const video = { width: 96, height: 64, frames: 17, fps: 16 };
const spec = sampleScene('collide', 5);
const rgb = renderClip(spec, await simulateScene(spec, video), video);
const clipBytes = core.serializeSafetensors({ video: { dtype: 'U8', shape: [video.frames, video.height, video.width, 3], data: rgb } });
// The tiny config the page falls back to for weights whose shapes fit no registered config (src/model.ts).
const config = { ...teacherConfig('videomaev2-s', 'videomaev2'), name: 'videomaev2-tiny', embedDim: 64, depth: 2, numHeads: 4 };
core.setInitRng(core.Rng.fromSeed(7));
const made = new VideoMAEv2(config);
const sd = made.stateDict();
const teacherBytes = core.serializeSafetensors(new Map([...sd].map(([k, v]) => [`module.${k}`, v])));
tf.dispose([...sd.values()]);
made.dispose();
const grid = { frames: (video.frames - 1) / 2, height: video.height / 16, width: video.width / 16 };
const N = grid.frames * grid.height * grid.width;
const studentT = core.Rng.fromSeed(11).randomTensor([1, N, 48], 'normal');
const studentData = studentT.dataSync().slice();
const studentBytes = core.serializeSafetensors({ tokens: { dtype: 'F32', shape: [1, N, 48], data: studentData } });
for (const [name, bytes] of [['clip.safetensors', clipBytes], ['teacher.safetensors', teacherBytes], ['student.safetensors', studentBytes]]) fs.writeFileSync(path.join(work, name), bytes);

const teacher = VideoMAEv2.fromCheckpoint(teacherBytes, { config, name: 'teacher.safetensors' });
const x = tf.tidy(() => tf.sub(tf.div(tf.tensor(Float32Array.from(rgb), [1, video.frames, video.height, video.width, 3], 'float32'), 127.5), 1));
const enc = teacher.encodeVideo(x, { factor: 1, dropFirstFrame: true, normalize: true });
if (enc.grid.frames * enc.grid.height * enc.grid.width !== N) throw new Error(`teacher grid ${JSON.stringify(enc.grid)} is not ${JSON.stringify(grid)}`);
const nodeTrd = {};
for (const form of TRD_FORMS) {
  const l = trdLoss(studentT, enc.tokens, { grid, margin: 0.1, form });
  nodeTrd[form] = l.dataSync()[0];
  l.dispose();
}
tf.dispose([x, enc.tokens, studentT]);
teacher.dispose();
log(`Node (${nodeBackend.name}): TRD ${Object.entries(nodeTrd).map(([k, v]) => `${k} ${v.toPrecision(7)}`).join(', ')} (${secs()})`);

// ---- 2. the page, built and served ---------------------------------------------------------------------------
const { build } = await import('vite');
await build({ root, logLevel: 'warn', build: { outDir: path.join(work, 'site'), emptyOutDir: true } });
log(`page built (${secs()})`);
const TYPES = { '.html': 'text/html', '.js': 'text/javascript', '.css': 'text/css', '.wasm': 'application/wasm', '.safetensors': 'application/octet-stream' };
const server = http.createServer((req, res) => {
  const rel = decodeURIComponent(new URL(req.url, 'http://x').pathname).replace(/^\/+/, '') || 'index.html';
  const file = path.join(work, 'site', rel);
  if (!file.startsWith(path.join(work, 'site')) || !fs.existsSync(file) || fs.statSync(file).isDirectory()) {
    res.writeHead(404).end();
    return;
  }
  res.writeHead(200, { 'content-type': TYPES[path.extname(file)] ?? 'application/octet-stream' });
  fs.createReadStream(file).pipe(res);
});
await new Promise((r) => server.listen(0, '127.0.0.1', r));
const base = `http://127.0.0.1:${server.address().port}/`;

// ---- 3. chromium --------------------------------------------------------------------------------------------
const { chromium } = await import('playwright-core');
const browser = await chromium.launch({ executablePath: chromiumPath, headless: true, args: ['--no-sandbox', '--disable-dev-shm-usage', '--enable-unsafe-swiftshader'] });
const failures = [];
const ran = [];
/** One page run on `backend` (undefined: the page's own choice): the files in, TRD out, a click, a screenshot. */
async function runPage(backend) {
  const page = await browser.newPage({ viewport: { width: 1360, height: 860 } });
  const consoleErrors = [];
  page.on('console', (m) => m.type() === 'error' && consoleErrors.push(m.text()));
  page.on('pageerror', (e) => consoleErrors.push(String(e)));
  const waitReady = async (what) => {
    await page.waitForFunction(() => ['ready', 'error'].includes(window.__vrepa?.state), null, { timeout: 120_000 });
    const s = await page.evaluate(() => window.__vrepa);
    if (s.state === 'error') throw new Error(`page error after ${what}: ${s.error}`);
    return s;
  };
  try {
    await page.goto(`${base}?clip=none${backend ? `&backend=${backend}` : ''}`);
    let s = await waitReady('start');
    const skipped = await page.$eval('#backend', (el) => el.textContent);
    log(`page ${backend ? `(?backend=${backend}) ` : ''}started: ${skipped} (${secs()})`);
    const give = async (id, file) => {
      await page.evaluate(() => (window.__vrepa.state = 'busy'));
      await page.setInputFiles(`#${id}`, path.join(work, file));
      return waitReady(file);
    };
    await give('teacher-file', 'teacher.safetensors');
    await give('student-file', 'student.safetensors');
    s = await give('clip-file', 'clip.safetensors');
    log(`page on ${s.backend} computed TRD (${secs()}): ${Object.entries(s.trd ?? {}).map(([k, v]) => `${k} ${v.toPrecision(7)}`).join(', ')}`);
    if (JSON.stringify(s.grid) !== JSON.stringify(grid)) failures.push(`${s.backend}: page grid ${JSON.stringify(s.grid)} ≠ ${JSON.stringify(grid)}`);
    let worst = 0;
    for (const form of TRD_FORMS) {
      const a = s.trd?.[form];
      const b = nodeTrd[form];
      const rel = Math.abs(a - b) / Math.max(Math.abs(b), 1e-6);
      worst = Math.max(worst, rel);
      if (!(rel <= 1e-4)) failures.push(`${s.backend}: TRD ${form}: page ${a} vs Node ${b} (relative difference ${rel.toExponential(2)} > 1e-4)`);
    }
    log(`largest relative TRD difference, page (${s.backend}) vs Node (${nodeBackend.name}): ${worst.toExponential(2)}`);
    ran.push(`${s.backend} (TRD within ${worst.toExponential(1)} of Node's)`);
    const shown = await page.$eval('#trd', (el) => el.textContent);
    if (!shown.includes('official') || !shown.includes(nodeTrd.official.toPrecision(4).slice(0, 5))) failures.push(`${s.backend}: the TRD table does not show the official value: ${shown}`);
    // click a token: the top-left cell of the shown frame
    const box = await page.locator('#clip').boundingBox();
    await page.evaluate(() => (window.__vrepa.state = 'busy'));
    await page.mouse.click(box.x + 4, box.y + 4);
    s = await waitReady('click');
    const frame = Math.floor(s.token / (grid.height * grid.width));
    if (s.token !== frame * grid.height * grid.width) failures.push(`${s.backend}: clicking the top-left cell selected token ${s.token}, not the first token of frame ${frame}`);
    const status = await page.$eval('#status', (el) => el.textContent);
    if (!/one row of each relation matrix/.test(status)) failures.push(`${s.backend}: status after the click: ${status}`);
    const png = await page.screenshot({ fullPage: false });
    const v = pixelStats(png);
    log(`screenshot ${v.width}×${v.height}, pixel std ${v.std.toFixed(1)}, ${v.colors} distinct colours sampled`);
    if (!(v.std > 10 && v.colors > 50)) failures.push(`${s.backend}: the screenshot looks blank (pixel std ${v.std.toFixed(1)}, ${v.colors} colours)`);
    if (opts.screenshot && !backend) fs.writeFileSync(opts.screenshot, png);
    if (consoleErrors.length) failures.push(`${s.backend}: console errors: ${consoleErrors.slice(0, 3).join(' | ')}`);
    return s.backend;
  } finally {
    await page.close();
  }
}

try {
  const first = await runPage(opts.backend);
  // the page skips a software WebGL (headless chromium's SwiftShader) for wasm; check WebGL too when it exists
  if (!opts.backend && first !== 'webgl') {
    try {
      await runPage('webgl');
    } catch (e) {
      if (/no tfjs backend could start|webgl/i.test(String(e))) log(`WebGL not available in this chromium (${String(e).split('\n')[0]}): checked on ${first} only`);
      else throw e;
    }
  }
  // a video file through the browser's own decoder (<video>): made with ffmpeg when there is one
  const ffmpeg = process.env.FFMPEG || which('ffmpeg');
  if (ffmpeg) {
    const webm = path.join(work, 'testsrc.webm');
    const r = spawnSync(ffmpeg, ['-loglevel', 'error', '-y', '-f', 'lavfi', '-i', 'testsrc=size=320x240:rate=16', '-t', '2', '-c:v', 'libvpx', '-b:v', '200k', webm]);
    if (r.status === 0) {
      const page = await browser.newPage();
      await page.goto(`${base}?clip=none${opts.backend ? `&backend=${opts.backend}` : ''}`);
      await page.waitForFunction(() => window.__vrepa?.state === 'ready', null, { timeout: 60_000 });
      await page.evaluate(() => (window.__vrepa.state = 'busy'));
      await page.setInputFiles('#clip-file', webm);
      await page.waitForFunction(() => ['ready', 'error'].includes(window.__vrepa?.state), null, { timeout: 120_000 });
      const s = await page.evaluate(() => window.__vrepa);
      const label = await page.$eval('#clip-label', (el) => el.textContent);
      if (s.state !== 'ready' || !(s.trd?.official >= 0) || JSON.stringify(s.grid) !== JSON.stringify({ frames: 24, height: 10, width: 15 }))
        failures.push(`a webm dropped on the page: ${JSON.stringify({ state: s.state, error: s.error, grid: s.grid, trd: s.trd })}`);
      else log(`webm decoded by chromium: ${label}; 3600 tokens, official TRD ${s.trd.official.toPrecision(5)} (${secs()})`);
      await page.close();
    } else log(`no webm test clip (ffmpeg exited ${r.status}): video decoding not checked`);
  } else log('no ffmpeg to make a webm: video decoding not checked');
  if (opts['readme-screenshot']) {
    const page = await browser.newPage({ viewport: { width: 1360, height: 700 } });
    await page.goto(`${base}${opts.backend ? `?backend=${opts.backend}` : ''}`);
    await page.waitForFunction(() => window.__vrepa?.state === 'ready' && window.__vrepa?.trd, null, { timeout: 300_000 });
    const info = await page.$eval('#info', (el) => el.textContent);
    const st = await page.$eval('#status', (el) => el.textContent);
    log(`default view: ${info}; ${st}`);
    fs.writeFileSync(opts['readme-screenshot'], await page.screenshot({ fullPage: false }));
    log(`saved ${opts['readme-screenshot']}`);
    await page.close();
  }
} catch (e) {
  failures.push(String(e?.stack ?? e));
} finally {
  await browser.close();
  server.close();
  fs.rmSync(work, { recursive: true, force: true });
}
if (failures.length) {
  log(`FAILED (${secs()}):\n  - ${failures.join('\n  - ')}`);
  process.exit(1);
}
log(`passed in ${secs()}: chromium ${chromiumPath}; page backends ${ran.join(', ')}; Node backend ${nodeBackend.name}`);
process.exit(0);

/** Decode an 8-bit RGB(A) non-interlaced PNG (what chromium writes) and measure its pixels. */
function pixelStats(buf) {
  let off = 8;
  let width = 0;
  let height = 0;
  let channels = 0;
  const idat = [];
  while (off < buf.length) {
    const len = buf.readUInt32BE(off);
    const type = buf.toString('latin1', off + 4, off + 8);
    const data = buf.subarray(off + 8, off + 8 + len);
    if (type === 'IHDR') {
      width = data.readUInt32BE(0);
      height = data.readUInt32BE(4);
      if (data[8] !== 8 || data[12] !== 0) throw new Error('screenshot PNG is not 8-bit non-interlaced');
      channels = { 2: 3, 6: 4 }[data[9]];
      if (!channels) throw new Error(`screenshot PNG colour type ${data[9]} not handled`);
    } else if (type === 'IDAT') idat.push(data);
    off += 12 + len;
  }
  const raw = zlib.inflateSync(Buffer.concat(idat));
  const stride = width * channels;
  const px = new Uint8Array(height * stride);
  for (let y = 0; y < height; y++) {
    const f = raw[y * (stride + 1)];
    const line = raw.subarray(y * (stride + 1) + 1, (y + 1) * (stride + 1));
    for (let i = 0; i < stride; i++) {
      const a = i >= channels ? px[y * stride + i - channels] : 0;
      const b = y > 0 ? px[(y - 1) * stride + i] : 0;
      const c = i >= channels && y > 0 ? px[(y - 1) * stride + i - channels] : 0;
      const p = a + b - c;
      const pred = f === 0 ? 0 : f === 1 ? a : f === 2 ? b : f === 3 ? (a + b) >> 1 : Math.abs(p - a) <= Math.abs(p - b) && Math.abs(p - a) <= Math.abs(p - c) ? a : Math.abs(p - b) <= Math.abs(p - c) ? b : c;
      px[y * stride + i] = (line[i] + pred) & 255;
    }
  }
  let sum = 0;
  let sum2 = 0;
  let n = 0;
  const colors = new Set();
  for (let i = 0; i < px.length; i += channels) {
    const g = (px[i] + px[i + 1] + px[i + 2]) / 3;
    sum += g;
    sum2 += g * g;
    n++;
    if (i % (channels * 97) === 0) colors.add((px[i] << 16) | (px[i + 1] << 8) | px[i + 2]);
  }
  const mean = sum / n;
  return { width, height, std: Math.sqrt(Math.max(0, sum2 / n - mean * mean)), colors: colors.size };
}

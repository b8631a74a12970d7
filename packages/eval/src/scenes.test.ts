import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { parseCsvRecords } from './csv.js';
import { balancedTargets, clipStatesJson, generateDataset, readSceneLabels } from './dataset.js';
import { decodeVideo, encodeMp4, findFfmpeg, loadVideoTensor } from './ffmpeg.js';
import { physicsGenerateCommand } from './physics-command.js';
import { agentPatientDistance, generateLabelledClip, renderClip, renderFrame, sampleScene, simulateScene, SUBSETS, type ObjectState, type SceneSpec } from './scenes.js';

const video = { width: 96, height: 64, frames: 33, fps: 16, context: 10 };

describe('scenes', () => {
  it('are deterministic per seed: byte-identical frames and states', async () => {
    const a = await generateLabelledClip('roll', 42, 1, video);
    const b = await generateLabelledClip('roll', 42, 1, video);
    expect(b.seed).toBe(a.seed);
    expect(clipStatesJson('x', b, video)).toBe(clipStatesJson('x', a, video));
    const fa = renderClip(a.spec, a.sim, video);
    const fb = renderClip(b.spec, b.sim, video);
    expect(Buffer.from(fb).equals(Buffer.from(fa))).toBe(true);
    // regenerating from the recorded seed alone gives the same clip
    const again = await simulateScene(sampleScene('roll', a.seed), video);
    expect(again.states).toEqual(a.sim.states);
  });

  it('contact labels agree with an independent geometric check on the ground-truth states', async () => {
    const dt = 1 / video.fps;
    for (const subset of SUBSETS)
      for (const want of [0, 1] as const) {
        const { spec, sim } = await generateLabelledClip(subset, 7, want, video);
        const dist = sim.states.map((fr) => agentPatientDistance(spec, fr));
        // no contact during the context frames
        for (let f = 0; f < video.context; f++) expect(dist[f]!).toBeGreaterThan(0);
        if (want === 0) {
          expect(sim.firstContactFrame).toBe(-1);
          expect(Math.min(...dist)).toBeGreaterThan(0.05);
        } else {
          // the engine's first contact lies within the last frame interval: at frame f−1 the gap is at most what
          // the relative speed can close in one frame, and at frame f the shapes touch (or have just bounced apart)
          const f = sim.firstContactFrame;
          const ia = spec.objects.findIndex((o) => o.role === 'agent');
          const ip = spec.objects.findIndex((o) => o.role === 'patient');
          const rel = (fr: ObjectState[]) => Math.hypot(fr[ia]![3] - fr[ip]![3], fr[ia]![4] - fr[ip]![4]);
          const speed = Math.max(rel(sim.states[f - 1]!), rel(sim.states[f]!));
          const extent = 2; // m: a generous bound on the rotation-induced motion of box corners
          expect(dist[f - 1]!).toBeGreaterThan(0);
          expect(dist[f - 1]!).toBeLessThanOrEqual(speed * dt + 0.02 + (Math.abs(sim.states[f]![ip]![5]) * dt * extent));
          expect(Math.min(dist[f]!, dist[f - 1]!)).toBeLessThanOrEqual(speed * dt + 0.02);
          expect(Math.min(...dist.slice(f))).toBeLessThan(0.03);
        }
      }
  });

  it('runs in real time: a free-falling ball follows y0 − g·t²/2 at t = frame / fps, a thrown one keeps vx', async () => {
    const spec: SceneSpec = {
      subset: 'drop',
      seed: 0,
      background: [0, 0, 0],
      floor: [0, 0, 0],
      params: {},
      objects: ['agent', 'patient'].map((role, k) => ({
        id: role, role: role as 'agent' | 'patient', dynamic: true, parts: [{ kind: 'ball' as const, r: 0.2, dx: 0, dy: 0 }], color: [255, 0, 0] as [number, number, number],
        x: 2 + 3 * k, y: 4.5, angle: 0, vx: k ? 0 : 1.5, vy: 0, omega: 0, density: 1, friction: 0.5, restitution: 0, linearDamping: 0, angularDamping: 0,
      })),
    };
    const fps = 20;
    const sim = await simulateScene(spec, { width: 96, height: 64, frames: 9, fps });
    for (let f = 0; f < 9; f++) {
      const t = f / fps;
      expect(sim.states[f]![1]![1]).toBeCloseTo(4.5 - 0.5 * 9.81 * t * t, 2);
      expect(sim.states[f]![0]![0]).toBeCloseTo(2 + 1.5 * t, 3);
      expect(sim.states[f]![1]![4]).toBeCloseTo(-9.81 * t, 2);
    }
  });

  it('balanced targets: ⌊n/2⌋ of each label, in a seeded order', () => {
    for (const n of [1, 2, 7, 100]) {
      const t = balancedTargets(n, 3);
      const ones = t.filter((x) => x === 1).length;
      expect(Math.abs(2 * ones - n)).toBeLessThanOrEqual(1);
    }
    expect(balancedTargets(50, 1)).toEqual(balancedTargets(50, 1));
    expect(balancedTargets(50, 1)).not.toEqual(balancedTargets(50, 2));
  });

  it('renders anti-aliased shapes whose coverage matches their area', () => {
    const spec: SceneSpec = {
      subset: 'drop',
      seed: 0,
      background: [0, 0, 0],
      floor: [0, 0, 0],
      params: {},
      objects: [
        { id: 'agent', role: 'agent', dynamic: true, parts: [{ kind: 'ball', r: 0.5, dx: 0, dy: 0 }], color: [255, 0, 0], x: 3.03, y: 3.01, angle: 0, vx: 0, vy: 0, omega: 0, density: 1, friction: 0.5, restitution: 0, linearDamping: 0, angularDamping: 0 },
        { id: 'patient', role: 'patient', dynamic: true, parts: [{ kind: 'box', hx: 0.4, hy: 0.3, dx: 0, dy: 0, da: 0 }], color: [0, 255, 0], x: 5.5, y: 2.5, angle: 0.5, vx: 0, vy: 0, omega: 0, density: 1, friction: 0.5, restitution: 0, linearDamping: 0, angularDamping: 0 },
      ],
    };
    const W = 160;
    const H = 120;
    const img = renderFrame(spec, undefined, { width: W, height: H });
    const s = W / 8;
    let red = 0;
    let green = 0;
    let partial = 0;
    for (let i = 0; i < W * H; i++) {
      red += img[3 * i]! / 255;
      green += img[3 * i + 1]! / 255;
      if (img[3 * i]! > 0 && img[3 * i]! < 255) partial++;
    }
    expect(red / (Math.PI * 0.25 * s * s)).toBeCloseTo(1, 2);
    expect(green / (0.8 * 0.6 * s * s)).toBeCloseTo(1, 2);
    expect(partial).toBeGreaterThan(20); // edge pixels are blended, not aliased
  });
});

describe('dataset and ffmpeg', () => {
  it('writes balanced labels, states and dataset.json; same seed → identical files', async () => {
    const root = fs.mkdtempSync(path.join(os.tmpdir(), 'scenes-'));
    const run = (out: string) => generateDataset({ subsets: ['collide', 'contain'], n: 4, seed: 5, out, video: false, ...video });
    const rows = await run(path.join(root, 'a'));
    await run(path.join(root, 'b'));
    const la = fs.readFileSync(path.join(root, 'a', 'labels.csv'), 'utf8');
    expect(fs.readFileSync(path.join(root, 'b', 'labels.csv'), 'utf8')).toBe(la);
    expect(fs.readFileSync(path.join(root, 'b', 'contain_00003.states.json'), 'utf8')).toBe(fs.readFileSync(path.join(root, 'a', 'contain_00003.states.json'), 'utf8'));
    const { columns, records } = parseCsvRecords(la);
    expect(columns).toEqual(['clip', 'subset', 'seed', 'contact', 'first_contact_frame', 'params']);
    for (const s of ['collide', 'contain']) expect(records.filter((r) => r.subset === s && r.contact === '1')).toHaveLength(2);
    const st = JSON.parse(fs.readFileSync(path.join(root, 'a', `${rows[0]!.clip}.states.json`), 'utf8'));
    expect(st.states).toHaveLength(video.frames);
    expect(st.states[0]).toHaveLength(st.objects.length);
    expect(JSON.parse(records[0]!.params!)).toBeTypeOf('object');
    const lab = readSceneLabels(path.join(root, 'a'));
    expect(lab.clips).toEqual(rows.map((r) => r.clip));
    expect(Array.from(lab.labels)).toEqual(rows.map((r) => r.contact));
    expect(lab.groupNames).toEqual(['collide', 'contain']);
    expect(Array.from(lab.groups)).toEqual([0, 0, 0, 0, 1, 1, 1, 1]);
    expect(() => readSceneLabels(root)).toThrow(/labels\.csv' does not exist/);
  });

  it('without ffmpeg, says how to get one; FFMPEG pointing nowhere is named', () => {
    expect(() => findFfmpeg({ PATH: '' })).toThrow(/ffmpeg not found: set FFMPEG=\/path\/to\/ffmpeg, put ffmpeg on PATH/);
    expect(() => findFfmpeg({ FFMPEG: '/nonexistent/ffmpeg', PATH: '' })).toThrow(/FFMPEG is set to '\/nonexistent\/ffmpeg', which is not an executable file/);
  });

  it('pipes raw RGB frames to ffmpeg with the frame size and rate (checked with a stand-in ffmpeg)', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ff-'));
    const fake = path.join(dir, 'ffmpeg');
    // stand-in: records its arguments and copies stdin to the output file (the last argument)
    fs.writeFileSync(fake, `#!/bin/sh\necho "$@" > "${dir}/args.txt"\nfor last; do :; done\ncat > "$last"\n`, { mode: 0o755 });
    const frames = new Uint8Array(3 * 16 * 8 * 3).map((_, i) => i % 251);
    await encodeMp4(path.join(dir, 'out.mp4'), frames, 16, 8, 12, { ffmpeg: findFfmpeg({ FFMPEG: fake }).path });
    expect(Buffer.from(fs.readFileSync(path.join(dir, 'out.mp4'))).equals(Buffer.from(frames))).toBe(true);
    const args = fs.readFileSync(path.join(dir, 'args.txt'), 'utf8');
    expect(args).toContain('-f rawvideo -pix_fmt rgb24 -s 16x8 -r 12 -i pipe:0');
    expect(args).toContain('-c:v libx264 -pix_fmt yuv420p');
    await expect(encodeMp4(path.join(dir, 'x.mp4'), frames.subarray(1), 16, 8, 12, { ffmpeg: fake })).rejects.toThrow(/not a whole number of 16×8 RGB frames/);
  });

  it('decodes video through ffmpeg into frames and a [1, F, H, W, 3] tensor in [-1, 1] (stand-in ffmpeg)', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ffd-'));
    const raw = path.join(dir, 'frames.rgb');
    const frames = new Uint8Array(2 * 4 * 6 * 3).map((_, i) => (i * 7) % 256);
    fs.writeFileSync(raw, frames);
    const fake = path.join(dir, 'ffmpeg');
    fs.writeFileSync(fake, `#!/bin/sh\ncase "$*" in\n  *rawvideo*) cat "${raw}" ;;\n  *) echo "  Stream #0:0: Video: h264 (High), yuv420p(progressive), 6x4, 16 fps" >&2; exit 1 ;;\nesac\n`, { mode: 0o755 });
    const v = decodeVideo('clip.mp4', { ffmpeg: fake });
    expect([v.count, v.width, v.height]).toEqual([2, 6, 4]);
    expect(Buffer.from(v.frames).equals(Buffer.from(frames))).toBe(true);
    const t = await loadVideoTensor('clip.mp4', { ffmpeg: fake, maxFrames: 1 });
    expect(t.shape).toEqual([1, 1, 4, 6, 3]);
    const d = await t.data();
    expect(d[1]).toBeCloseTo(7 / 127.5 - 1, 6);
    t.dispose();
  });

  it('vrepa physics generate: --no-video works without ffmpeg; with video and no ffmpeg it fails with one clear line', async () => {
    const out = fs.mkdtempSync(path.join(os.tmpdir(), 'gen-'));
    const err: string[] = [];
    const o = process.stdout.write.bind(process.stdout);
    const e = process.stderr.write.bind(process.stderr);
    const env = { FFMPEG: process.env.FFMPEG, PATH: process.env.PATH };
    process.stdout.write = (() => true) as typeof process.stdout.write;
    process.stderr.write = ((s: string) => (err.push(String(s)), true)) as typeof process.stderr.write;
    try {
      expect(await physicsGenerateCommand.run(['--subset', 'drop', '--n', '2', '--seed', '3', '--out', out, '--no-video', '--size', '64x48', '--frames', '25', '--context', '8'])).toBe(0);
      expect(fs.readFileSync(path.join(out, 'labels.csv'), 'utf8').trim().split('\n')).toHaveLength(3);
      process.env.FFMPEG = '';
      process.env.PATH = '';
      expect(await physicsGenerateCommand.run(['--subset', 'drop', '--n', '2', '--out', out])).toBe(1);
      expect(await physicsGenerateCommand.run(['--subset', 'dominos', '--out', out])).toBe(2);
    } finally {
      process.stdout.write = o;
      process.stderr.write = e;
      process.env.FFMPEG = env.FFMPEG;
      process.env.PATH = env.PATH;
      if (env.FFMPEG === undefined) delete process.env.FFMPEG;
    }
    expect(err.join('')).toMatch(/ffmpeg not found/);
    expect(err.join('')).toMatch(/unknown subset 'dominos'/);
  });
});

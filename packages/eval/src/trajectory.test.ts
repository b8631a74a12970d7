import { describe, expect, it } from 'vitest';
import { clipStatesJson } from './dataset.js';
import { shapesCentroidArea } from './geometry.js';
import { generateLabelledClip, objectShapes, renderClip, renderFrame, SUBSETS, worldToPixel, type Clip, type ObjectState } from './scenes.js';
import { trackColours } from './tracker.js';
import { trajectoryMetrics, type StatesFile } from './trajectory.js';

const video = { width: 120, height: 80, frames: 25, fps: 12, context: 8 };

const clips = new Map<string, Clip>();
async function clip(subset: (typeof SUBSETS)[number], want: 0 | 1): Promise<Clip> {
  const key = `${subset}${want}`;
  if (!clips.has(key)) clips.set(key, await generateLabelledClip(subset, 21, want, video));
  return clips.get(key)!;
}
const statesOf = (c: Clip): StatesFile => JSON.parse(clipStatesJson('c', c, video));

function render(c: Clip, states: ObjectState[][], edit?: (f: number, frame: Uint8Array) => void): Uint8Array {
  const size = video.width * video.height * 3;
  const out = new Uint8Array(size * states.length);
  states.forEach((st, f) => {
    const fr = out.subarray(f * size, (f + 1) * size);
    renderFrame(c.spec, st, video, fr);
    edit?.(f, fr);
  });
  return out;
}

describe('colour tracker', () => {
  it('recovers object centroids within a pixel on rendered ground truth', async () => {
    for (const subset of SUBSETS) {
      const c = await clip(subset, subset === 'roll' || subset === 'drop' ? 1 : 0);
      const frames = renderClip(c.spec, c.sim, video);
      const idx = ['agent', 'patient'].map((r) => c.spec.objects.findIndex((o) => o.role === r));
      const palette = [c.spec.background, c.spec.floor, ...c.spec.objects.filter((_, i) => !idx.includes(i)).map((o) => o.color)];
      const tracks = trackColours(frames, video.width, video.height, idx.map((i) => c.spec.objects[i]!.color), { palette });
      tracks.forEach((fr, f) =>
        idx.forEach((oi, k) => {
          const s = c.sim.states[f]![oi]!;
          const [x, y] = shapesCentroidArea(objectShapes(c.spec.objects[oi]!, { x: s[0], y: s[1], angle: s[2] }));
          const [u, v] = worldToPixel(x, y, video);
          expect(fr[k]!.present).toBe(true);
          expect(fr[k]!.blobs).toBe(1);
          expect(Math.hypot(fr[k]!.cx - u, fr[k]!.cy - v)).toBeLessThan(1);
        }),
      );
    }
  });
});

describe('trajectory metrics', () => {
  it('find nothing wrong with the simulator’s own clip', async () => {
    const c = await clip('collide', 1);
    const m = trajectoryMetrics(renderClip(c.spec, c.sim, video), video.width, video.height, statesOf(c));
    expect(m.frames).toBe(video.frames);
    for (const o of m.objects) {
      expect(o.meanPositionErrorPx).toBeLessThan(0.5);
      expect([o.missingFrames, o.extraBlobFrames, o.jumpFrames]).toEqual([0, 0, 0]);
      expect(o.maxAreaChange).toBeLessThan(0.1);
    }
    expect(m.maxInterpenetrationM).toBe(0);
  });

  it('work at another resolution (ground truth scaled)', async () => {
    const c = await clip('drop', 1);
    const big = { ...video, width: 240, height: 160 };
    const m = trajectoryMetrics(renderClip(c.spec, c.sim, big), big.width, big.height, statesOf(c));
    for (const o of m.objects) expect(o.meanPositionErrorPx).toBeLessThan(0.6);
  });

  it('detect a teleport, a vanishing object, growth and interpenetration', async () => {
    const c = await clip('collide', 0);
    const gt = statesOf(c);
    const ia = c.spec.objects.findIndex((o) => o.role === 'agent');
    const ip = c.spec.objects.findIndex((o) => o.role === 'patient');
    // teleport: agent displaced by 0.8 m in frame 15 only
    const tele = c.sim.states.map((st, f) => st.map((s, i) => (i === ia && f === 15 ? ([s[0] + 0.8, s[1] + 0.3, ...s.slice(2)] as ObjectState) : s)));
    const mt = trajectoryMetrics(render(c, tele), video.width, video.height, gt);
    expect(mt.objects[0]!.jumpFrames).toBeGreaterThanOrEqual(2);
    expect(mt.objects[0]!.positionErrorPx[15]).toBeGreaterThan(0.8 * 15 - 1);
    expect(mt.objects[1]!.jumpFrames).toBe(0);
    // vanishing: the patient painted over with the background from frame 18
    const bg = c.spec.background;
    const gone = render(c, c.sim.states, (f, fr) => {
      if (f < 18) return;
      const p = c.spec.objects[ip]!.color;
      for (let i = 0; i < fr.length; i += 3)
        if (Math.hypot(fr[i]! - p[0], fr[i + 1]! - p[1], fr[i + 2]! - p[2]) < 120) fr.set(bg, i);
    });
    const mv = trajectoryMetrics(gone, video.width, video.height, gt);
    expect(mv.objects[1]!.missingFrames).toBe(video.frames - 18);
    // growth: the agent's radius × 1.5 from frame 12
    const grown = c.sim.states.map((st, f) => {
      const spec = f >= 12 ? { ...c.spec, objects: c.spec.objects.map((o, i) => (i === ia ? { ...o, parts: o.parts.map((p) => (p.kind === 'ball' ? { ...p, r: p.r * 1.5 } : p)) } : o)) } : c.spec;
      return renderFrame(spec, st, video);
    });
    const mg = trajectoryMetrics(Buffer.concat(grown), video.width, video.height, gt);
    expect(mg.objects[0]!.maxAreaChange).toBeGreaterThan(1);
    // interpenetration: the agent moved onto the patient in the last frames
    const pen = c.sim.states.map((st, f) => st.map((s, i) => (i === ia && f >= video.frames - 3 ? ([st[ip]![0] - 0.05, st[ip]![1], ...s.slice(2)] as ObjectState) : s)));
    const mp = trajectoryMetrics(render(c, pen), video.width, video.height, gt);
    expect(mp.interpenetrationFrames).toBeGreaterThanOrEqual(1);
    expect(mp.maxInterpenetrationM).toBeGreaterThan(0.1);
  });

  it('rejects too few frames and a states file without an agent', async () => {
    const c = await clip('collide', 1);
    expect(() => trajectoryMetrics(new Uint8Array(video.width * video.height * 3 * 2), video.width, video.height, statesOf(c))).toThrow(/at least 3 whole 120×80 RGB frames/);
    const gt = statesOf(c);
    gt.objects = gt.objects.filter((o) => o.role !== 'agent');
    expect(() => trajectoryMetrics(renderClip(c.spec, c.sim, video), video.width, video.height, gt)).toThrow(/has no agent object/);
  });
});

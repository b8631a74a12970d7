/**
 * compiledForward: the transformer's inference forward traced into one TensorFlow graph per input shape.
 * Expectations come from `model.forward` eagerly on the same inputs: equal bits with oneDNN off (checked in a
 * child process, since oneDNN is fixed per process), equal within float32 rounding with oneDNN on.
 */
import { createRequire } from 'node:module';
import { pathToFileURL } from 'node:url';
import * as tf from '@tensorflow/tfjs';
import { afterEach, describe, expect, it } from 'vitest';
import { Rng, graphFunctionsAvailable, runInChild } from '@vrepa/core';
import { CogVideoXTransformer3DModel } from './model.js';
import { compiledForward } from './compiled-forward.js';

const TINY = { num_attention_heads: 2, attention_head_dim: 8, num_layers: 2, in_channels: 8, out_channels: 8, text_embed_dim: 8, time_embed_dim: 8, sample_height: 4, sample_width: 4, sample_frames: 9, max_text_seq_length: 3 };
const ALIGN = { align_layer: 1, align_dims: [8], projector_dim: 8 };
const tiny = (extra: Record<string, unknown> = {}) => new CogVideoXTransformer3DModel({ ...TINY, ...extra }, { rng: Rng.fromSeed(0), align: ALIGN });
const handles = () => (tf.backend() as unknown as { binding: { getNumOfTensors(): number } }).binding.getNumOfTensors();

const saved = process.env.VREPA_TF_GRAPH;
afterEach(() => {
  if (saved === undefined) delete process.env.VREPA_TF_GRAPH;
  else process.env.VREPA_TF_GRAPH = saved;
});
const available = (() => {
  try {
    return graphFunctionsAvailable();
  } catch {
    return false;
  }
})();

/** max |a − b| / max(1, |a|) over two tensors' values */
function relDiff(a: tf.Tensor, b: tf.Tensor): number {
  expect(b.shape).toEqual(a.shape);
  const x = a.dataSync();
  const y = b.dataSync();
  let m = 0;
  for (let i = 0; i < x.length; i++) m = Math.max(m, Math.abs(x[i]! - y[i]!) / Math.max(1, Math.abs(x[i]!)));
  return m;
}

describe('compiledForward', () => {
  it('graph functions are available wherever the patched binding runs (VREPA_REQUIRE_NATIVE=1), so the graph tests below cannot skip silently', () => {
    if (process.env.VREPA_REQUIRE_NATIVE === '1' && tf.getBackend() === 'tensorflow') expect(available, 'rebuild with `vrepa backend install-native`').toBe(true);
  });

  it('checks its options up front: alignLayer range, a projector for projected outputs', () => {
    const m = new CogVideoXTransformer3DModel(TINY, { rng: Rng.fromSeed(0) });
    expect(() => compiledForward(m, { alignLayer: 3 })).toThrow(/alignLayer 3 is out of range/);
    expect(() => compiledForward(m, { alignLayer: 1 })).toThrow(/no projector/);
    const f = compiledForward(m, { alignLayer: 1, projectAligned: false });
    expect(f.options).toEqual({ alignLayer: 1, projectAligned: false, rotary: 'pipeline' });
    expect(f.model).toBe(m);
    f.dispose();
    m.dispose();
  });

  it('with VREPA_TF_GRAPH=0 it is model.forward: same bits, mode off', () => {
    process.env.VREPA_TF_GRAPH = '0';
    const m = tiny();
    const f = compiledForward(m, { alignLayer: 1 });
    const lat = tf.randomNormal([2, 3, 4, 4, 8], 0, 1, 'float32', 1);
    const text = tf.randomNormal([2, 3, 8], 0, 1, 'float32', 2);
    const tp = m.timeProjection([10, 900]);
    const a = f(lat, text, tp);
    const b = m.forward(lat, text, [10, 900], { alignLayer: 1 });
    expect(f.mode()).toBe('off');
    expect(Array.from(a.sample.dataSync())).toEqual(Array.from(b.sample.dataSync()));
    expect(Array.from(a.aligned!.dataSync())).toEqual(Array.from(b.aligned!.dataSync()));
    expect(Array.from(a.alignHidden!.dataSync())).toEqual(Array.from(b.alignHidden!.dataSync()));
    tf.dispose([lat, text, tp, a.sample, a.aligned!, a.alignHidden!, b.sample, b.aligned!, b.alignHidden!]);
    f.dispose();
    m.dispose();
  });

  describe.skipIf(!available)('as a graph (binding patch 34)', () => {
    for (const [name, extra] of [
      ['2B style (sincos positions)', {}],
      ['5B style (rotary)', { use_rotary_positional_embeddings: true, attention_head_dim: 16 }],
    ] as const) {
      it(`${name}: a graph from the third call, outputs as forward's within rounding over calls with other inputs and timesteps; no tensor leaks`, () => {
        delete process.env.VREPA_TF_GRAPH;
        const m = tiny(extra);
        const reasons: string[] = [];
        const fAlign = compiledForward(m, { alignLayer: 1, onFallback: (r) => reasons.push(r) });
        const fPlain = compiledForward(m, { alignLayer: 0, onFallback: (r) => reasons.push(r) });
        const text = tf.randomNormal([2, 3, 8], 0, 1, 'float32', 3);
        const modes: string[] = [];
        let worst = 0;
        let level = 0;
        let h0 = 0;
        for (let k = 0; k < 6; k++) {
          if (k === 3) {
            level = tf.memory().numTensors;
            h0 = handles();
          }
          tf.tidy(() => {
            const lat = tf.randomNormal([2, 3, 4, 4, 8], 0, 1, 'float32', 10 + k);
            const ts = [50 + 150 * k, 999 - 120 * k];
            const tp = m.timeProjection(ts);
            const a = fAlign(lat, text, tp);
            const p = fPlain(lat, text, tp);
            modes.push(fAlign.mode([lat, text, tp]));
            const e = m.forward(lat, text, ts, { alignLayer: 1 });
            expect(Object.keys(a).sort()).toEqual(['aligned', 'alignHidden', 'sample'].sort());
            expect(Object.keys(p)).toEqual(['sample']);
            worst = Math.max(worst, relDiff(e.sample, a.sample), relDiff(e.aligned!, a.aligned!), relDiff(e.alignHidden!, a.alignHidden!), relDiff(e.sample, p.sample));
          });
        }
        // tracing twice (the position tables made beforehand, so the first two traces match), then graph runs
        expect(modes).toEqual(['trace', 'graph', 'graph', 'graph', 'graph', 'graph']);
        expect(fPlain.mode()).toBe('graph');
        expect(reasons).toEqual([]);
        expect(worst).toBeLessThan(1e-5);
        expect(tf.memory().numTensors).toBe(level);
        expect(handles()).toBe(h0);
        // dispose removes the graphs: a later call traces again (and still answers)
        fAlign.dispose();
        expect(fAlign.mode()).toBe('trace');
        tf.tidy(() => {
          const lat = tf.randomNormal([1, 2, 4, 4, 8], 0, 1, 'float32', 30);
          const out = fAlign(lat, tf.slice(text, [0], [1]), m.timeProjection([400]));
          expect(out.sample.shape).toEqual([1, 2, 4, 4, 8]);
        });
        fAlign.dispose();
        fPlain.dispose();
        text.dispose();
        m.dispose();
      });
    }

    it('a second input shape gets its own graph; a bad input raises forward\'s error and the forward stays compiled', () => {
      delete process.env.VREPA_TF_GRAPH;
      const m = tiny();
      const f = compiledForward(m, { alignLayer: 0 });
      const run = (B: number, F: number, seed: number) =>
        tf.tidy(() => {
          f(tf.randomNormal([B, F, 4, 4, 8], 0, 1, 'float32', seed), tf.randomNormal([B, 3, 8], 0, 1, 'float32', seed + 1), m.timeProjection(new Array(B).fill(seed)));
        });
      for (let k = 0; k < 3; k++) run(2, 3, k);
      const other = [tf.zeros([1, 1, 4, 4, 8]), tf.zeros([1, 3, 8]), m.timeProjection([5])] as [tf.Tensor, tf.Tensor, tf.Tensor];
      expect(f.mode(other)).toBe('trace');
      for (let k = 0; k < 3; k++) run(1, 1, 10 + k);
      expect(f.mode(other)).toBe('graph');
      expect(() => f(tf.zeros([1, 1, 4, 4, 7]), other[1], other[2])).toThrow(/channel axis/);
      expect(() => f(other[0], other[1], m.timeProjection([1, 2]))).toThrow(/timeProjection: expected \[1, 16\]/);
      expect(f.reason).toBeUndefined();
      expect(f.mode(other)).toBe('graph');
      tf.dispose(other);
      f.dispose();
      m.dispose();
    });
  });

  it.skipIf(!available)('with oneDNN off a compiled forward gives the eager forward\'s bits, call after call (other inputs and timesteps each call)', async () => {
    const url = new URL('../index.ts', import.meta.url).href;
    const tfUrl = pathToFileURL(createRequire(import.meta.url).resolve('@tensorflow/tfjs')).href;
    const body = `await core.initBackend({ quiet: true, oneDnn: false });
const tfm = await import(${JSON.stringify(tfUrl)}); const tf = tfm.default ?? tfm;
const { CogVideoXTransformer3DModel, compiledForward } = await import(${JSON.stringify(url)});
const TINY = ${JSON.stringify(TINY)};
const out = {};
for (const [name, extra] of [['sincos', {}], ['rotary', { use_rotary_positional_embeddings: true, attention_head_dim: 16 }]]) {
  const m = new CogVideoXTransformer3DModel({ ...TINY, ...extra }, { align: ${JSON.stringify(ALIGN)} });
  const fA = compiledForward(m, { alignLayer: 1 }); const fP = compiledForward(m, { alignLayer: 0 });
  const same = []; const modes = [];
  const text = tf.randomNormal([2, 3, 8], 0, 1, 'float32', 3);
  for (let k = 0; k < 6; k++) {
    const lat = tf.randomNormal([2, 3, 4, 4, 8], 0, 1, 'float32', 10 + k);
    const ts = [50 + 150 * k, 999 - 120 * k];
    const tp = m.timeProjection(ts);
    const a = fA(lat, text, tp); const p = fP(lat, text, tp);
    modes.push(fA.mode([lat, text, tp]) + '/' + fP.mode([lat, text, tp]));
    process.env.VREPA_TF_GRAPH = '0'; const e = m.forward(lat, text, ts, { alignLayer: 1 }); delete process.env.VREPA_TF_GRAPH;
    const eq = (x, y) => { const u = x.dataSync(), v = y.dataSync(); return u.length === v.length && u.every((z, i) => Object.is(z, v[i])); };
    same.push(eq(a.sample, e.sample) && eq(a.aligned, e.aligned) && eq(a.alignHidden, e.alignHidden) && eq(p.sample, e.sample));
    tf.dispose([lat, tp, a.sample, a.aligned, a.alignHidden, p.sample, e.sample, e.aligned, e.alignHidden]);
  }
  fA.dispose(); fP.dispose(); text.dispose(); m.dispose();
  out[name] = { same, modes };
}
emit({ ...out, oneDnn: process.env.TF_ENABLE_ONEDNN_OPTS });`;
    const r = await runInChild<{ sincos: { same: boolean[]; modes: string[] }; rotary: { same: boolean[]; modes: string[] }; oneDnn: string }>(body, { TF_ENABLE_ONEDNN_OPTS: '0', VREPA_TF_GRAPH: '' }, 300_000);
    expect(r.error).toBeUndefined();
    expect(r.value!.oneDnn).toBe('0');
    for (const k of ['sincos', 'rotary'] as const) {
      expect(r.value![k].modes.slice(1)).toEqual(new Array(5).fill('graph/graph'));
      expect(r.value![k].same).toEqual([true, true, true, true, true, true]);
    }
  });
});

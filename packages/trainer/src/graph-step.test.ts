/**
 * Training steps as one TensorFlow graph (issue 15's fifth wave: Trainer.graphStep on core's compileFunction).
 * The expectation is the eager step of the same trainer config and seed (VREPA_TF_GRAPH=0): equal bits with
 * oneDNN off (checked in a child process, since oneDNN is fixed per process), equal within float32 rounding with
 * oneDNN on (TensorFlow's graph rewrite picks other oneDNN kernels). Resume stays bit-exact with graph steps:
 * resume.test.ts runs them (the default wherever binding patch 34 is built).
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { afterEach, describe, expect, it } from 'vitest';
import { runInChild } from '@vrepa/core';
import { presetConfig } from './config.js';
import { Trainer } from './trainer.js';

const tmp = () => fs.mkdtempSync(path.join(os.tmpdir(), 'vrepa-graph-step-'));
const patched = tf.getBackend() === 'tensorflow' && typeof (tf.backend() as unknown as { binding: { graphTraceBegin?: unknown } }).binding.graphTraceBegin === 'function';
const saved = process.env.VREPA_TF_GRAPH;
afterEach(() => {
  if (saved === undefined) delete process.env.VREPA_TF_GRAPH;
  else process.env.VREPA_TF_GRAPH = saved;
});
const make = (over: Parameters<typeof presetConfig>[1] = {}, log: (m: string) => void = () => {}) => new Trainer(presetConfig('tiny', over), { out: tmp(), progress: false, log, maxSteps: 50 });

describe('binding patch 34 availability', () => {
  it('is there wherever the patched binding runs (VREPA_REQUIRE_NATIVE=1 from test-all), so the graph tests here cannot skip silently', () => {
    if (process.env.VREPA_REQUIRE_NATIVE === '1' && tf.getBackend() === 'tensorflow') expect(patched, 'binding.graphTraceBegin missing (rebuild with `vrepa backend install-native`) or VREPA_TF_GRAPH=0 set').toBe(true);
  });
});

describe('graph steps where they do not apply', () => {
  it('are off on other backends, with VREPA_TF_GRAPH=0, and for a model with dropout; those trainers step eagerly', () => {
    process.env.VREPA_TF_GRAPH = '0';
    const t = make();
    expect(t.graphMode()).toBe('off');
    expect(t.trainStep().skipped).toBe(false);
    t.dispose();
    if (!patched) return;
    process.env.VREPA_TF_GRAPH = '1';
    const d = make({ model: { transformer: { ...(presetConfig('tiny').model.transformer as object), dropout: 0.1 } } });
    expect(d.graphMode()).toBe('off'); // its masks are JS draws inside the forward
    d.dispose();
  });
});

describe.skipIf(!patched)('graph steps (binding patch 34)', () => {
  it('trace, then run as one graph: losses and weights follow the eager trainer within rounding (oneDNN on: its graph runs other oneDNN kernels); no tensors leak', () => {
    const notes: string[] = [];
    process.env.VREPA_TF_GRAPH = '0';
    const eager = make();
    delete process.env.VREPA_TF_GRAPH; // the default
    const graph = make({}, (m) => notes.push(m));
    const modes: string[] = [];
    let level = 0;
    for (let i = 0; i < 6; i++) {
      process.env.VREPA_TF_GRAPH = '0';
      const a = eager.trainStep();
      delete process.env.VREPA_TF_GRAPH;
      const b = graph.trainStep();
      modes.push(graph.graphMode());
      expect(Math.abs(b.loss! - a.loss!)).toBeLessThanOrEqual(1e-4 * Math.abs(a.loss!));
      expect(Math.abs(b.grad_norm! - a.grad_norm!)).toBeLessThanOrEqual(1e-3 * Math.abs(a.grad_norm!));
      if (i === 3) level = tf.memory().numTensors;
    }
    expect(tf.memory().numTensors).toBe(level);
    expect(modes.slice(3)).toEqual(['graph', 'graph', 'graph']);
    expect(notes.filter((n) => n.includes('eagerly'))).toEqual([]);
    // AdamW divides by √v: where a gradient is near zero, a rounding difference in it moves the update by up
    // to the step size, so weights agree within lr per step, and almost all of them much closer
    const lr = presetConfig('tiny').optim.learning_rate;
    const pa = [...eager.params.values()];
    let close = 0;
    let all = 0;
    [...graph.params.values()].forEach((v, i) => {
      const x = v.dataSync();
      const y = pa[i]!.dataSync();
      for (let j = 0; j < x.length; j++) {
        const d = Math.abs(x[j]! - y[j]!);
        expect(d).toBeLessThanOrEqual(6 * lr);
        all++;
        if (d <= 1e-6 + 1e-4 * Math.abs(y[j]!)) close++;
      }
    });
    expect(close / all).toBeGreaterThan(0.99);
    eager.dispose();
    graph.dispose();
  });

  it('a step with a non-finite hook runs eagerly and is skipped as before; graph steps go on after it', () => {
    const t = new Trainer(presetConfig('tiny'), { out: tmp(), progress: false, log: () => {}, maxSteps: 50, hooks: { injectNonFinite: (s) => s === 5 } });
    const logs = Array.from({ length: 6 }, () => t.trainStep());
    expect(logs.map((l) => l.skipped)).toEqual([false, false, false, false, true, false]);
    expect(t.graphMode()).toBe('graph');
    t.dispose();
  });

  it('with oneDNN off (the default there) a graph-stepped run equals the eager run bit for bit: losses, gradient norms, weights', async () => {
    const trainerUrl = new URL('./index.ts', import.meta.url).href;
    const body = `await core.initBackend({ quiet: true, oneDnn: false });
const { Trainer, presetConfig } = await import(${JSON.stringify(trainerUrl)});
const fs = await import('node:fs'); const os = await import('node:os'); const path = await import('node:path');
const make = () => new Trainer(presetConfig('tiny'), { out: fs.mkdtempSync(path.join(os.tmpdir(), 'vrepa-graph-child-')), progress: false, log: () => {}, maxSteps: 50 });
process.env.VREPA_TF_GRAPH = '0'; const eager = make();
delete process.env.VREPA_TF_GRAPH; const graph = make();
const same = []; const modes = [];
for (let i = 0; i < 6; i++) {
  process.env.VREPA_TF_GRAPH = '0'; const a = eager.trainStep();
  delete process.env.VREPA_TF_GRAPH; const b = graph.trainStep();
  modes.push(graph.graphMode());
  same.push(Object.is(a.loss, b.loss) && Object.is(a.grad_norm, b.grad_norm));
}
const pe = [...eager.params.values()];
const weights = [...graph.params.values()].every((v, i) => { const x = v.dataSync(), y = pe[i].dataSync(); return x.every((u, j) => Object.is(u, y[j])); });
emit({ same, modes, weights, oneDnn: process.env.TF_ENABLE_ONEDNN_OPTS });`;
    const r = await runInChild<{ same: boolean[]; modes: string[]; weights: boolean; oneDnn: string }>(body, { TF_ENABLE_ONEDNN_OPTS: '0', VREPA_TF_GRAPH: '' }, 300_000);
    expect(r.error).toBeUndefined();
    expect(r.value!.oneDnn).toBe('0');
    expect(r.value!.modes.slice(3)).toEqual(['graph', 'graph', 'graph']);
    expect(r.value!.same).toEqual([true, true, true, true, true, true]);
    expect(r.value!.weights).toBe(true);
  });
});

/**
 * Binding patch 34 (graph-function.ts): a traced function run as one TensorFlow graph. Expectations come from
 * the same function run eagerly (TensorFlow's own eager kernels): equal bits with oneDNN off (the graph runs
 * the recorded kernels; checked in a child process, since oneDNN is fixed per process), equal within float32
 * rounding with oneDNN on (its graph rewrite picks other kernels, which is why graphs are opt-in there).
 */
import * as tf from '@tensorflow/tfjs';
import { afterEach, describe, expect, it } from 'vitest';
import { GraphFunctionError, compileFunction, graphFunctionsAvailable, graphRunOptions, traceGraph } from './graph-function.js';
import { runInChild } from './probe.js';

const patched = tf.getBackend() === 'tensorflow' && typeof (tf.backend() as unknown as { binding: { graphTraceBegin?: unknown } }).binding.graphTraceBegin === 'function';
const handles = () => (tf.backend() as unknown as { binding: { getNumOfTensors(): number } }).binding.getNumOfTensors();
const saved = process.env.VREPA_TF_GRAPH;
afterEach(() => {
  if (saved === undefined) delete process.env.VREPA_TF_GRAPH;
  else process.env.VREPA_TF_GRAPH = saved;
});

describe('binding patch 34 availability', () => {
  it('is there wherever the patched tfjs-node binding runs (VREPA_REQUIRE_NATIVE=1 from test-all), so the suite below cannot skip silently', () => {
    if (process.env.VREPA_REQUIRE_NATIVE === '1' && tf.getBackend() === 'tensorflow') expect(patched, 'binding.graphTraceBegin missing: rebuild with `vrepa backend install-native`').toBe(true);
    if (tf.getBackend() !== 'tensorflow') expect(graphFunctionsAvailable()).toBe(false);
  });
});

/** A two-layer MLP's loss and its gradients: matMuls, a bias from a JS number, softmax, reductions, and tfjs' gradient ops. */
function mlpStep(w1: tf.Variable, w2: tf.Variable) {
  return (xs: tf.Tensor[]): tf.Tensor[] => {
    const { value, grads } = tf.variableGrads(() => {
      const h = tf.relu(tf.add(tf.matMul(xs[0]!, w1), 0.5));
      const y = tf.softmax(tf.matMul(h, w2));
      const mu = tf.mean(y, -1, true);
      return tf.mean(tf.square(tf.sub(y, mu))) as tf.Scalar;
    }, [w1, w2]);
    return [value, grads[w1.name]!, grads[w2.name]!];
  };
}

describe('graph function settings', () => {
  it('a misspelt VREPA_TF_GRAPH / VREPA_TF_GRAPH_EXECUTOR / VREPA_TF_GRAPH_GRAPPLER is one named error, not silently ignored', () => {
    const keep = { e: process.env.VREPA_TF_GRAPH_EXECUTOR, g: process.env.VREPA_TF_GRAPH_GRAPPLER };
    try {
      process.env.VREPA_TF_GRAPH = 'yes';
      expect(() => graphFunctionsAvailable()).toThrow(/^VREPA_TF_GRAPH must be 0 or 1, got 'yes'$/);
      delete process.env.VREPA_TF_GRAPH;
      process.env.VREPA_TF_GRAPH_EXECUTOR = 'fast';
      expect(() => graphRunOptions()).toThrow(/^VREPA_TF_GRAPH_EXECUTOR must be 'single' or 'default', got 'fast'$/);
      process.env.VREPA_TF_GRAPH_EXECUTOR = 'single';
      process.env.VREPA_TF_GRAPH_GRAPPLER = 'on';
      expect(() => graphRunOptions()).toThrow(/^VREPA_TF_GRAPH_GRAPPLER must be 0 or 1, got 'on'$/);
      process.env.VREPA_TF_GRAPH_GRAPPLER = '1';
      expect(graphRunOptions()).toBe(3); // bit 1 Grappler, bit 2 single-threaded executor
      delete process.env.VREPA_TF_GRAPH_EXECUTOR;
      delete process.env.VREPA_TF_GRAPH_GRAPPLER;
      expect(graphRunOptions()).toBe(0);
    } finally {
      for (const [k, v] of [['VREPA_TF_GRAPH_EXECUTOR', keep.e], ['VREPA_TF_GRAPH_GRAPPLER', keep.g]] as const) {
        if (v === undefined) delete process.env[k];
        else process.env[k] = v;
      }
    }
  });
});

describe.skipIf(!patched)('graph functions (binding patch 34)', () => {
  it('a traced step run as a graph gives the eager values (within rounding with oneDNN on), and leaks nothing', () => {
    process.env.VREPA_TF_GRAPH = '1';
    const w1 = tf.variable(tf.randomNormal([16, 32], 0, 1, 'float32', 1));
    const w2 = tf.variable(tf.randomNormal([32, 8], 0, 1, 'float32', 2));
    const x = tf.randomNormal([4, 16], 0, 1, 'float32', 3);
    const fn = mlpStep(w1, w2);
    const { outputs, graph } = traceGraph(fn, [x, w1, w2]);
    expect(graph.trace.captured).toEqual([]);
    expect(graph.trace.ops).toContain('Softmax');
    const eager = tf.tidy(() => fn([x]));
    const run = graph.run([x, w1, w2]);
    for (let i = 0; i < 3; i++) {
      expect(run[i]!.shape).toEqual(eager[i]!.shape);
      const a = eager[i]!.dataSync();
      const b = run[i]!.dataSync();
      const c = outputs[i]!.dataSync();
      for (let j = 0; j < a.length; j++) {
        expect(c[j]).toBe(a[j]); // the traced call is the eager call
        expect(Math.abs(b[j]! - a[j]!)).toBeLessThanOrEqual(1e-6 * Math.max(1, Math.abs(a[j]!)));
      }
    }
    tf.dispose([...outputs, ...eager, ...run]);
    // the graph follows the variables' current values
    w1.assign(tf.mul(w1, 0.5));
    const [l1] = graph.run([x, w1, w2]);
    const [l0] = tf.tidy(() => fn([x]));
    expect(Math.abs(l1!.dataSync()[0]! - l0!.dataSync()[0]!)).toBeLessThan(1e-6);
    tf.dispose([l1!, l0!]);
    const t0 = tf.memory().numTensors;
    const h0 = handles();
    for (let k = 0; k < 5; k++) tf.dispose(graph.run([x, w1, w2]));
    expect(tf.memory().numTensors).toBe(t0);
    expect(handles()).toBe(h0);
    graph.dispose();
    expect(() => graph.run([x, w1, w2])).toThrow(/disposed/);
    expect(() => graph.run([x])).toThrow(/disposed/);
    tf.dispose([w1, w2, x]);
  });

  it('compileFunction traces twice, then runs the graph; a value made from JS that changes between calls keeps it eager, with the reason', () => {
    process.env.VREPA_TF_GRAPH = '1';
    const w = tf.variable(tf.randomNormal([8, 8], 0, 1, 'float32', 4));
    const x = tf.randomNormal([2, 8], 0, 1, 'float32', 5);
    const f = compileFunction((xs) => [tf.sum(tf.matMul(xs[0]!, w))]);
    const modes: string[] = [];
    const values: number[] = [];
    for (let k = 0; k < 4; k++) {
      const [y] = f([x, w]);
      modes.push(f.mode([x, w]));
      values.push(y!.dataSync()[0]!);
      y!.dispose();
    }
    expect(modes).toEqual(['trace', 'graph', 'graph', 'graph']);
    expect(f.reason).toBeUndefined();
    expect(Math.abs(values[3]! - values[0]!)).toBeLessThan(1e-5 * Math.max(1, Math.abs(values[0]!)));
    expect(f.graphs()).toHaveLength(1);
    f.dispose();

    let draw = 0;
    const reasons: string[] = [];
    const g = compileFunction((xs) => [tf.mul(xs[0]!, tf.scalar(++draw))], { onFallback: (r) => reasons.push(r) });
    const got: number[] = [];
    for (let k = 0; k < 3; k++) {
      const [y] = g([x]);
      got.push(y!.dataSync()[0]! / x.dataSync()[0]!);
      y!.dispose();
    }
    expect(g.mode()).toBe('eager');
    expect(reasons).toHaveLength(1);
    expect(reasons[0]).toMatch(/constant 0 .*made from JS values/);
    // every call ran with its own draw: nothing frozen
    got.forEach((v, i) => expect(v).toBeCloseTo(i + 1, 5));
    tf.dispose([w, x]);
  });

  it('reading values back into JS while tracing is refused by name; the trace is abandoned and nothing leaks', () => {
    process.env.VREPA_TF_GRAPH = '1';
    const x = tf.relu(tf.ones([3]));
    const t0 = tf.memory().numTensors;
    const h0 = handles();
    expect(() =>
      traceGraph((xs) => {
        const y = tf.exp(xs[0]!);
        if (y.dataSync()[0]! > 0) return [tf.add(y, 1)];
        return [y];
      }, [x]),
    ).toThrow(GraphFunctionError);
    expect(() => traceGraph((xs) => [tf.tensor(Array.from(tf.exp(xs[0]!).dataSync()))], [x])).toThrow(/tensorDataSync/);
    // a later trace works (the binding's trace state was reset)
    const { outputs, graph } = traceGraph((xs) => [tf.exp(xs[0]!)], [x]);
    tf.dispose(outputs);
    graph.dispose();
    expect(handles()).toBe(h0);
    expect(tf.memory().numTensors).toBe(t0);
    x.dispose();
  });

  it('a gather traces (core\'s GatherV2 leaves the bounds check to TensorFlow); tfjs-node\'s stock kernel reads the indices back and is refused', () => {
    process.env.VREPA_TF_GRAPH = '1';
    const x = tf.relu(tf.tensor2d([[1, 2], [3, 4], [5, 6]]));
    const idx = tf.relu(tf.tensor1d([2, 0], 'int32'));
    const { outputs, graph } = traceGraph((xs) => [tf.gather(xs[0]!, xs[1]!)], [x, idx]);
    const [y] = graph.run([x, tf.tensor1d([1, 1], 'int32')]);
    expect(Array.from(y!.dataSync())).toEqual([3, 4, 3, 4]);
    tf.dispose([...outputs, y!]);
    graph.dispose();
    process.env.VREPA_TF_GATHER_FIX = '0';
    try {
      expect(() => traceGraph((xs) => [tf.gather(xs[0]!, xs[1]!)], [x, idx])).toThrow(/tensorDataSync/);
    } finally {
      delete process.env.VREPA_TF_GATHER_FIX;
    }
    tf.dispose([x, idx]);
  });

  it('tensors older than the trace and not passed in are read by id: the graph sees them while they live and says so when they are gone', () => {
    process.env.VREPA_TF_GRAPH = '1';
    const table = tf.relu(tf.tensor1d([1, 2, 3])); // a TensorFlow tensor before the trace (not a value still held in JS)
    const x = tf.tensor1d([10, 20, 30]);
    const { outputs, graph } = traceGraph((xs) => [tf.mul(tf.add(xs[0]!, table), 2)], [x]);
    expect(graph.trace.captured).toHaveLength(1);
    expect(Array.from(outputs[0]!.dataSync())).toEqual([22, 44, 66]);
    const [y] = graph.run([tf.tensor1d([0, 0, 1])]);
    expect(Array.from(y!.dataSync())).toEqual([2, 4, 8]);
    table.dispose();
    expect(() => graph.run([x])).toThrow(/captured tensor id \d+ no longer exists/);
    // compileFunction traces again when a captured tensor is gone, and so reads its replacement
    let current = tf.relu(tf.tensor1d([1, 1, 1]));
    const f = compileFunction((xs) => [tf.add(xs[0]!, current)]);
    for (let k = 0; k < 3; k++) tf.dispose(f([x]));
    expect(f.mode([x])).toBe('graph');
    current.dispose();
    current = tf.relu(tf.tensor1d([5, 5, 5]));
    const [z] = f([x]);
    expect(Array.from(z!.dataSync())).toEqual([15, 25, 35]);
    tf.dispose([z!, current]);
    f.dispose();
    expect(() => graph.run([])).toThrow(/takes 1 inputs/);
    tf.dispose([...outputs, y!, x]);
    graph.dispose();
  });
});

describe.skipIf(!patched)('graph functions with oneDNN off: the same bits as the eager ops', () => {
  it('an MLP step (forward, tfjs gradients) traced and run as a graph equals the eager step bit for bit', async () => {
    const tfUrl = import.meta.resolve('@tensorflow/tfjs');
    const body = `const tf = await import(${JSON.stringify(tfUrl)});
await core.initBackend({ quiet: true, oneDnn: false });
const w1 = tf.variable(tf.randomNormal([24, 40], 0, 1, 'float32', 1));
const w2 = tf.variable(tf.randomNormal([40, 12], 0, 1, 'float32', 2));
const fn = (xs) => { const { value, grads } = tf.variableGrads(() => {
  const h = tf.relu(tf.add(tf.matMul(xs[0], w1), 0.5));
  const n = tf.div(tf.sub(h, tf.mean(h, -1, true)), tf.sqrt(tf.add(tf.mean(tf.square(h), -1, true), 1e-5)));
  const y = tf.softmax(tf.matMul(n, w2));
  return tf.mean(tf.square(tf.sub(y, 0.1))); }, [w1, w2]);
  return [value, grads[w1.name], grads[w2.name]]; };
const f = core.compileFunction(fn);
const same = [];
for (let k = 0; k < 4; k++) {
  const x = tf.randomNormal([6, 24], 0, 1, 'float32', 10 + k);
  const eager = tf.tidy(() => fn([x]));
  const got = f([x, w1, w2]);
  same.push(eager.every((e, i) => { const a = e.dataSync(), b = got[i].dataSync(); return a.length === b.length && a.every((v, j) => Object.is(v, b[j])); }));
  tf.dispose([x, ...eager, ...got]);
}
emit({ same, mode: f.mode(), oneDnn: process.env.TF_ENABLE_ONEDNN_OPTS });`;
    const r = await runInChild<{ same: boolean[]; mode: string; oneDnn: string }>(body, { TF_ENABLE_ONEDNN_OPTS: '0', VREPA_TF_GRAPH: '' }, 120_000);
    expect(r.error).toBeUndefined();
    expect(r.value!.oneDnn).toBe('0');
    expect(r.value!.mode).toBe('graph'); // the default with oneDNN off
    expect(r.value!.same).toEqual([true, true, true, true]); // calls 1–2 traced, 3–4 the graph
  });
});

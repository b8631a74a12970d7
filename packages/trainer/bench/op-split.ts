/**
 * `pnpm --filter @vrepa/trainer bench:op-split`: where a small native op's CPU time goes (issue 15, third
 * wave), layer by layer, in one process: the tfjs op (tf.add: argument checks, engine, tape bookkeeping), the
 * engine's runKernel, the tfjs-node backend's executeSingleOutput (attribute objects, input ids, output
 * tensor), and the binding alone (executeOp + deleteTensor: N-API marshalling + TensorFlow's eager
 * TFE_Execute), with binding patch 32's paths on and off (VREPA_TF_FAST_EXEC, VREPA_TF_SMALL_BINARY, read
 * per call), next to wasm's full op. CPU µs per call (process CPU time, minimum of 5 rounds). Fifth wave
 * (binding patch 34): the same ops inside one traced TensorFlow graph, per op of a 1,000-op chain.
 */
import os from 'node:os';
import * as tf from '@tensorflow/tfjs';
import { compileFunction, graphFunctionsAvailable, initBackend, printBenchTable, switchBackend, type BenchRow } from '@vrepa/core';

const REPS = Number(process.env.VREPA_BENCH_OPS_REPS ?? 20000);
const cpu = () => { const c = process.cpuUsage(); return c.user + c.system; };
function us(f: () => void): number {
  for (let i = 0; i < 2000; i++) f();
  const ts: number[] = [];
  for (let r = 0; r < 5; r++) {
    const t0 = cpu();
    for (let i = 0; i < REPS; i++) f();
    ts.push((cpu() - t0) / REPS);
  }
  return Math.min(...ts);
}
const set = (fast: boolean, small: boolean) => {
  if (fast) delete process.env.VREPA_TF_FAST_EXEC; else process.env.VREPA_TF_FAST_EXEC = '0';
  if (small) delete process.env.VREPA_TF_SMALL_BINARY; else process.env.VREPA_TF_SMALL_BINARY = '0';
};

const info = await initBackend({ quiet: true, oneDnn: false });
if (info.name !== 'tensorflow') throw new Error('bench:op-split needs the native tensorflow backend');
type B = { binding: Record<string, (...a: unknown[]) => any>; getInputTensorIds(t: tf.Tensor[]): number[]; executeSingleOutput(n: string, a: unknown[], i: tf.Tensor[]): tf.Tensor };
const be = tf.backend() as unknown as B;
const bd = be.binding;
const a = tf.randomNormal([8, 16]), b = tf.randomNormal([8, 16]);
const [ia, ib] = be.getInputTensorIds([a, b]);
const attrs = [{ name: 'T', type: bd.TF_ATTR_TYPE, value: bd.TF_FLOAT }];
const rows: BenchRow[] = [];
const layers = (label: string, fast: boolean, small: boolean) => {
  set(fast, small);
  rows.push({
    name: label,
    'tf.add µs': us(() => tf.add(a, b).dispose()),
    'runKernel µs': us(() => (tf.engine().runKernel('Add', { a, b }, {}) as tf.Tensor).dispose()),
    'backend.executeSingleOutput µs': us(() => be.executeSingleOutput('Add', attrs, [a, b]).dispose()),
    'tf.mul(x, 0.9) µs': us(() => tf.mul(a, 0.9).dispose()),
    'tf.sum µs': us(() => tf.sum(a).dispose()),
    'tf.transpose µs': us(() => tf.transpose(a).dispose()),
  });
};
layers('tfjs-node, stock paths (before wave 3)', false, false);
layers('tfjs-node, executeOpIo only', true, false);
layers('tfjs-node, executeOpIo + smallBinary (after)', true, true);
set(true, true);
const binRow: BenchRow = {
  name: 'the binding alone: executeOp + deleteTensor (N-API + TFE_Execute)',
  'tf.add µs': us(() => { const o = bd.executeOp('Add', attrs, [ia, ib], 1); bd.deleteTensor(o[0].id); }),
};
rows.push(binRow);
if (typeof bd.smallBinary === 'function') {
  rows.push({ name: 'the binding alone: smallBinary + deleteTensor', 'tf.add µs': us(() => bd.deleteTensor(bd.smallBinary(0, ia, ib, 0))) });
}
// wave 5 (binding patch 34): the same ops inside one traced graph — a chain of CHAIN ops run as one graph
// call, per op (TensorFlow's executor dispatches each kernel; no tfjs, no N-API per op)
if (graphFunctionsAvailable()) {
  const CHAIN = 1000;
  const perOp = (op: (x: tf.Tensor) => tf.Tensor, x0: tf.Tensor) => {
    const f = compileFunction((xs) => {
      let x = xs[0]!;
      for (let i = 0; i < CHAIN; i++) x = op(x);
      return [x];
    });
    for (let i = 0; i < 3; i++) tf.dispose(f([x0]));
    if (f.mode([x0]) !== 'graph') throw new Error(`bench:op-split: the chain did not become a graph (${f.reason})`);
    const t = REPS / CHAIN;
    const ts: number[] = [];
    for (let r = 0; r < 5; r++) {
      const t0 = cpu();
      for (let i = 0; i < t; i++) tf.dispose(f([x0]));
      ts.push((cpu() - t0) / (t * CHAIN));
    }
    f.dispose();
    return Math.min(...ts);
  };
  rows.push({
    name: `tfjs-node, inside one graph (wave 5: a chain of ${CHAIN} such ops per graph run, per op)`,
    'tf.add µs': perOp((x) => tf.add(x, b), a),
    'tf.mul(x, 0.9) µs': perOp((x) => tf.mul(x, 0.9), a),
    'tf.sum µs': perOp((x) => tf.sum(x, 0, true), a),
    'tf.transpose µs': perOp((x) => tf.transpose(x), a),
  });
}
await switchBackend('wasm');
const wa = tf.randomNormal([8, 16]), wb = tf.randomNormal([8, 16]);
rows.push({
  name: 'wasm, full op',
  'tf.add µs': us(() => tf.add(wa, wb).dispose()),
  'runKernel µs': us(() => (tf.engine().runKernel('Add', { a: wa, b: wb }, {}) as tf.Tensor).dispose()),
  'tf.mul(x, 0.9) µs': us(() => tf.mul(wa, 0.9).dispose()),
  'tf.sum µs': us(() => tf.sum(wa).dispose()),
  'tf.transpose µs': us(() => tf.transpose(wa).dispose()),
});
printBenchTable(`a small op's CPU time by layer, [8,16] float32 (CPU µs per call, min of 5 rounds of ${REPS}; load average ${os.loadavg().map((l) => l.toFixed(1)).join(' / ')})`, rows);

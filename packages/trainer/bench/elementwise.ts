/**
 * `pnpm --filter @vrepa/trainer bench:elementwise`: the toy reproduction's large elementwise ops (issue 15,
 * fourth wave) — AdaLN rows `[4, 1104, 64] ⊙ [4, 1, 64]`, same-shape products, the token sum and a softmax —
 * as TensorFlow's eager kernels (VREPA_TF_SMALL_BINARY=0) and as binding patch 33's smallBinary on one
 * thread and split over two (VREPA_TF_SMALL_BINARY_MAX, VREPA_TF_BINARY_SPLIT, read per call), all variants
 * interleaved in one process: CPU µs (process CPU time, all threads) and wall µs per call, each the median
 * of 7 rounds of VREPA_BENCH_REPS calls (default 200). The machine's load is printed with the table.
 */
import os from 'node:os';
import * as tf from '@tensorflow/tfjs';
import { initBackend, modulate, printBenchTable, type BenchRow } from '@vrepa/core';

const REPS = Number(process.env.VREPA_BENCH_REPS ?? 200);
const ROUNDS = 7;
// (the 2-thread rows set VREPA_TF_BINARY_SPLIT explicitly; the default is 0, one thread)
const info = await initBackend({ quiet: true, oneDnn: process.env.TF_ENABLE_ONEDNN_OPTS === '1' });
if (info.name !== 'tensorflow') throw new Error('bench:elementwise needs the native tensorflow backend');
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const loadBefore = os.loadavg().map((l) => l.toFixed(1)).join(' / ');

type Variant = { label: string; env: Record<string, string | undefined> };
const variants: Variant[] = [
  { label: 'TensorFlow eager kernel', env: { VREPA_TF_SMALL_BINARY: '0' } },
  { label: 'smallBinary, 1 thread', env: { VREPA_TF_SMALL_BINARY: undefined, VREPA_TF_SMALL_BINARY_MAX: String(1 << 26), VREPA_TF_BINARY_SPLIT: '0', VREPA_TF_MUL_ADD: undefined } },
  { label: 'smallBinary, 2 threads', env: { VREPA_TF_SMALL_BINARY: undefined, VREPA_TF_SMALL_BINARY_MAX: String(1 << 26), VREPA_TF_BINARY_SPLIT: '16384', VREPA_TF_MUL_ADD: undefined } },
  { label: 'mulAdd (VREPA_TF_MUL_ADD=1), 1 thread', env: { VREPA_TF_SMALL_BINARY: undefined, VREPA_TF_SMALL_BINARY_MAX: String(1 << 26), VREPA_TF_BINARY_SPLIT: '0', VREPA_TF_MUL_ADD: '1' } },
];
const setEnv = (e: Record<string, string | undefined>) => {
  for (const [k, v] of Object.entries(e)) if (v === undefined) delete process.env[k]; else process.env[k] = v;
};

const x = tf.randomNormal([4, 1104, 64], 0, 1, 'float32', 1);
const y = tf.randomNormal([4, 1104, 64], 0, 1, 'float32', 2);
const row = tf.randomNormal([4, 1, 64], 0, 1, 'float32', 3);
const small = tf.randomNormal([8, 1104, 64].map((d, i) => (i === 1 ? 16 : d)), 0, 1, 'float32', 4); // [8,16,64]
const smallRow = tf.randomNormal([8, 1, 64], 0, 1, 'float32', 5);
const scores = tf.randomNormal([4, 4, 294, 294], 0, 1, 'float32', 6);
const scores2 = tf.randomNormal([4, 4, 294, 294], 0, 1, 'float32', 9);
const scoreCol = tf.randomNormal([4, 4, 294, 1], 0, 1, 'float32', 10);
const tok = tf.randomNormal([4, 270, 64], 0, 1, 'float32', 11);
const tokRow = tf.randomNormal([4, 1, 64], 0, 1, 'float32', 12);
const cases: Array<{ name: string; f: () => tf.Tensor; binary: boolean }> = [
  { name: 'mul [4,1104,64]·[4,1,64]', f: () => tf.mul(x, row), binary: true },
  { name: 'add [4,1104,64]+[4,1,64]', f: () => tf.add(x, row), binary: true },
  { name: 'sub [4,1104,64]−[4,1,64]', f: () => tf.sub(x, row), binary: true },
  { name: 'mul [4,1104,64]·[4,1104,64]', f: () => tf.mul(x, y), binary: true },
  { name: 'add [4,1104,64]+[4,1104,64]', f: () => tf.add(x, y), binary: true },
  { name: 'mul [4,1104,64]·0.5 (JS scalar)', f: () => tf.mul(x, 0.5), binary: true },
  { name: 'mul [8,16,64]·[8,1,64] (8,192 elements)', f: () => tf.mul(small, smallRow), binary: true },
  { name: 'mul [4,270,64]·[4,1,64] (the toy step\'s AdaLN rows, 69,120 elements)', f: () => tf.mul(tok, tokRow), binary: true },
  { name: 'sub [4,4,294,294]−[4,4,294,294] (attention scores, 1.38M)', f: () => tf.sub(scores, scores2), binary: true },
  { name: 'mul [4,4,294,1]·[4,4,294,294]', f: () => tf.mul(scoreCol, scores), binary: true },
  { name: 'modulate x·(1+scale)+shift, [4,270,64] with [4,1,64] rows (mulAdd on / off)', f: () => modulate(tok, tokRow, tokRow), binary: true },
  { name: 'sum over tokens [4,1104,64] → [4,1,64]', f: () => tf.sum(x, 1, true), binary: false },
  { name: 'softmax [4,4,294,294]', f: () => tf.softmax(scores), binary: false },
];

const rows: BenchRow[] = [];
for (const c of cases) {
  // the mulAdd variant only matters for modulate; the eager variant there is Mul and Add as TF ops
  const vs = !c.binary ? variants.slice(0, 1) : c.name.startsWith('modulate') ? variants : variants.slice(0, 3);
  const cpuR = vs.map(() => [] as number[]);
  const wallR = vs.map(() => [] as number[]);
  for (const [i, v] of vs.entries()) { setEnv(v.env); for (let k = 0; k < 20; k++) c.f().dispose(); }
  for (let r = 0; r < ROUNDS; r++) {
    for (const [i, v] of vs.entries()) {
      setEnv(v.env);
      const c0 = process.cpuUsage();
      const t0 = performance.now();
      for (let k = 0; k < REPS; k++) c.f().dispose();
      const wall = (performance.now() - t0) * 1000 / REPS;
      const cu = process.cpuUsage(c0);
      cpuR[i]!.push((cu.user + cu.system) / REPS);
      wallR[i]!.push(wall);
    }
  }
  for (const [i, v] of vs.entries()) {
    rows.push({
      name: `${c.name} · ${c.binary ? v.label : 'TensorFlow eager kernel'}`,
      'CPU µs/call': median(cpuR[i]!),
      'wall µs/call': median(wallR[i]!),
      '× TF eager (CPU)': median(cpuR[i]!) / median(cpuR[0]!),
      '× TF eager (wall)': median(wallR[i]!) / median(wallR[0]!),
    });
  }
}
setEnv(variants[0]!.env);
setEnv({ VREPA_TF_SMALL_BINARY: undefined, VREPA_TF_SMALL_BINARY_MAX: undefined, VREPA_TF_BINARY_SPLIT: undefined, VREPA_TF_MUL_ADD: undefined });
printBenchTable(`large elementwise ops, tfjs-node (oneDNN ${info.oneDnn ? 'on' : 'off'}); ${ROUNDS} interleaved rounds × ${REPS} calls, medians (load ${loadBefore} → ${os.loadavg().map((l) => l.toFixed(1)).join(' / ')}; ${os.cpus().length} cores)`, rows);

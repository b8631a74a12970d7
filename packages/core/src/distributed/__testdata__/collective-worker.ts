/**
 * One task of the two-process collective test (collective.test.ts): joins the cluster in TF_CONFIG, runs
 * collectives on rank-dependent values and prints the results as one JSON line.
 * MODE=basic | die-after-first (rank 1 exits after the first all-reduce) | hang-peer (rank 1 sleeps).
 */
import * as tf from '@tensorflow/tfjs';
import { initBackend } from '../../backend.js';
import { initDistributed } from '../collective.js';

const mode = process.env.MODE ?? 'basic';
const out: Record<string, unknown> = {};
const emit = () => process.stdout.write(`@@RESULT@@${JSON.stringify(out)}\n`);
try {
  await initBackend({ backend: 'tensorflow', quiet: true });
  const d = initDistributed();
  out.rank = d.rank;
  out.worldSize = d.worldSize;
  const r = d.rank;
  // rank r contributes [r+1, 10(r+1)] and a [2,2] of (r+1)/4: the means are hand-derivable.
  const [a, b] = d.allReduceMean([tf.tensor1d([r + 1, 10 * (r + 1)]), tf.fill([2, 2], (r + 1) / 4)]);
  out.mean = [Array.from(a!.dataSync()), Array.from(b!.dataSync()), b!.shape];
  if (mode === 'die-after-first' && r === 1) process.exit(0);
  if (mode === 'hang-peer' && r === 1) {
    Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 60_000);
  }
  const [s] = d.allReduceSum([tf.tensor1d([r + 1])]);
  out.sum = Array.from(s!.dataSync());
  const [bc] = d.broadcast([tf.tensor2d([[r, r + 0.5]])], 1);
  out.broadcast = [Array.from(bc!.dataSync()), bc!.shape];
  // Memory: collectives do not leak tensors.
  const xs = [tf.ones([5]), tf.ones([3])];
  const before = tf.memory().numTensors;
  for (let k = 0; k < 3; k++) tf.dispose([...d.allReduceMean(xs), ...d.broadcast(xs, 0)]);
  out.leaked = tf.memory().numTensors - before;
  out.collectives = d.collectives;
  d.barrier();
  d.shutdown();
} catch (e) {
  out.error = `${(e as Error).name}: ${(e as Error).message}`;
}
emit();
process.exit(out.error ? 1 : 0);

// Quickstart: the official VideoREPA alignment path on a toy clip. A "hidden state" of a diffusion block on a
// 5×6×9 latent grid goes through the projector, drops latent frame 0, is upsampled ×2 in time and downsampled
// by the learned 3×3/s3 conv onto the teacher's 8×2×3 grid; TRD pulls its relations toward a fixed teacher's.
// Only the projector and downsampler train (as with a frozen transformer). Prints the loss falling.
import * as tf from '@tensorflow/tfjs';
import { initBackend, Rng } from '@vrepa/core';
import { alignmentLoss, Downsampler, Projector } from '@vrepa/align-dims';
import { relationMatrix } from '@vrepa/relations';

const info = await initBackend();
const studentGrid = { frames: 5, height: 6, width: 9 };
const teacherGrid = { frames: 8, height: 2, width: 3 };
const rng = Rng.fromSeed(42);
const projector = new Projector({ inDim: 64, hiddenDim: 128, outDim: 32 }, { rng });
const downsampler = new Downsampler({ channels: 32 }, { rng });
const hidden = rng.randomTensor([1, 5 * 6 * 9, 64], 'normal');
const teacher = rng.randomTensor([1, 8 * 2 * 3, 48], 'normal');
const opts = { projector, downsampler, studentGrid, teacherGrid, loss: 'trd', margin: 0.1 };

const optimizer = tf.train.adam(3e-3);
const t0 = performance.now();
const losses = [];
for (let step = 0; step <= 60; step++) {
  const loss = optimizer.minimize(() => alignmentLoss(hidden, teacher, opts), true, [...projector.parameters(), ...downsampler.parameters()]);
  losses.push(loss.dataSync()[0]);
  loss.dispose();
  if (step % 15 === 0) console.log(`step ${String(step).padStart(2)}  TRD ${losses[step].toFixed(5)}`);
}
const ms = performance.now() - t0;
console.log(`\nbackend ${info.name}: 61 steps in ${(ms / 1000).toFixed(1)} s; TRD ${losses[0].toFixed(4)} → ${losses.at(-1).toFixed(4)}`);
if (!(losses.at(-1) < losses[0])) {
  console.error('quickstart: the loss did not fall');
  process.exit(1);
}
// The teacher's relation matrix is symmetric with a unit diagonal (a sanity check users can read).
const S = relationMatrix(teacher);
console.log(`teacher relations ${S.shape.join('×')}, diagonal mean ${tf.mean(tf.linalg.bandPart(S, 0, 0).sum(-1)).dataSync()[0].toFixed(4)}`);

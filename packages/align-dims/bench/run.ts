/**
 * `pnpm bench` for @vrepa/align-dims.
 *
 * 1. The official alignment path at the paper's shape (CogVideoX-2B at 49×480×720: hidden
 *    [1, 13·30·45, 1920]; VideoMAEv2-B teacher [1, 24·10·15, 768]), forward + backward, split by stage
 *    (projector, drop frame 0 + trilinear ×2, learned conv 3×3/3, TRD), each with its peak memory; the
 *    baseline row is the whole path in one call.
 * 2. Interpolation by separable matrices vs tf.image.resizeBilinear (half-pixel centres = PyTorch
 *    align_corners=False), where both apply (2-D bilinear), forward and forward + backward.
 * 3. Downsampler: patchify matmul vs the general tf.conv2d path, forward + backward.
 *
 * Env: VREPA_BACKEND picks the backend; VREPA_BENCH_SCALE=s shrinks the token grid (s=3: student 13×9×15, teacher
 * 24×3×5, for a quick look). Numbers measured while other jobs use the CPU are noisy.
 */
import * as tf from '@tensorflow/tfjs';
import { initBackend, printBenchTable, Rng, type BenchRow } from '@vrepa/core';
import { trdLoss } from '@vrepa/relations';
import { alignmentLoss, Downsampler, interpolate, Projector } from '../src/index.js';

await initBackend();

const scale = Number(process.env.VREPA_BENCH_SCALE ?? 1);
const teacherGrid = { frames: 24, height: Math.max(1, Math.round(10 / scale)), width: Math.max(1, Math.round(15 / scale)) };
const studentGrid = { frames: 13, height: 3 * teacherGrid.height, width: 3 * teacherGrid.width };
const INNER = 1920;
const HIDDEN = 2048;
const ALIGN = 768;
const MB = 2 ** 20;
const nS = studentGrid.frames * studentGrid.height * studentGrid.width;
const nT = teacherGrid.frames * teacherGrid.height * teacherGrid.width;
const frames = 2 * (studentGrid.frames - 1);

/** The tensors in a container (duck-typed: two copies of tfjs-core may be loaded, so instanceof can fail). */
function tensorsIn(x: unknown): tf.Tensor[] {
  if (x && typeof x === 'object' && 'dataId' in x && typeof (x as tf.Tensor).dispose === 'function') return [x as tf.Tensor];
  if (Array.isArray(x)) return x.flatMap(tensorsIn);
  if (x && typeof x === 'object') return Object.values(x).flatMap(tensorsIn);
  return [];
}

/** A trainable variable holding `t` (the initial tensor is released: a variable shares its data). */
function variableOf(t: tf.Tensor, trainable: boolean, name: string): tf.Variable {
  const v = tf.variable(t, trainable, name);
  t.dispose();
  return v;
}

function disposeAll(x: unknown): void {
  for (const t of tensorsIn(x)) t.dispose();
}

interface Measured {
  ms: number;
  peakMB: number;
}

// Peak tensor memory: the engine's own live-byte count, sampled after every kernel (works on every
// backend; tf.profile's per-kernel profiling trips over wrapped wasm kernels).
const engine = tf.engine() as unknown as { runKernelFunc: (p: unknown) => unknown; state: { numBytes: number } };
const origRunKernelFunc = engine.runKernelFunc.bind(engine);
let peakBytes = 0;
engine.runKernelFunc = (p: unknown) => {
  const r = origRunKernelFunc(p);
  if (engine.state.numBytes > peakBytes) peakBytes = engine.state.numBytes;
  return r;
};

/**
 * Run `f` (after `warmup`) `runs` times (at least once): median wall ms, and the peak of tensor memory
 * above what was live before the first timed run.
 */
async function measure(f: () => tf.TensorContainer, opts: { warmup?: number; runs?: number } = {}): Promise<Measured> {
  const once = async () => {
    const t0 = performance.now();
    const out = f();
    const ts = tensorsIn(out);
    for (const t of ts) await t.data();
    const ms = performance.now() - t0;
    disposeAll(ts);
    return ms;
  };
  for (let i = 0; i < (opts.warmup ?? 1); i++) await once();
  const before = tf.memory().numBytes;
  peakBytes = before;
  const times: number[] = [];
  for (let i = 0; i < Math.max(1, opts.runs ?? 3); i++) times.push(await once());
  times.sort((a, b) => a - b);
  return { ms: times[Math.floor(times.length / 2)]!, peakMB: (peakBytes - before) / MB };
}

/** Gradient results as a flat list (so `measure` reads and disposes them). */
function valueAndGrads(f: () => tf.Scalar, vars: tf.Variable[]): tf.Tensor[] {
  const { value, grads } = tf.variableGrads(f, vars);
  return [value, ...Object.values(grads)];
}

const rng = Rng.fromSeed(1);
const projector = new Projector({ inDim: INNER, hiddenDim: HIDDEN, outDim: ALIGN }, { rng });
const downsampler = new Downsampler({ channels: ALIGN }, { rng });
const hidden = variableOf(tf.randomNormal([1, nS, INNER], 0, 1, 'float32', 2), true, 'bench_hidden');
const teacher = tf.randomNormal([1, nT, ALIGN], 0, 1, 'float32', 3);
const params = [...projector.parameters(), ...downsampler.parameters()];
const big = scale === 1 ? { warmup: 0, runs: 1 } : { warmup: 1, runs: 1 };

console.log(`align-dims bench: hidden [1, ${nS}, ${INNER}] (grid ${studentGrid.frames}×${studentGrid.height}×${studentGrid.width}), teacher [1, ${nT}, ${ALIGN}]`);

// Order: comparisons of interpolation first (the full path grows the wasm heap to ~3.2 GB, and it never
// shrinks), the full path, then the downsampler comparison whose tf.conv2d weight gradient may not fit.
console.log(`live tensors after setup: ${(tf.memory().numBytes / MB).toFixed(0)} MB in ${tf.memory().numTensors} tensors`);
// ---- 2. interpolation by matrices vs tf.image.resizeBilinear ---------------------------------------------
const interpRows: BenchRow[] = [];
for (const [label, shape, size] of [
  ['student features to the teacher grid (Table 5, pure interpolation)', [frames, studentGrid.height, studentGrid.width, ALIGN], [teacherGrid.height, teacherGrid.width]],
  ['position table 14×14 → 10×15', [8, 14, 14, ALIGN], [10, 15]],
  ['video frames 480×720 → 160×240', [scale === 1 ? 16 : 4, 480, 720, 3], [160, 240]],
] as Array<[string, number[], [number, number]]>) {
  const x = variableOf(tf.randomNormal(shape, 0, 1, 'float32', 9), true, `bench_img_${label}`);
  const w = tf.randomNormal([shape[0]!, size[0], size[1], shape[3]!], 0, 1, 'float32', 10);
  const tfr = (z: tf.Tensor) => tf.image.resizeBilinear(z as tf.Tensor4D, size, false, true);
  const ours = (z: tf.Tensor) => interpolate(z, { size, mode: 'bilinear' });
  const diff = tf.tidy(() => tf.max(tf.abs(tf.sub(tfr(x), ours(x)))).dataSync()[0]!);
  const baseF = await measure(() => tfr(x));
  const baseB = await measure(() => valueAndGrads(() => tf.sum(tf.mul(tfr(x), w)) as tf.Scalar, [x]));
  const oursF = await measure(() => ours(x));
  const oursB = await measure(() => valueAndGrads(() => tf.sum(tf.mul(ours(x), w)) as tf.Scalar, [x]));
  interpRows.push(
    { name: `${label} [${shape.join(',')}]: tf.image.resizeBilinear (baseline)`, 'fwd ms': baseF.ms, 'fwd+bwd ms': baseB.ms, 'peak MB': baseB.peakMB, 'fwd ratio': 1, 'fwd+bwd ratio': 1, 'max |diff|': 0 },
    { name: `${label}: interpolation matrices`, 'fwd ms': oursF.ms, 'fwd+bwd ms': oursB.ms, 'peak MB': oursB.peakMB, 'fwd ratio': oursF.ms / baseF.ms, 'fwd+bwd ratio': oursB.ms / baseB.ms, 'max |diff|': diff },
  );
  disposeAll([x, w]);
}
printBenchTable('Bilinear (align_corners=False): separable matrices vs tf.image.resizeBilinear(halfPixelCenters)', interpRows);

console.log(`live tensors before the full path: ${(tf.memory().numBytes / MB).toFixed(0)} MB in ${tf.memory().numTensors} tensors`);
// ---- 1. the full path and its stages -----------------------------------------------------------------
const full = await measure(() => valueAndGrads(() => alignmentLoss(hidden, teacher, { projector, downsampler, studentGrid, teacherGrid, timeScaleFactor: 2 }), [hidden, ...params]), big);
console.log(`full path: ${full.ms.toFixed(0)} ms`);

const proj = await measure(() => valueAndGrads(() => tf.sum(tf.mul(projector.forward(hidden), 1e-3)) as tf.Scalar, [hidden, ...projector.parameters()]), big);
console.log(`projector: ${proj.ms.toFixed(0)} ms`);

const projected = variableOf(tf.randomNormal([1, studentGrid.frames, studentGrid.height, studentGrid.width, ALIGN], 0, 1, 'float32', 4), true, 'bench_projected');
const upW = tf.randomNormal([1, 2 * (studentGrid.frames - 1), studentGrid.height, studentGrid.width, ALIGN], 0, 1, 'float32', 5);
const interp = await measure(() =>
  valueAndGrads(() => {
    const x = tf.slice(projected, [0, 1, 0, 0, 0], [1, studentGrid.frames - 1, studentGrid.height, studentGrid.width, ALIGN]);
    return tf.sum(tf.mul(interpolate(x, { scaleFactor: [2, 1, 1], mode: 'trilinear' }), upW)) as tf.Scalar;
  }, [projected]),
);

const convIn = variableOf(tf.randomNormal([frames, studentGrid.height, studentGrid.width, ALIGN], 0, 1, 'float32', 6), true, 'bench_conv_in');
const convW = tf.randomNormal([frames, teacherGrid.height, teacherGrid.width, ALIGN], 0, 1, 'float32', 7);
const conv = await measure(() => valueAndGrads(() => tf.sum(tf.mul(downsampler.forward(convIn), convW)) as tf.Scalar, [convIn, ...downsampler.parameters()]));

const student = variableOf(tf.randomNormal([1, nT, ALIGN], 0, 1, 'float32', 8), true, 'bench_student');
const trd = await measure(() => valueAndGrads(() => trdLoss(student as tf.Tensor as tf.Tensor3D, teacher as tf.Tensor3D, { grid: teacherGrid, margin: 0.1 }), [student]));

const fullRow = (name: string, m: Measured): BenchRow => ({ name, 'fwd+bwd ms': m.ms, 'peak MB': m.peakMB, 'ms / full path': m.ms / full.ms, 'peak / full path': m.peakMB / full.peakMB });
printBenchTable(`Official alignment path, forward + backward (hidden [1, ${nS}, ${INNER}] → TRD on ${teacherGrid.frames}×${teacherGrid.height}×${teacherGrid.width}); baseline: the whole path in one call`, [
  fullRow('full path (baseline): alignmentLoss + grads of hidden and all parameters', full),
  fullRow(`projector ${INNER}→${HIDDEN}→${HIDDEN}→${ALIGN} (+ param grads)`, proj),
  fullRow(`drop frame 0 + trilinear ×2 in time (${studentGrid.frames - 1}→${frames})`, interp),
  fullRow(`downsampler conv 3×3 stride 3, patchify (+ param grads)`, conv),
  fullRow(`TRD official, N=${nT}, D=${ALIGN}`, trd),
  { name: 'sum of stages', 'fwd+bwd ms': proj.ms + interp.ms + conv.ms + trd.ms, 'ms / full path': (proj.ms + interp.ms + conv.ms + trd.ms) / full.ms },
]);
disposeAll([projected, upW, convIn, convW, student]);

// ---- 3. downsampler: patchify vs tf.conv2d ------------------------------------------------------------------
{
  const x = variableOf(tf.randomNormal([frames, studentGrid.height, studentGrid.width, ALIGN], 0, 1, 'float32', 11), true, 'bench_ds_x');
  const w = tf.randomNormal([frames, teacherGrid.height, teacherGrid.width, ALIGN], 0, 1, 'float32', 12);
  const conv2dPath = () => tf.add(tf.conv2d(x as tf.Tensor as tf.Tensor4D, downsampler.conv.weight.value as tf.Tensor4D, 3, 'valid'), downsampler.conv.bias!.value);
  const diff = tf.tidy(() => tf.max(tf.abs(tf.sub(conv2dPath(), downsampler.forward(x)))).dataSync()[0]!);
  const oursF = await measure(() => downsampler.forward(x));
  const oursB = await measure(() => valueAndGrads(() => tf.sum(tf.mul(downsampler.forward(x), w)) as tf.Scalar, [x, ...downsampler.parameters()]));
  const baseF = await measure(() => conv2dPath());
  // last: the conv2d weight gradient is the memory-hungry one (on wasm it can exceed the heap at this size)
  let baseB: Measured | undefined;
  try {
    baseB = await measure(() => valueAndGrads(() => tf.sum(tf.mul(conv2dPath(), w)) as tf.Scalar, [x, ...downsampler.parameters()]), { warmup: 0, runs: 1 });
  } catch (e) {
    console.log(`tf.conv2d backward failed on ${tf.getBackend()}: ${(e as Error).message.slice(0, 200)}`);
  }
  printBenchTable(`Downsampler 3×3 stride 3 on [${frames}, ${studentGrid.height}, ${studentGrid.width}, ${ALIGN}]: patchify matmul vs tf.conv2d`, [
    { name: 'tf.conv2d + bias (baseline)', 'fwd ms': baseF.ms, 'fwd+bwd ms': baseB?.ms ?? 'n/a', 'peak MB': baseB?.peakMB ?? 'n/a', 'fwd ratio': 1, 'fwd+bwd ratio': baseB ? 1 : 'n/a', 'max |diff|': 0 },
    { name: 'patchify: reshape → transpose → matMul', 'fwd ms': oursF.ms, 'fwd+bwd ms': oursB.ms, 'peak MB': oursB.peakMB, 'fwd ratio': oursF.ms / baseF.ms, 'fwd+bwd ratio': baseB ? oursB.ms / baseB.ms : 'n/a', 'max |diff|': diff },
  ]);
  disposeAll([x, w]);
}

projector.dispose();
downsampler.dispose();
disposeAll([hidden, teacher]);

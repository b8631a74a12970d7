/**
 * One CogVideoX block at the 2B width (D 1920, 30 heads × 64, time embed 512), text 226 tokens + 1,000
 * or 4,000 vision tokens: forward, forward+backward (gradients of the input and every parameter), and
 * forward+backward with gradient checkpointing; ms, GFLOP/s and peak MB (tf.profile: peak tensor bytes
 * above the start). Baseline row: a plain matMul [S, 1920]·[1920, 1920] in the same run, whose rate
 * (re-measured just before each row, as the cores are shared) is the roofline the block's time is
 * compared with (x-roofline column: 1 = as fast as plain matMuls of the same FLOPs).
 * A 2-block stack shows the memory effect of checkpointing: the activation bytes a block holds from
 * its forward to its backward. The full 2B step (30 blocks, 226 + 17,550 tokens) is extrapolated
 * from the 4,000-token block by FLOPs, and says so. Numbers are noisy when others share the 2 cores.
 * `VREPA_BENCH_QUICK=1` runs only the 1,000-token rows.
 */
import * as tf from '@tensorflow/tfjs';
import { Rng, printBenchTable, timeIt, type BenchRow } from '@vrepa/core';
import { CogVideoXBlock, checkpointedBlock, resolveTransformerConfig, COGVIDEOX_2B_TRANSFORMER, type CogVideoXTransformerConfig } from '../src/index.js';

const TEXT = 226;
const D = 1920;

/** Multiply-adds ×2 of one block's forward on S tokens (projections, FF, attention; modulation is negligible). */
function blockFlops(S: number): number {
  return 2 * (4 * S * D * D + 2 * S * D * 4 * D) + 2 * 2 * S * S * D;
}

/** Wall time and peak tensor MB above the start (tf.profile) of one run of `fn` (its tensors disposed). */
async function measure(fn: () => tf.TensorContainer): Promise<{ ms: number; peakMB: number }> {
  const start = tf.memory().numBytes;
  let ms = 0;
  const info = await tf.profile(async () => {
    const t0 = performance.now();
    const out = fn();
    const list = (Array.isArray(out) ? out : [out]) as tf.Tensor[];
    for (const t of list) await t.data();
    ms = performance.now() - t0;
    tf.dispose(list);
    return [] as unknown as tf.Tensor;
  });
  return { ms, peakMB: (info.peakBytes - start) / 2 ** 20 };
}

function makeStack(config: CogVideoXTransformerConfig, n: number, rng: Rng): CogVideoXBlock[] {
  return Array.from({ length: n }, () => {
    const b = new CogVideoXBlock(config, 'zeros');
    tf.tidy(() => {
      for (const [, p] of b.namedParameters()) {
        if (p.value.rank === 2) p.value.assign(tf.mul(rng.randomTensor(p.value.shape, 'normal'), 1 / Math.sqrt(p.value.shape[0]!)));
      }
    });
    return b;
  });
}

function stackLoss(blocks: CogVideoXBlock[], x: tf.Tensor, temb: tf.Tensor, checkpoint: boolean): tf.Scalar {
  return tf.tidy(() => {
    let h = x;
    for (const b of blocks) h = checkpoint ? checkpointed(b, h, temb) : b.forward(h, temb, TEXT, null);
    return tf.mean(tf.square(h)) as tf.Scalar;
  });
}

/** the model's checkpointing path (CogVideoXTransformer3DModel with gradientCheckpointing), for a bare block */
function checkpointed(b: CogVideoXBlock, h: tf.Tensor, temb: tf.Tensor): tf.Tensor {
  return checkpointedBlock(b, h, temb, TEXT, null);
}

export async function run(): Promise<void> {
  const { config } = resolveTransformerConfig({ ...COGVIDEOX_2B_TRANSFORMER, num_layers: 1 });
  const rng = Rng.fromSeed(0);
  const quick = process.env.VREPA_BENCH_QUICK === '1' || tf.getBackend() !== 'tensorflow';
  const sizes = quick ? [1000] : [1000, 4000];
  const [block] = makeStack(config, 1, rng);
  const temb = rng.randomTensor([1, config.time_embed_dim], 'normal');
  const rows: BenchRow[] = [];
  let rate4000 = 0;
  const oneBlock = [0, 0];
  for (const n of sizes) {
    const S = TEXT + n;
    const x = rng.randomTensor([1, S, D], 'normal');
    const w = rng.randomTensor([D, D], 'normal');
    const x2 = tf.reshape(x, [S, D]);
    const mm = await timeIt(() => tf.matMul(x2, w), { warmup: 1, runs: 3 });
    let mmRate = (2 * S * D * D) / (mm.medianMs / 1000) / 1e9;
    // the machine is shared: re-measure the matMul rate right before each row (the roofline of that row)
    const refresh = async () => {
      const t = await timeIt(() => tf.matMul(x2, w), { warmup: 0, runs: 3 });
      mmRate = (2 * S * D * D) / (t.medianMs / 1000) / 1e9;
    };
    const fl = blockFlops(S);
    rows.push({ name: `baseline: matMul [${S},1920]·[1920,1920]`, tokens: S, ms: mm.medianMs, 'GFLOP/s': mmRate, 'x-roofline': 1, 'peak MB': '' });
    const vars = block!.trainableParameters();
    const fwd = () => block!.forward(x, temb, TEXT, null);
    const fb = (ck: boolean) => () => {
      const g = tf.variableGrads(() => stackLoss([block!], x, temb, ck), vars);
      return [g.value, ...Object.values(g.grads)];
    };
    tf.dispose(fwd()); // warm-up (kernel set-up), not timed
    await refresh();
    const f1 = await measure(fwd);
    rows.push({ name: 'block forward', tokens: S, ms: f1.ms, 'GFLOP/s': fl / (f1.ms / 1000) / 1e9, 'x-roofline': f1.ms / ((fl / (mmRate * 1e9)) * 1000), 'peak MB': f1.peakMB });
    for (const ck of [false, true]) {
      await refresh();
      const t = await measure(fb(ck));
      const flb = 3 * fl + (ck ? fl : 0);
      rows.push({
        name: `block forward+backward${ck ? ' (checkpointed: +1 forward)' : ''}`,
        tokens: S,
        ms: t.ms,
        'GFLOP/s': flb / (t.ms / 1000) / 1e9,
        'x-roofline': t.ms / ((flb / (mmRate * 1e9)) * 1000),
        'peak MB': t.peakMB,
      });
      if (S === TEXT + 1000) oneBlock[ck ? 1 : 0] = t.peakMB;
      if (!ck && n === sizes.at(-1)) rate4000 = (3 * fl) / (t.ms / 1000);
    }
    tf.dispose([x, w, x2]);
  }
  printBenchTable('cogvideox: one CogVideoX block at the 2B width (1920, 30 heads), text 226 + vision tokens', rows);

  // memory effect of checkpointing: 1 vs 2 stacked blocks, forward+backward, peak tensor bytes
  const S = TEXT + 1000;
  const x = rng.randomTensor([1, S, D], 'normal');
  const stack2 = [block!, ...makeStack(config, 1, rng)];
  const mem: BenchRow[] = [];
  for (const ck of [false, true]) {
    const p1 = oneBlock[ck ? 1 : 0]!;
    const { peakMB: p2 } = await measure(() => {
      const g = tf.variableGrads(() => stackLoss(stack2, x, temb, ck), [...stack2[0]!.trainableParameters(), ...stack2[1]!.trainableParameters()]);
      return [g.value, ...Object.values(g.grads)];
    });
    mem.push({ name: ck ? 'gradient checkpointing' : 'baseline: plain autodiff', tokens: S, 'peak MB, 1 block': p1, 'peak MB, 2 blocks': p2, 'MB per extra block': p2 - p1 });
  }
  const held = (mem[0]!['MB per extra block'] as number) - (mem[1]!['MB per extra block'] as number);
  const gradMB = (stack2[1]!.numParameters() * 4) / 2 ** 20;
  printBenchTable(`cogvideox: peak MB per extra block, forward+backward (the extra block's parameter gradients, ${gradMB.toFixed(0)} MB, are part of both)`, mem);
  const fullS = TEXT + 13 * 30 * 45;
  const note = [
    `Checkpointing saves ≈ ${held.toFixed(0)} MB per block at ${S} tokens (difference of the rows above): without it a block's activations stay from its forward to its backward; with it only its input sequence (${((S * D * 4) / 2 ** 20).toFixed(1)} MB) does, for one extra forward per block. For 30 blocks: ≈ ${((30 * held) / 1024).toFixed(1)} GB less.`,
    rate4000
      ? `Extrapolation (not measured): a full CogVideoX-2B training step (30 blocks, ${fullS} tokens) ≈ 30 × ${(blockFlops(fullS) * 3 / 1e12).toFixed(2)} TFLOP / ${(rate4000 / 1e9).toFixed(0)} GFLOP/s ≈ ${((30 * 3 * blockFlops(fullS)) / rate4000 / 60).toFixed(0)} min per sample on this machine (the FLOPs at ${fullS} tokens, attention's tokens² term included, at the block forward+backward rate measured at ${TEXT + 4000} tokens), + 1 forward per block (+33%) with checkpointing.`
      : 'Extrapolation skipped (quick run).',
  ];
  process.stdout.write(note.map((l) => `- ${l}`).join('\n') + '\n');
  tf.dispose([x, temb]);
  for (const b of stack2) b.dispose();
}

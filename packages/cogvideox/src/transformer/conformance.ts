/**
 * Conformance handler of the `cogvideox_transformer` case: builds the model from the sub-case's
 * diffusers config (params.config) and align settings, loads the weights file, runs the align forward
 * on the stored inputs and compares every reference tensor it can reproduce: the output, the aligned
 * hidden state and its projection, the time and patch embeddings, every block's (vision, text)
 * outputs, the position tables, and the outputs with the trainer's rotary tables when present.
 * Everything is read from the manifest; nothing depends on the fixture's name or shapes.
 */
import * as tf from '@tensorflow/tfjs';
import type { ConformanceContext } from '@vrepa/core';
import { sincos3d } from '@vrepa/core';
import { CogVideoXTransformer3DModel } from './model.js';
import { alignConfigFromWeights, loadTransformerWeights } from './load.js';

/** The manifest tolerance for a tensor: exact key, a '/'-joined key naming it, or a shorter prefix of its name. */
export function toleranceFor(tolerances: Record<string, string>, name: string): string {
  for (const [k, v] of Object.entries(tolerances)) if (k === name || k.split('/').includes(name)) return v;
  const parts = name.split('_');
  for (let n = parts.length - 1; n >= 1; n--) {
    const pre = parts.slice(0, n).join('_');
    for (const [k, v] of Object.entries(tolerances)) if (k === pre || k.split('/').includes(pre)) return v;
  }
  // per-block hidden states are hidden states of the same model: the aligned hidden state's tolerance
  if (/^block\d+_/.test(name) && tolerances.align_hidden_state) return tolerances.align_hidden_state;
  throw new Error(`cogvideox_transformer: no tolerance for '${name}' in the manifest (have ${Object.keys(tolerances).join(', ')})`);
}

export async function cogvideoxTransformerHandler(ctx: ConformanceContext): Promise<void> {
  const p = ctx.params;
  const tensors: Record<string, { shape: number[] }> = ctx.subcase.tensors ?? {};
  const tol = (n: string) => toleranceFor(ctx.subcase.tolerances ?? {}, n);
  if (!ctx.weights) throw new Error('cogvideox_transformer: the sub-case names no weights file');
  const weights = ctx.weights;
  const src = { keys: () => weights.keys(), shape: (k: string) => weights.info(k).shape, read: (k: string) => weights.read(k) };
  const model = new CogVideoXTransformer3DModel(p.config, { init: 'zeros', align: false });
  try {
    const align = alignConfigFromWeights(model.config, src, { alignLayer: p.align_layer, source: weights.path });
    if (align) model.createAlignParts(align, { init: 'zeros' });
    loadTransformerWeights(model, src, { strict: true, source: weights.path });
    const alignLayer: number = p.align_layer;
    // inputs: diffusers layout [B, F, C, H, W] → channels-last
    const latents = tf.transpose(ctx.ref('hidden_states'), [0, 1, 3, 4, 2]);
    const text = ctx.ref('encoder_hidden_states');
    const ts = Array.from(ctx.ref('timestep').dataSync());
    const toTorch = (x: tf.Tensor) => tf.transpose(x, [0, 1, 4, 2, 3]);
    const out = model.forward(latents, text, ts, { alignLayer, returnBlocks: true, returnEmbeddings: true, rotary: 'pipeline' });
    const L = text.shape[1]!;
    const B = latents.shape[0]!;
    try {
      ctx.compare('output', toTorch(out.sample), tol('output'));
      if (tensors.align_hidden_state) ctx.compare('align_hidden_state', out.alignHidden!, tol('align_hidden_state'));
      if (tensors.aligns0) ctx.compare('aligns0', tf.reshape(out.aligned!, [B * out.aligned!.shape[1]!, -1]), tol('aligns0'));
      if (tensors.time_embedding) ctx.compare('time_embedding', out.timeEmbedding!, tol('time_embedding'));
      if (tensors.patch_embedded) ctx.compare('patch_embedded', out.patchEmbedded!, tol('patch_embedded'));
      out.blocks!.forEach((x, i) => {
        const vis = `block${i}_hidden_states`;
        const txt = `block${i}_encoder_hidden_states`;
        if (tensors[vis]) ctx.compare(vis, tf.slice(x, [0, L, 0], [-1, -1, -1]), tol(vis));
        if (tensors[txt]) ctx.compare(txt, tf.slice(x, [0, 0, 0], [-1, L, -1]), tol(txt));
      });
      const grid = model.latentGrid(latents.shape);
      if (tensors.sincos_pos_embedding) {
        const c = model.config;
        const D = model.innerDim;
        const table = tf.tidy(() =>
          tf.concat(
            [
              tf.zeros([1, L, D]),
              tf.reshape(
                sincos3d(D, grid, { spatialInterpolationScale: c.spatial_interpolation_scale, temporalInterpolationScale: c.temporal_interpolation_scale }),
                [1, -1, D],
              ),
            ],
            1,
          ),
        );
        ctx.compare('sincos_pos_embedding', table, tol('sincos_pos_embedding'));
      }
      for (const mode of ['pipeline', 'trainer'] as const) {
        const suffix = mode === 'trainer' ? '_trainer' : '';
        if (!tensors[`rotary_cos${suffix}`] && !tensors[`rotary_sin${suffix}`]) continue;
        const r = model.rotaryFor(grid, mode);
        if (tensors[`rotary_cos${suffix}`]) ctx.compare(`rotary_cos${suffix}`, r.cos, tol(`rotary_cos${suffix}`));
        if (tensors[`rotary_sin${suffix}`]) ctx.compare(`rotary_sin${suffix}`, r.sin, tol(`rotary_sin${suffix}`));
      }
      if (tensors.output_trainer_rotary || tensors.aligns0_trainer_rotary) {
        const o2 = model.forward(latents, text, ts, { alignLayer, rotary: 'trainer' });
        if (tensors.output_trainer_rotary) ctx.compare('output_trainer_rotary', toTorch(o2.sample), tol('output_trainer_rotary'));
        if (tensors.aligns0_trainer_rotary) ctx.compare('aligns0_trainer_rotary', tf.reshape(o2.aligned!, [B * o2.aligned!.shape[1]!, -1]), tol('aligns0_trainer_rotary'));
        tf.dispose([o2.sample, o2.aligned!, o2.alignHidden!]);
      }
    } finally {
      tf.dispose([out.sample, out.aligned!, out.alignHidden!, out.timeEmbedding!, out.patchEmbedded!, ...(out.blocks ?? [])].filter(Boolean));
    }
  } finally {
    model.dispose();
  }
}

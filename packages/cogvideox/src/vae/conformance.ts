/**
 * Conformance handler of the `cogvideox_vae` case: builds AutoencoderKLCogVideoX from params.config,
 * loads the weights, sets the frame batch sizes from params, encodes the stored video (channels-first
 * in the fixture, channels-last here), and compares the posterior (mean, logvar, std), the sample with
 * the stored noise, the scaled latents, and decode of the stored z and of the posterior mean.
 */
import * as tf from '@tensorflow/tfjs';
import type { ConformanceContext } from '@vrepa/core';
import { AutoencoderKLCogVideoX } from './model.js';
import { loadVaeWeights } from './load.js';
import { toleranceOf } from '../t5/conformance.js';

const toLast = (x: tf.Tensor) => tf.transpose(x, [0, 2, 3, 4, 1]); // [B, C, F, H, W] → [B, F, H, W, C]
const toFirst = (x: tf.Tensor) => tf.transpose(x, [0, 4, 1, 2, 3]);

export async function cogvideoxVaeHandler(ctx: ConformanceContext): Promise<void> {
  const p = ctx.params;
  const sc = ctx.subcase;
  const tensors: Record<string, unknown> = sc.tensors ?? {};
  const has = (n: string) => !!tensors[n];
  const tol = (n: string) => {
    try {
      return toleranceOf(sc.tolerances ?? {}, n, 'cogvideox_vae');
    } catch (e) {
      // the sample and the scaled latents are posterior quantities; z is the decoder's input
      if (['latent_scaled', 'sample_noise'].includes(n)) return toleranceOf(sc.tolerances ?? {}, 'posterior', 'cogvideox_vae');
      throw e;
    }
  };
  if (!ctx.weights) throw new Error('cogvideox_vae: the sub-case names no weights file');
  const weights = ctx.weights;
  const vae = new AutoencoderKLCogVideoX(p.config ?? {}, { init: 'zeros' });
  try {
    loadVaeWeights(vae, { keys: () => weights.keys(), shape: (k) => weights.info(k).shape, read: (k) => weights.read(k) }, { source: weights.path });
    if (p.num_sample_frames_batch_size) vae.numSampleFramesBatchSize = p.num_sample_frames_batch_size;
    if (p.num_latent_frames_batch_size) vae.numLatentFramesBatchSize = p.num_latent_frames_batch_size;
    const scaling: number = p.scaling_factor ?? vae.config.scaling_factor;

    if (has('video')) {
      const post = vae.encode(toLast(ctx.ref('video')), { tiling: false });
      if (has('posterior_mean')) ctx.compare('posterior_mean', toFirst(post.mean), tol('posterior_mean'));
      if (has('posterior_logvar')) ctx.compare('posterior_logvar', toFirst(post.logvar), tol('posterior_logvar'));
      if (has('posterior_std')) ctx.compare('posterior_std', toFirst(post.std), tol('posterior_std'));
      if (has('sample_noise')) {
        const sample = vae.sample(post, toLast(ctx.ref('sample_noise')));
        if (has('posterior_sample')) ctx.compare('posterior_sample', toFirst(sample), tol('posterior_sample'));
        if (has('latent_scaled')) ctx.compare('latent_scaled', toFirst(tf.mul(sample, scaling)), tol('latent_scaled'));
      }
    }
    if (has('z') && has('decoded')) ctx.compare('decoded', toFirst(vae.decode(toLast(ctx.ref('z')), { tiling: false })), tol('decoded'));
    if (has('decoded_from_mean') && has('posterior_mean'))
      ctx.compare('decoded_from_mean', toFirst(vae.decode(toLast(ctx.ref('posterior_mean')), { tiling: false })), tol('decoded_from_mean'));
  } finally {
    vae.dispose();
  }
}

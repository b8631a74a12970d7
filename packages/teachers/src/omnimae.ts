/**
 * OmniMAE (facebookresearch/omnivore; VideoREPA's `omini_mae.vit_base_mae_pretraining` trunk), pinned
 * from its public definition: a ViT whose patch embedding is nn.Sequential(PadIm2Video, Conv3d(k = stride
 * = 2×16×16)) (`patch_embed.proj.1.*`; the padding only acts on single images), one `qkv.bias`, no CLS
 * token, no layer scale, LayerNorm eps 1e-6, a fixed sinusoid table registered as the buffer `pos_embed`
 * (VideoMAE's `get_sinusoid_encoding_table` on 8×14×14) interpolated as VideoREPA's
 * `interpolate_pos_embed_temporal` does (bicubic in space per temporal slot, then trilinear in time — the
 * same as VideoMAE's), features = last block output (`pre_logits` is Identity, `norm` unused).
 * Checkpoints: the whole OmniMAE(trunk, head) state dict at the top level, keys `trunk.…` (`head.…`,
 * `trunk.decoder.…`, `trunk.mask_token` are ignored).
 */
import * as tf from '@tensorflow/tfjs';
import { LayerNorm, type ModuleBuffer } from '@vrepa/core';
import { inferTeacherConfig, teacherConfig, teacherConfigWith, type TeacherOptions } from './configs.js';
import { interpolateSinusoidPosEmbed, videoMaeSinusoidTable } from './posembed.js';
import { VideoTeacher, teacherFromCheckpoint, type CheckpointInput, type FromCheckpointOptions, type TeacherConfig } from './teacher.js';
import type { TeacherGrid } from './vit.js';

export class OmniMAE extends VideoTeacher {
  readonly posEmbed: ModuleBuffer;
  readonly norm: LayerNorm | null = null;

  constructor(config: string | TeacherConfig = 'omnimae-b', opts: TeacherOptions = {}) {
    const c = teacherConfigWith(config, 'omnimae', opts);
    super(c);
    this.posEmbed = this.buffer('pos_embed', tf.tidy(() => tf.expandDims(videoMaeSinusoidTable(this.baseGrid, c.embedDim), 0)));
    this.finishBlocks();
    if (this.config.finalNorm) this.norm = this.module('norm', new LayerNorm(this.config.embedDim, { eps: this.config.layerNormEps }));
  }

  /** The (loaded) `pos_embed` buffer as `[N0, D]`. */
  baseTable(): tf.Tensor2D {
    return tf.tidy(() => tf.squeeze(this.posEmbed.value, [0]) as tf.Tensor2D);
  }

  protected interpolateTable(grid: TeacherGrid): tf.Tensor2D {
    return tf.tidy(() => interpolateSinusoidPosEmbed(this.baseTable(), this.baseGrid, grid));
  }

  /** Load an OmniMAE checkpoint (top-level `trunk.…` keys, or `model` / `state_dict`). */
  static fromCheckpoint(path: CheckpointInput, opts: FromCheckpointOptions = {}): OmniMAE {
    const given = opts.config !== undefined ? teacherConfig(opts.config, 'omnimae') : undefined;
    return teacherFromCheckpoint(path, ['model', 'state_dict'], opts, (src) => {
      const c = given ?? inferTeacherConfig('omnimae', src.names(), src.shape);
      return new OmniMAE({ ...c, finalNorm: given?.finalNorm ?? src.names().includes('norm.weight') }, { init: 'zeros', maxScoreElements: opts.maxScoreElements });
    });
  }
}

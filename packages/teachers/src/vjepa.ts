/**
 * V-JEPA (facebookresearch/jepa, as VideoREPA loads it: vit_large, patch 16, tubelet 2, 16 frames,
 * 224², uniform_power): a frozen 3D sincos `pos_embed` (a state-dict entry), one `qkv.bias`,
 * attention softmax(q·kᵀ/√d)·v, the final `norm` present but not applied (officially commented out),
 * the position table interpolated trilinearly with scale factors for other input sizes. Checkpoints:
 * `target_encoder` (else `encoder`), keys `module.backbone.…`.
 */
import * as tf from '@tensorflow/tfjs';
import { LayerNorm, type Parameter } from '@vrepa/core';
import { inferTeacherConfig, teacherConfig, teacherConfigWith, type TeacherOptions } from './configs.js';
import { interpolateVjepaPosEmbed, vjepaSincosTable } from './posembed.js';
import { VideoTeacher, teacherFromCheckpoint, type CheckpointInput, type FromCheckpointOptions, type TeacherConfig } from './teacher.js';
import type { TeacherGrid } from './vit.js';

export class VJEPA extends VideoTeacher {
  readonly posEmbed: Parameter;
  readonly norm: LayerNorm | null = null;

  constructor(config: string | TeacherConfig = 'vjepa-l', opts: TeacherOptions = {}) {
    const c = teacherConfigWith(config, 'vjepa', opts);
    super(c);
    const g = this.baseGrid;
    // official registration order: patch_embed, pos_embed, blocks, norm
    this.posEmbed = this.param('pos_embed', () => tf.tidy(() => tf.expandDims(vjepaSincosTable(c.embedDim, g, !!c.uniformPower), 0)), { trainable: false });
    this.finishBlocks();
    if (this.config.finalNorm) this.norm = this.module('norm', new LayerNorm(this.config.embedDim, { eps: this.config.layerNormEps }));
  }

  /** The (loaded) `pos_embed` as `[N0, D]`. */
  baseTable(): tf.Tensor2D {
    return tf.tidy(() => tf.squeeze(this.posEmbed.value, [0]) as tf.Tensor2D);
  }

  protected interpolateTable(grid: TeacherGrid): tf.Tensor2D {
    return tf.tidy(() => interpolateVjepaPosEmbed(this.baseTable(), this.baseGrid, grid));
  }

  /** Load an official checkpoint (`target_encoder`, else `encoder`; `module.backbone.` stripped). */
  static fromCheckpoint(path: CheckpointInput, opts: FromCheckpointOptions = {}): VJEPA {
    const given = opts.config !== undefined ? teacherConfig(opts.config, 'vjepa') : undefined;
    return teacherFromCheckpoint(path, ['target_encoder', 'encoder', 'model', 'state_dict'], opts, (src) => {
      const c = given ?? inferTeacherConfig('vjepa', src.names(), src.shape);
      return new VJEPA({ ...c, finalNorm: given?.finalNorm ?? src.names().includes('norm.weight') }, { init: 'zeros', maxScoreElements: opts.maxScoreElements });
    });
  }
}

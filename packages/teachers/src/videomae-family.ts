/**
 * What VideoMAE v1 and VideoMAEv2 share: the same ViT (separate `q_bias`/`v_bias`, eps 1e-6) with the fixed
 * sinusoid table of the pre-training grid, interpolated to the input grid (bicubic in space per temporal slot,
 * then trilinear in time); optional `fc_norm` and classifier `head`. Subclasses differ in checkpoint loading.
 */
import * as tf from '@tensorflow/tfjs';
import { interpolateSinusoidPosEmbed, videoMaeSinusoidTable } from './posembed.js';
import { VideoTeacher, type TeacherConfig } from './teacher.js';
import type { TeacherGrid } from './vit.js';

export abstract class VideoMaeFamilyTeacher extends VideoTeacher {
  constructor(config: TeacherConfig) {
    super(config);
    this.finishBlocks();
    this.finishHead();
  }

  /** The sinusoid table of the pre-training grid, `[N0, D]`. */
  baseTable(): tf.Tensor2D {
    return videoMaeSinusoidTable(this.baseGrid, this.config.embedDim);
  }

  protected interpolateTable(grid: TeacherGrid): tf.Tensor2D {
    return tf.tidy(() => interpolateSinusoidPosEmbed(this.baseTable(), this.baseGrid, grid));
  }
}

/**
 * VideoMAEv2 (OpenGVLab; VideoREPA's default teacher): ViT with tubelet 2, separate `q_bias`/`v_bias`
 * (k bias zero), LayerNorm eps 1e-6, a fixed sinusoid position table for the pre-training grid
 * (8×14×14 for 16×224²) interpolated to the input grid (bicubic in space per temporal slot, then
 * trilinear in time), features = last block output, no final norm.
 */
import * as tf from '@tensorflow/tfjs';
import { inferTeacherConfig, teacherConfig } from './configs.js';
import { interpolateSinusoidPosEmbed, videoMaeSinusoidTable } from './posembed.js';
import { VideoTeacher, teacherFromCheckpoint, type FromCheckpointOptions, type TeacherConfig } from './teacher.js';
import type { TeacherGrid } from './vit.js';

export class VideoMAEv2 extends VideoTeacher {
  constructor(config: string | TeacherConfig = 'videomaev2-b', opts: { init?: 'torch' | 'zeros'; maxScoreElements?: number } = {}) {
    const c = teacherConfig(config, 'videomaev2');
    super({ ...c, ...(opts.init ? { init: opts.init } : {}), ...(opts.maxScoreElements ? { maxScoreElements: opts.maxScoreElements } : {}) });
    this.finishBlocks();
    this.finishHead();
  }

  baseTable(): tf.Tensor2D {
    return videoMaeSinusoidTable(this.baseGrid, this.config.embedDim);
  }

  protected interpolateTable(grid: TeacherGrid): tf.Tensor2D {
    return tf.tidy(() => interpolateSinusoidPosEmbed(this.baseTable(), this.baseGrid, grid));
  }

  /**
   * Load an official checkpoint: the state dict under `module` (keys `module.…`) or `model` (keys
   * `encoder.…`, ViT-g / pre-training), or at the top level (safetensors). As in VideoREPA's class,
   * `fc_norm`/`head` (fine-tuned checkpoints) and decoders are ignored and listed in
   * `loadReport.ignored`, unless the config asks for them (`fcNorm: true`, `numClasses`).
   */
  static fromCheckpoint(path: string, opts: FromCheckpointOptions = {}): VideoMAEv2 {
    const given = opts.config !== undefined ? teacherConfig(opts.config, 'videomaev2') : undefined;
    return teacherFromCheckpoint(path, ['module', 'model', 'state_dict'], opts, (src) => new VideoMAEv2(given ?? inferTeacherConfig('videomaev2', src.names(), src.shape), { init: 'zeros', maxScoreElements: opts.maxScoreElements }));
  }
}

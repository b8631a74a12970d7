/**
 * VideoMAEv2 (OpenGVLab; VideoREPA's default teacher): ViT with tubelet 2, separate `q_bias`/`v_bias`
 * (k bias zero), LayerNorm eps 1e-6, a fixed sinusoid position table for the pre-training grid
 * (8×14×14 for 16×224²) interpolated to the input grid (bicubic in space per temporal slot, then
 * trilinear in time), features = last block output, no final norm.
 */
import { inferTeacherConfig, teacherConfig, teacherConfigWith, type TeacherOptions } from './configs.js';
import { teacherFromCheckpoint, type CheckpointInput, type FromCheckpointOptions, type TeacherConfig } from './teacher.js';
import { VideoMaeFamilyTeacher } from './videomae-family.js';
import { peekPretrainConfig, teacherConfigFromPretrain } from './pretrain-checkpoint.js';

export class VideoMAEv2 extends VideoMaeFamilyTeacher {
  constructor(config: string | TeacherConfig = 'videomaev2-b', opts: TeacherOptions = {}) {
    super(teacherConfigWith(config, 'videomaev2', opts));
  }

  /**
   * Load an official checkpoint: the state dict under `module` (keys `module.…`) or `model` (keys
   * `encoder.…`, ViT-g / pre-training), or at the top level (safetensors). As in VideoREPA's class,
   * `fc_norm`/`head` (fine-tuned checkpoints) and decoders are ignored and listed in
   * `loadReport.ignored`, unless the config asks for them (`fcNorm: true`, `numClasses`).
   * A pre-training checkpoint we wrote (`savePretrainCheckpoint`) gives its encoder: the config comes from
   * the checkpoint; `encoder.norm`, the decoder, `encoder_to_decoder` and `mask_token` are ignored (the
   * teacher's features are the last block's output without the norm, as VideoREPA uses them).
   */
  static fromCheckpoint(path: CheckpointInput, opts: FromCheckpointOptions = {}): VideoMAEv2 {
    // a pre-training checkpoint we wrote carries its config: its encoder is the teacher
    const pre = opts.config === undefined ? peekPretrainConfig(path, { name: opts.name }) : null;
    const given = opts.config !== undefined ? teacherConfig(opts.config, 'videomaev2') : pre ? teacherConfigFromPretrain(pre) : undefined;
    return teacherFromCheckpoint(path, ['module', 'model', 'state_dict'], opts, (src) => new VideoMAEv2(given ?? inferTeacherConfig('videomaev2', src.names(), src.shape), { init: 'zeros', maxScoreElements: opts.maxScoreElements }));
  }
}

/**
 * VideoMAE v1 (MCG-NJU): the same ViT as VideoMAEv2 (separate `q_bias`/`v_bias`, sinusoid table,
 * eps 1e-6); its official class also has `fc_norm` and a classifier `head` (fine-tuned checkpoints) and
 * its loader takes the state dict from `model` or `module` and strips `backbone.` / `encoder.`.
 * Features = last block output (no norm).
 */
import { inferTeacherConfig, teacherConfig, teacherConfigWith, type TeacherOptions } from './configs.js';
import { teacherFromCheckpoint, type CheckpointInput, type FromCheckpointOptions, type TeacherConfig } from './teacher.js';
import { VideoMaeFamilyTeacher } from './videomae-family.js';

export class VideoMAE extends VideoMaeFamilyTeacher {
  constructor(config: string | TeacherConfig = 'videomae-b', opts: TeacherOptions = {}) {
    super(teacherConfigWith(config, 'videomae', opts));
  }

  /**
   * Load an official checkpoint (`model` or `module`, keys optionally `backbone.`/`encoder.`-prefixed).
   * Like the official class, `fc_norm` and the classifier `head` are loaded when the checkpoint has them
   * (fine-tuned models; `pool`, `classify`); pre-training decoders are ignored and reported.
   */
  static fromCheckpoint(path: CheckpointInput, opts: FromCheckpointOptions = {}): VideoMAE {
    const given = opts.config !== undefined ? teacherConfig(opts.config, 'videomae') : undefined;
    return teacherFromCheckpoint(path, ['model', 'module', 'state_dict'], opts, (src) => {
      const names = new Set(src.names());
      const c = given ?? inferTeacherConfig('videomae', src.names(), src.shape);
      const numClasses = names.has('head.weight') ? src.shape('head.weight')[0] : 0;
      return new VideoMAE({ ...c, fcNorm: c.fcNorm ?? names.has('fc_norm.weight'), numClasses: c.numClasses ?? numClasses }, { init: 'zeros', maxScoreElements: opts.maxScoreElements });
    });
  }
}

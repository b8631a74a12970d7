export * from './config.js';
export * from './data.js';
export * from './trainer.js';
export * from './prepare.js';
export { commands, trainCommand, prepareCommand, launchCommand, teacherProbeCommand } from './commands.js';
export * from './teacher-probe.js';
export * from './folder.js';
export * from './validation.js';
// The training machinery now lives in @vrepa/core (shared with teacher pretraining); re-exported here so
// existing imports from @vrepa/trainer keep working.
export {
  AdamW,
  lrLambda,
  globalNorm,
  clipCoefficient,
  clipGradients,
  type AdamWOptions,
  type LrSchedulerKind,
  ProgressBar,
  formatDuration,
  readLog,
  lossCurveSpec,
  writeLossPlot,
  TensorBoardWriter,
  crc32c,
  maskedCrc32c,
  encodeEvent,
  frameRecord,
  readRecords,
  CHECKPOINT_FORMAT,
  CheckpointCorruptError,
  CheckpointMismatchError,
  paramsSignature,
  checkpointsDir,
  listCheckpoints,
  saveCheckpoint,
  verifyCheckpoint,
  loadLatestCheckpoint,
  disposeLoaded,
  type TrainState,
  type CheckpointManifest,
  type SaveCheckpointInput,
  type LoadedCheckpoint,
} from '@vrepa/core';

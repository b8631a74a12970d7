// The browser entry (package.json `browser` condition): the models, configs, pre-processing and loading,
// without the disk feature cache and its `vrepa cache` command (Node). In the browser, fromCheckpoint takes
// the bytes of a safetensors file (a path needs Node's file system).
export * from './vit.js';
export * from './posembed.js';
export * from './teacher.js';
export * from './configs.js';
export * from './videomaev2.js';
export * from './videomae.js';
export { VideoMaeFamilyTeacher } from './videomae-family.js';
export * from './vjepa.js';
export * from './omnimae.js';
export { conformanceHandlers, teacherHandler } from './conformance.js';
export * from './videomae-pretrain.js';
export * from './masking.js';
export * from './pretrain-loss.js';
export * from './pretrain-checkpoint.js';
export { pretrainHandler, pretrainConfigFromParams } from './pretrain-conformance.js';

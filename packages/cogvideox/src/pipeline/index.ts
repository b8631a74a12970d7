export * from './pipeline.js';
export * from './init-model.js';
export * from './video.js';
export { contactSheetPath, generateCommand, initModelCommand, progressLine } from './commands.js';

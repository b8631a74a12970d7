export * from './config.js';
export * from './positions.js';
export { CogVideoXBlock, CogVideoXAttention, CogVideoXLayerNormZero, FeedForward, type RotaryTensors } from './block.js';
export * from './model.js';
export * from './load.js';
export * from './save.js';
export * from './export-inference.js';
export { exportCommand } from './commands.js';
export { cogvideoxTransformerHandler } from './conformance.js';

export * from './schedulers/index.js';
export * from './transformer/index.js';
export * from './lora/index.js';
export * from './losses.js';
export * from './t5/index.js';
export * from './vae/index.js';
export * from './pipeline/index.js';
export { conformanceHandlers } from './conformance.js';
export { commands } from './commands.js';

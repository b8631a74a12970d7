export { LoraLinear } from './lora-linear.js';
export * from './lora.js';
export { loraMergeCommand } from './commands.js';

export { LoraLinear } from './lora-linear.js';
export * from './lora.js';
export { loraBakeCommand, loraMergeCommand } from './commands.js';

export { LoraLinear } from './lora-linear.js';
export * from './lora.js';

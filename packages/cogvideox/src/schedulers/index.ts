export * from './alphas.js';
export * from './schedulers.js';

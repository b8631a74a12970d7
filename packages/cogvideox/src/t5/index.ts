export * from './config.js';
export * from './model.js';
export * from './tokenizer.js';
export * from './load.js';
export * from './encode.js';

export * from './backend.js';
export * from './safetensors.js';
export * from './conformance.js';
export * from './fixtures.js';
export * from './bench.js';
export * from './shapes.js';
export * from './leaks.js';
export * from './command.js';

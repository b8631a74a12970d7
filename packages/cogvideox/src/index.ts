export * from './schedulers/index.js';
export * from './transformer/index.js';
export { conformanceHandlers } from './conformance.js';

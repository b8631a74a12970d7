export * from './schedulers/index.js';
export { conformanceHandlers } from './conformance.js';

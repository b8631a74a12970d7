export * from './vit.js';
export * from './posembed.js';
export * from './teacher.js';
export * from './configs.js';
export * from './videomaev2.js';
export * from './videomae.js';
export * from './vjepa.js';
export { conformanceHandlers, teacherHandler } from './conformance.js';

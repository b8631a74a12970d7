export * from './grid.js';
export * from './interpolate.js';
export * from './projector.js';
export * from './downsampler.js';
export * from './strategies.js';
export * from './teacher-input.js';
export * from './align.js';
export { conformanceHandlers, interpolationHandler, teacherPreprocessHandler, alignPathHandler, interpolationOptionsFromParams } from './conformance.js';

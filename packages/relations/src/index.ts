export { relationMatrix, relationRows, trdLoss, trdLossNaive, trdFormWeights, autoChunkSize } from './trd.js';
export type { TrdOptions, TrdFormWeights } from './trd.js';
export { repaLoss } from './repa.js';
export { l2Normalize, stopGradient, NORMALIZE_EPS } from './normalize.js';
export { TRD_FORMS, DEFAULT_MARGIN } from './validate.js';
export type { TokenGrid, TrdForm } from './validate.js';
export { conformanceHandlers, trdLossConformance } from './conformance.js';

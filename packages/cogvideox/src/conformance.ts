/** The conformance handlers of @vrepa/cogvideox, one entry per fixture case this package owns. */
import type { ConformanceHandler } from '@vrepa/core';
import { schedulersHandler } from './schedulers/conformance.js';
import { cogvideoxTransformerHandler } from './transformer/conformance.js';
import { t5EncoderHandler } from './t5/conformance.js';
import { cogvideoxVaeHandler } from './vae/conformance.js';

export const conformanceHandlers: Record<string, ConformanceHandler> = {
  schedulers: schedulersHandler,
  cogvideox_transformer: cogvideoxTransformerHandler,
  t5_encoder: t5EncoderHandler,
  cogvideox_vae: cogvideoxVaeHandler,
};

/**
 * Prompt embeddings exactly as CogVideoX's `_get_t5_prompt_embeds` (and the official trainer's
 * `encode_text`) make them: tokenise with padding to `maxLength` (226) and truncation, then the encoder
 * WITHOUT an attention mask. `[num_prompts, maxLength, d_model]`.
 */
import * as tf from '@tensorflow/tfjs';
import type { T5EncoderModel } from './model.js';
import type { T5Tokenizer } from './tokenizer.js';

export function encodePrompts(
  tokenizer: T5Tokenizer,
  textEncoder: T5EncoderModel,
  prompts: string | string[],
  opts: { maxLength?: number; onWarning?: (text: string) => void } = {},
): tf.Tensor {
  const maxLength = opts.maxLength ?? 226;
  const tok = tokenizer.encodeBatch(prompts, { maxLength });
  tok.truncated.forEach((t, i) => {
    if (t) opts.onWarning?.(`prompt ${i} was truncated to ${maxLength} tokens (the part after that is ignored)`);
  });
  const ids = tf.tensor2d(tok.inputIds, undefined, 'int32');
  try {
    return textEncoder.forward(ids);
  } finally {
    ids.dispose();
  }
}

/**
 * Loading the T5 encoder from a diffusers `text_encoder/` folder (`config.json` + `model.safetensors`
 * or a sharded `model.safetensors.index.json`; F16/BF16 widened to float32), tensor by tensor into a
 * model built with zero init. `encoder.embed_tokens.weight` (tied to `shared.weight`) is accepted in
 * place of `shared.weight` and otherwise ignored; T5's decoder/LM-head keys are reported as unexpected.
 */
import fs from 'node:fs';
import path from 'node:path';
import { openCheckpoint, type LoadStateDictReport, type StateTensor } from '@vrepa/core';
import { T5EncoderModel } from './model.js';
import type { T5Config } from './config.js';

export interface T5WeightSource {
  keys(): Iterable<string>;
  shape(key: string): number[];
  read(key: string): StateTensor;
}

/** Load transformers-named T5 encoder weights into `model` (strict by default: all problems in one error). */
export function loadT5Weights(model: T5EncoderModel, src: T5WeightSource, opts: { strict?: boolean; source?: string } = {}): LoadStateDictReport {
  const keys = [...src.keys()];
  const alias = new Map<string, string>(); // model key → source key
  const hasShared = keys.includes('shared.weight');
  const visible = keys.filter((k) => k !== 'encoder.embed_tokens.weight' || !hasShared);
  for (const k of visible) alias.set(k === 'encoder.embed_tokens.weight' ? 'shared.weight' : k, k);
  return model.loadStateDict(
    { keys: () => alias.keys(), info: (k: string) => ({ shape: src.shape(alias.get(k)!) }), read: (k: string) => src.read(alias.get(k)!) },
    { strict: opts.strict ?? true, source: opts.source ?? 'T5 weights' },
  );
}

/** Read `config.json` of a text-encoder folder. */
export function readT5Config(dir: string): Partial<T5Config> & Record<string, unknown> {
  const file = path.join(dir, 'config.json');
  if (!fs.existsSync(file)) throw new Error(`T5EncoderModel: ${file} does not exist (expected a transformers text_encoder folder)`);
  try {
    return JSON.parse(fs.readFileSync(file, 'utf8'));
  } catch (e) {
    throw new Error(`T5EncoderModel: cannot parse ${file} (${(e as Error).message})`);
  }
}

/**
 * `T5EncoderModel.from_pretrained(dir)`: config.json and the weights of a transformers text-encoder
 * folder. `variant` picks `model.<variant>.safetensors` / `model.safetensors.index.<variant>.json`.
 */
export function loadT5EncoderFromDir(dir: string, opts: { variant?: string; strict?: boolean } = {}): T5EncoderModel {
  const config = readT5Config(dir);
  const weightsPath = findT5Weights(dir, opts.variant);
  const model = new T5EncoderModel(config, { init: 'zeros' });
  const ckpt = openCheckpoint(weightsPath);
  try {
    loadT5Weights(
      model,
      { keys: () => ckpt.tensors.keys(), shape: (k) => ckpt.tensors.get(k)!.shape, read: (k) => ckpt.tensors.get(k)!.read() },
      { strict: opts.strict, source: weightsPath },
    );
  } catch (e) {
    model.dispose();
    throw e;
  } finally {
    ckpt.close();
  }
  return model;
}

function findT5Weights(dir: string, variant?: string): string {
  const v = variant ? `.${variant}` : '';
  const candidates = [`model${v}.safetensors.index.json`, `model.safetensors.index${v}.json`, `model${v}.safetensors`];
  for (const c of candidates) if (fs.existsSync(path.join(dir, c))) return path.join(dir, c);
  const have = fs.existsSync(dir) ? fs.readdirSync(dir).join(', ') : '(folder missing)';
  throw new Error(`T5EncoderModel: no weights in ${dir}: expected one of ${candidates.join(', ')}; found ${have || 'nothing'}`);
}

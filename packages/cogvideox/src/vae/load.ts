/**
 * Loading AutoencoderKLCogVideoX from a diffusers `vae/` folder: `config.json` and
 * `diffusion_pytorch_model[.variant].safetensors` (or a sharded index); F16/BF16 widened to float32.
 */
import fs from 'node:fs';
import path from 'node:path';
import { openCheckpoint, type LoadStateDictReport, type StateTensor } from '@vrepa/core';
import { AutoencoderKLCogVideoX } from './model.js';

export interface VaeWeightSource {
  keys(): Iterable<string>;
  shape(key: string): number[];
  read(key: string): StateTensor;
}

/** Load diffusers-named VAE weights (strict by default: every missing/unexpected/mis-shaped key in one error). */
export function loadVaeWeights(model: AutoencoderKLCogVideoX, src: VaeWeightSource, opts: { strict?: boolean; source?: string } = {}): LoadStateDictReport {
  return model.loadStateDict({ keys: () => src.keys(), info: (k: string) => ({ shape: src.shape(k) }), read: (k: string) => src.read(k) }, { strict: opts.strict ?? true, source: opts.source ?? 'VAE weights' });
}

/** `AutoencoderKLCogVideoX.from_pretrained(dir)` for a diffusers `vae/` folder. */
export function loadVaeFromDir(dir: string, opts: { variant?: string; strict?: boolean } = {}): AutoencoderKLCogVideoX {
  const cfgFile = path.join(dir, 'config.json');
  if (!fs.existsSync(cfgFile)) throw new Error(`AutoencoderKLCogVideoX: ${cfgFile} does not exist (expected a diffusers vae folder)`);
  let config: Record<string, unknown>;
  try {
    config = JSON.parse(fs.readFileSync(cfgFile, 'utf8'));
  } catch (e) {
    throw new Error(`AutoencoderKLCogVideoX: cannot parse ${cfgFile} (${(e as Error).message})`);
  }
  const v = opts.variant ? `.${opts.variant}` : '';
  const candidates = [`diffusion_pytorch_model${v}.safetensors.index.json`, `diffusion_pytorch_model.safetensors.index${v}.json`, `diffusion_pytorch_model${v}.safetensors`];
  const found = candidates.map((c) => path.join(dir, c)).find((p) => fs.existsSync(p));
  if (!found) throw new Error(`AutoencoderKLCogVideoX: no weights in ${dir}: expected one of ${candidates.join(', ')}; found ${fs.readdirSync(dir).join(', ') || 'nothing'}`);
  const model = new AutoencoderKLCogVideoX(config, { init: 'zeros' });
  const ckpt = openCheckpoint(found);
  try {
    loadVaeWeights(model, { keys: () => ckpt.tensors.keys(), shape: (k) => ckpt.tensors.get(k)!.shape, read: (k) => ckpt.tensors.get(k)!.read() }, { strict: opts.strict, source: found });
  } catch (e) {
    model.dispose();
    throw e;
  } finally {
    ckpt.close();
  }
  return model;
}

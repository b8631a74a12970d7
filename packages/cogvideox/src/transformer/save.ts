/**
 * `savePretrained(model, dir)`: the inverse of `fromPretrained` — a diffusers model folder with
 * `config.json` (plus the VideoREPA align fields when the model has align parts) and the weights in
 * PyTorch layouts, as one `diffusion_pytorch_model.safetensors` or, above `maxShardBytes`, diffusers
 * shards `diffusion_pytorch_model-0000i-of-0000n.safetensors` with their `.safetensors.index.json`.
 * Tensors are streamed to disk one at a time (float32, or F16 / BF16 on request).
 * `forInference: true` leaves the align parts out (config fields and weights): the folder stock
 * diffusers' CogVideoXTransformer3DModel loads without warnings.
 */
import fs from 'node:fs';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { DTYPE_BYTES, hostToStreamEntry, toTorchLayout, writeSafetensorsStream, type SafetensorsStreamEntry } from '@vrepa/core';
import type { CogVideoXTransformer3DModel } from './model.js';
import { isAlignKey } from './config.js';
import { LoraLinear } from '../lora/lora-linear.js';

export interface SavePretrainedOptions {
  /** shard above this many bytes (default 5 GB, the official save_pretrained's "5GB") */
  maxShardBytes?: number;
  /** stored float dtype (default F32) */
  dtype?: 'F32' | 'F16' | 'BF16';
  /** diffusers weight variant in the file names (e.g. 'fp16') */
  variant?: string;
  /**
   * LoRA adapters are never written here (saveLora writes them). Unmerged adapters are an error unless
   * 'skip' (save the base weights only); merged ones are inside the weights already.
   */
  lora?: 'error' | 'skip';
  /**
   * Leave out the training-only align parts: no `align_layer` / `align_dims` / `projector_dim` in
   * config.json, no `projectors.*` / `downsampler_cogvideo_output.*` weights (default false: the full
   * export, which resumes training and matches the official checkpoints).
   */
  forInference?: boolean;
}

/** Where diffusers puts the weights: the single file's or the shards' names, by variant. */
export interface DiffusersWeightsOptions {
  /** shard above this many bytes (default 5 GB) */
  maxShardBytes?: number;
  /** diffusers weight variant in the file names (e.g. 'fp16') */
  variant?: string;
}

/**
 * Write state-dict entries (in order) as diffusers weights in `dir`: one
 * `diffusion_pytorch_model[.variant].safetensors`, or shards with their `.safetensors.index.json`
 * above `maxShardBytes`. Returns the files written.
 */
export function writeDiffusersWeights(dir: string, entries: SafetensorsStreamEntry[], opts: DiffusersWeightsOptions = {}): string[] {
  const maxShard = opts.maxShardBytes ?? 5e9;
  if (!(maxShard > 0)) throw new Error(`savePretrained: maxShardBytes must be > 0, got ${maxShard}`);
  const size = (e: SafetensorsStreamEntry) => e.shape.reduce((a, b) => a * b, 1) * DTYPE_BYTES[e.dtype];
  const shards: SafetensorsStreamEntry[][] = [[]];
  let cur = 0;
  for (const e of entries) {
    const s = size(e);
    if (cur > 0 && cur + s > maxShard) {
      shards.push([]);
      cur = 0;
    }
    shards.at(-1)!.push(e);
    cur += s;
  }
  const written: string[] = [];
  const base = opts.variant ? `diffusion_pytorch_model.${opts.variant}` : 'diffusion_pytorch_model';
  const metadata = { format: 'pt' };
  if (shards.length === 1) {
    const file = path.join(dir, `${base}.safetensors`);
    writeSafetensorsStream(file, shards[0]!, { metadata });
    written.push(file);
    return written;
  }
  const n = shards.length;
  const pad = (i: number) => String(i).padStart(5, '0');
  const weightMap: Record<string, string> = {};
  let total = 0;
  shards.forEach((sh, i) => {
    const name = opts.variant
      ? `diffusion_pytorch_model-${pad(i + 1)}-of-${pad(n)}.${opts.variant}.safetensors`
      : `diffusion_pytorch_model-${pad(i + 1)}-of-${pad(n)}.safetensors`;
    writeSafetensorsStream(path.join(dir, name), sh, { metadata });
    written.push(path.join(dir, name));
    for (const e of sh) {
      weightMap[e.name] = name;
      total += size(e);
    }
  });
  const idx = path.join(dir, `${base}.safetensors.index.json`);
  fs.writeFileSync(idx, JSON.stringify({ metadata: { total_size: total }, weight_map: weightMap }, null, 2) + '\n');
  written.push(idx);
  return written;
}

/** Write `config.json` and the weights of `model` into `dir` (created if needed). Returns the files written. */
export function savePretrained(model: CogVideoXTransformer3DModel, dir: string, opts: SavePretrainedOptions = {}): string[] {
  const maxShard = opts.maxShardBytes ?? 5e9;
  const dtype = opts.dtype ?? 'F32';
  if (!(maxShard > 0)) throw new Error(`savePretrained: maxShardBytes must be > 0, got ${maxShard}`);
  const isLora = (n: string) => /\.lora_[AB]\./.test(n);
  const unmerged = [...model.namedModules()].filter(([, m]) => m instanceof LoraLinear && m.hasLora && !m.merged).map(([n]) => n);
  if (unmerged.length && (opts.lora ?? 'error') === 'error') {
    throw new Error(
      `savePretrained: ${unmerged.length} LoRA adapter(s) are not merged (${unmerged.slice(0, 2).join(', ')}, …): mergeLora(model) first, save them with saveLora, or pass lora: 'skip' to save the base weights only`,
    );
  }
  const keep = (n: string) => !isLora(n) && !(opts.forInference && isAlignKey(n));
  fs.mkdirSync(dir, { recursive: true });
  const config: Record<string, unknown> = { _class_name: 'CogVideoXTransformer3DModel', _diffusers_version: '0.33.0.dev0', ...model.config };
  if (model.alignConfig && !opts.forInference) Object.assign(config, model.alignConfig);
  const written: string[] = [];
  const cfgPath = path.join(dir, 'config.json');
  fs.writeFileSync(cfgPath, JSON.stringify(config, null, 2) + '\n');
  written.push(cfgPath);

  // state-dict entries (parameters and persistent buffers) in registration order, each read lazily
  const entries: SafetensorsStreamEntry[] = [];
  const add = (name: string, value: tf.Tensor, layout: Parameters<typeof toTorchLayout>[1], shape: number[]) => {
    entries.push({
      name,
      dtype,
      shape,
      bytes: () => {
        const t = tf.tidy(() => toTorchLayout(value, layout));
        try {
          return hostToStreamEntry(name, { dtype: 'F32', shape, data: t.dataSync() as Float32Array }, dtype).bytes();
        } finally {
          t.dispose();
        }
      },
    });
  };
  for (const [n, p] of model.namedParameters()) if (keep(n)) add(n, p.value, p.layout, p.torchShape);
  for (const [n, b] of model.namedBuffers()) if (b.persistent && keep(n)) add(n, b.value, b.layout, b.torchShape);
  written.push(...writeDiffusersWeights(dir, entries, { maxShardBytes: maxShard, variant: opts.variant }));
  return written;
}

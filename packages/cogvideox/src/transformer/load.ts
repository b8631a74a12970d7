/**
 * Loading a CogVideoX transformer: `fromPretrained(dir)` reads a diffusers `config.json` and the
 * weights (one `diffusion_pytorch_model[.variant].safetensors`, or a sharded
 * `….safetensors.index.json` with its shards; F32/F16/BF16, widened to float32), streaming tensor by
 * tensor into a model built with zero init, so peak memory stays near the model's float32 size plus
 * one tensor. VideoREPA checkpoints (`projectors.0.*`, `downsampler_cogvideo_output.*`) load their
 * align parts too. The key report is strict by default: every missing, unexpected and mis-shaped key
 * is listed in one error.
 */
import fs from 'node:fs';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { openCheckpoint, type HostTensor, type LoadStateDictReport } from '@vrepa/core';
import { ALIGN_DEFAULTS, isAlignKey, type AlignConfig, type CogVideoXTransformerConfig, resolveAlignConfig, resolveTransformerConfig, innerDim } from './config.js';
import { CogVideoXTransformer3DModel } from './model.js';

/** A lazy state-dict source: names, shapes, and one tensor read at a time (PyTorch layout). */
export interface WeightSource {
  keys(): Iterable<string>;
  shape(key: string): number[];
  read(key: string): HostTensor | tf.Tensor;
}

export interface LoadWeightsOptions {
  /** Throw on missing or unexpected keys (default true); shape mismatches always throw. */
  strict?: boolean;
  /** Where the weights come from, for messages. */
  source?: string;
  /** align_layer (1-based) when the checkpoint has a projector (default: config.json's, else min(18, num_layers)). */
  alignLayer?: number;
}

/**
 * The VideoREPA align parts a checkpoint holds (`projectors.0.*`, `downsampler_cogvideo_output.*`),
 * with sizes read from the tensor shapes; null when it has none.
 */
export function alignConfigFromWeights(
  config: CogVideoXTransformerConfig,
  src: Pick<WeightSource, 'keys' | 'shape'>,
  opts: { alignLayer?: number; source?: string } = {},
): AlignConfig | null {
  const what = opts.source ?? 'weights';
  const keys = [...src.keys()].filter(isAlignKey);
  if (!keys.length) return null;
  for (const k of ['projectors.0.0.weight', 'projectors.0.4.weight']) {
    if (!keys.includes(k)) throw new Error(`${what}: has VideoREPA keys (${keys.slice(0, 3).join(', ')}, …) but no '${k}'`);
  }
  const extra = keys.filter((k) => k.startsWith('projectors.') && !k.startsWith('projectors.0.'));
  if (extra.length) throw new Error(`${what}: only one projector is supported (as the official trainer), found ${extra.slice(0, 4).join(', ')}`);
  const p0 = src.shape('projectors.0.0.weight');
  const p4 = src.shape('projectors.0.4.weight');
  if (p0[1] !== innerDim(config)) {
    throw new Error(`${what}: projectors.0.0.weight is [${p0.join(', ')}], expected [projector_dim, ${innerDim(config)}] for this transformer's inner dim`);
  }
  return resolveAlignConfig(
    config,
    { align_layer: opts.alignLayer ?? Math.min(ALIGN_DEFAULTS.align_layer, config.num_layers), align_dims: [p4[0]!], projector_dim: p0[0]! },
    `${what} align parts`,
  );
}

/**
 * Load diffusers-named weights (PyTorch layouts, any float dtype) into `model`, tensor by tensor.
 * A checkpoint with VideoREPA keys needs a model with align parts (`fromPretrained` builds them from
 * the checkpoint); all problems are reported at once.
 */
export function loadTransformerWeights(model: CogVideoXTransformer3DModel, src: WeightSource, opts: LoadWeightsOptions = {}): LoadStateDictReport {
  const keys = [...src.keys()];
  const what = opts.source ?? 'weights';
  if (!model.projector && keys.some(isAlignKey) && (opts.strict ?? true)) {
    throw new Error(`${what}: holds VideoREPA projector/downsampler weights but the model has no align parts (build it with alignConfigFromWeights, or use fromPretrained)`);
  }
  return model.loadStateDict({ keys: () => keys, info: (k: string) => ({ shape: src.shape(k) }), read: (k: string) => src.read(k) }, { strict: opts.strict ?? true, source: what });
}

export interface FromPretrainedOptions extends LoadWeightsOptions {
  /** diffusers weight variant, e.g. 'fp16' → diffusion_pytorch_model.fp16.safetensors */
  variant?: string;
  /** subfolder of a pipeline folder (e.g. 'transformer') */
  subfolder?: string;
  /** Create fresh align parts with these settings when the checkpoint has none. */
  align?: Partial<AlignConfig>;
}

/** The weights file of a diffusers model folder (index.json preferred, then the single file). */
export function findDiffusersWeights(dir: string, variant?: string): string {
  const base = variant ? `diffusion_pytorch_model.${variant}` : 'diffusion_pytorch_model';
  for (const name of [`${base}.safetensors.index.json`, `${base}.safetensors`]) {
    const p = path.join(dir, name);
    if (fs.existsSync(p)) return p;
  }
  const any = fs.readdirSync(dir).filter((f) => f.endsWith('.safetensors.index.json') || f.endsWith('.safetensors'));
  const idx = any.filter((f) => f.endsWith('.index.json'));
  if (idx.length === 1) return path.join(dir, idx[0]!);
  const single = any.filter((f) => f.endsWith('.safetensors'));
  if (idx.length === 0 && single.length === 1) return path.join(dir, single[0]!);
  throw new Error(
    `fromPretrained: ${dir} has no ${base}.safetensors or ${base}.safetensors.index.json${any.length ? ` (found ${any.join(', ')}; pass variant)` : ''}`,
  );
}

/**
 * Build a CogVideoXTransformer3DModel from a diffusers folder (config.json + safetensors, single or
 * sharded), streaming the weights. Returns the model and the key report.
 */
export function fromPretrained(dir: string, opts: FromPretrainedOptions = {}): { model: CogVideoXTransformer3DModel; report: LoadStateDictReport & { align: AlignConfig | null } } {
  const root = opts.subfolder ? path.join(dir, opts.subfolder) : dir;
  const cfgPath = path.join(root, 'config.json');
  let raw: unknown;
  try {
    raw = JSON.parse(fs.readFileSync(cfgPath, 'utf8'));
  } catch (e) {
    throw new Error(`fromPretrained: cannot read ${cfgPath} (${(e as Error).message})`);
  }
  const { config, align } = resolveTransformerConfig(raw as Record<string, unknown>, cfgPath);
  const weights = findDiffusersWeights(root, opts.variant);
  const ckpt = openCheckpoint(weights);
  const src: WeightSource = {
    keys: () => ckpt.tensors.keys(),
    shape: (k) => ckpt.tensors.get(k)!.shape,
    read: (k) => ckpt.tensors.get(k)!.read(),
  };
  let model: CogVideoXTransformer3DModel | null = null;
  try {
    const found = alignConfigFromWeights(config, src, { alignLayer: opts.alignLayer ?? align?.align_layer, source: weights });
    const alignCfg = found ?? (opts.align ? { ...align, ...opts.align } : undefined);
    model = new CogVideoXTransformer3DModel(config, { init: 'zeros', align: false });
    // Align parts the checkpoint holds are loaded with the rest; fresh ones (a plain diffusers folder plus
    // `align`) are created after the strict load, with the official init, so they are not reported missing.
    if (found) model.createAlignParts(found, { init: 'zeros' });
    const report = loadTransformerWeights(model, src, { ...opts, source: weights });
    if (!found && alignCfg) model.createAlignParts(alignCfg, { init: 'torch' });
    return { model, report: { ...report, align: found } };
  } catch (e) {
    model?.dispose();
    throw e;
  } finally {
    ckpt.close();
  }
}

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
import { hostToTensor, openCheckpoint, type HostTensor, type LoadStateDictReport, StateDictError } from '@vrepa/core';
import { Downsampler, Projector } from '@vrepa/align-dims';
import { type AlignConfig, resolveAlignConfig, resolveTransformerConfig, innerDim } from './config.js';
import { CogVideoXTransformer3DModel } from './model.js';

/** A lazy state-dict source: names, shapes, and one tensor read at a time (PyTorch layout). */
export interface WeightSource {
  keys(): Iterable<string>;
  shape(key: string): number[];
  read(key: string): HostTensor | tf.Tensor;
}

const ALIGN_PREFIXES = ['projectors.', 'downsampler_cogvideo_output.'];

export interface LoadWeightsOptions {
  /** Throw on missing or unexpected keys (default true); shape mismatches always throw. */
  strict?: boolean;
  /** Where the weights come from, for messages. */
  source?: string;
  /** align_layer to use when the checkpoint has a projector but the model has no align config. */
  alignLayer?: number;
}

export interface LoadWeightsReport extends LoadStateDictReport {
  /** the align parts found in the checkpoint (null when none) */
  align: AlignConfig | null;
}

/**
 * Load diffusers-named weights into `model`: transformer keys into its parameters, VideoREPA keys into
 * a (new) projector and downsampler whose sizes are read from the checkpoint.
 */
export function loadTransformerWeights(model: CogVideoXTransformer3DModel, src: WeightSource, opts: LoadWeightsOptions = {}): LoadWeightsReport {
  const strict = opts.strict ?? true;
  const keys = [...src.keys()];
  const alignKeys = keys.filter((k) => ALIGN_PREFIXES.some((p) => k.startsWith(p)));
  const modelKeys = keys.filter((k) => !ALIGN_PREFIXES.some((p) => k.startsWith(p)));
  const what = opts.source ?? 'weights';

  // Align parts: sizes from the checkpoint, checked before anything is changed.
  let align: AlignConfig | null = null;
  const extraAlign: string[] = [];
  if (alignKeys.length) {
    const has = (k: string) => alignKeys.includes(k);
    const need = ['projectors.0.0.weight', 'projectors.0.4.weight'];
    for (const k of need) if (!has(k)) throw new Error(`${what}: has VideoREPA keys (${alignKeys.slice(0, 3).join(', ')}, …) but no '${k}'`);
    const p0 = src.shape('projectors.0.0.weight');
    const p4 = src.shape('projectors.0.4.weight');
    if (p0[1] !== innerDim(model.config)) {
      throw new Error(`${what}: projectors.0.0.weight is [${p0.join(', ')}], the model's inner dim is ${innerDim(model.config)} (expected [projector_dim, ${innerDim(model.config)}])`);
    }
    for (const k of alignKeys) if (k.startsWith('projectors.') && !k.startsWith('projectors.0.')) extraAlign.push(k);
    if (extraAlign.length && strict) throw new Error(`${what}: only one projector is supported (official trainer), found ${extraAlign.join(', ')}`);
    align = resolveAlignConfig(
      model.config,
      {
        align_layer: opts.alignLayer ?? model.alignConfig?.align_layer ?? Math.min(18, model.config.num_layers),
        align_dims: [p4[0]!],
        projector_dim: p0[0]!,
      },
      `${what} align parts`,
    );
  }

  // Transformer parameters: the Module's loader checks every key first and reports all problems.
  const modelSource = {
    keys: () => modelKeys,
    info: (k: string) => ({ shape: src.shape(k) }),
    read: (k: string) => src.read(k),
  };
  let report: LoadStateDictReport;
  try {
    report = model.loadStateDict(modelSource, { strict, source: what });
  } catch (e) {
    if (e instanceof StateDictError) {
      throw new StateDictError(`${e.message}${alignKeys.length ? '' : ''}`, e.report);
    }
    throw e;
  }

  if (align) {
    const read = (k: string) => {
      const t = src.read(k);
      return t instanceof tf.Tensor ? t : hostToTensor(t, k);
    };
    const take = (names: string[]) => {
      const m = new Map<string, tf.Tensor>();
      for (const n of names) if (alignKeys.includes(n)) m.set(n, read(n));
      return m;
    };
    const projNames = Object.keys(Projector.shapes({ inDim: innerDim(model.config), hiddenDim: align.projector_dim, outDim: align.align_dims[0]! }));
    const pm = take(projNames);
    let projector: Projector;
    try {
      projector = Projector.fromStateDict(pm, { inDim: innerDim(model.config), hiddenDim: align.projector_dim, outDim: align.align_dims[0]! });
    } finally {
      tf.dispose([...pm.values()]);
    }
    let downsampler: Downsampler | null = null;
    if (alignKeys.includes('downsampler_cogvideo_output.weight')) {
      const ds = src.shape('downsampler_cogvideo_output.weight');
      const dm = take(['downsampler_cogvideo_output.weight', 'downsampler_cogvideo_output.bias']);
      try {
        downsampler = Downsampler.fromStateDict(dm, { channels: ds[1]!, outChannels: ds[0]!, kernel: [ds[2]!, ds[3]!], stride: [ds[2]!, ds[3]!] });
      } finally {
        tf.dispose([...dm.values()]);
      }
    } else if (strict) {
      projector.dispose();
      throw new Error(`${what}: has a projector but no 'downsampler_cogvideo_output.weight' (a VideoREPA checkpoint has both)`);
    }
    model.setAlignParts(align, projector, downsampler);
    const used = new Set([...projNames, 'downsampler_cogvideo_output.weight', 'downsampler_cogvideo_output.bias']);
    for (const k of alignKeys) (used.has(k) ? report.loaded : report.unexpected).push(k);
  }
  return { ...report, align };
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
export function fromPretrained(dir: string, opts: FromPretrainedOptions = {}): { model: CogVideoXTransformer3DModel; report: LoadWeightsReport } {
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
  const model = new CogVideoXTransformer3DModel(config, { init: 'zeros', align: false });
  try {
    const src: WeightSource = {
      keys: () => ckpt.tensors.keys(),
      shape: (k) => ckpt.tensors.get(k)!.shape,
      read: (k) => ckpt.tensors.get(k)!.read(),
    };
    const report = loadTransformerWeights(model, src, { ...opts, alignLayer: opts.alignLayer ?? align?.align_layer, source: weights });
    if (!report.align && opts.align) model.createAlignParts(opts.align);
    return { model, report };
  } catch (e) {
    model.dispose();
    throw e;
  } finally {
    ckpt.close();
  }
}

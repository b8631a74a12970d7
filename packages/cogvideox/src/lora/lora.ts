/**
 * LoRA for the CogVideoX transformer, as the official VideoREPA trainer sets it up (PEFT LoraConfig:
 * rank r = 128, lora_alpha = 64, target modules `to_q`, `to_k`, `to_v`, `to_out.0`, init_lora_weights
 * True) and saves it (diffusers `save_lora_weights`: one safetensors file, keys
 * `transformer.<module path>.lora_A.weight` `[r, in]` / `lora_B.weight` `[out, r]`). Our files also
 * carry diffusers' `lora_adapter_metadata` (the LoraConfig, keys prefixed `transformer.`) so that
 * diffusers' `load_lora_weights` restores α (without it diffusers assumes α = r, i.e. scale 1).
 *
 * In LoRA mode only the adapters and the VideoREPA projector/downsampler are trainable; full finetune
 * is `model.requiresGrad(true)` (the "sft" mode of the official trainer).
 */
import fs from 'node:fs';
import { dirname } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { SafetensorsFile, hostToStreamEntry, hostToTensor, writeSafetensors, writeSafetensorsStream, type Rng, type SafetensorsStreamEntry } from '@vrepa/core';
import type { CogVideoXTransformer3DModel } from '../transformer/model.js';
import { LoraLinear } from './lora-linear.js';

export interface LoraConfig {
  /** rank r (paper / official default 128) */
  rank: number;
  /** lora_alpha α (official 64): the update is scaled by α / r */
  alpha: number;
  /** module names inside each attention block (PEFT target_modules); default to_q, to_k, to_v, to_out.0 */
  targetModules: string[];
}

export const LORA_DEFAULTS: LoraConfig = { rank: 128, alpha: 64, targetModules: ['to_q', 'to_k', 'to_v', 'to_out.0'] };

/** diffusers' metadata key in the safetensors header. */
export const LORA_ADAPTER_METADATA_KEY = 'lora_adapter_metadata';
/** the key prefix of the transformer's entries in a pipeline LoRA file */
export const LORA_PREFIX = 'transformer.';

/** The LoRA-capable linears of the model matching `targetModules`, by dotted path. */
export function loraTargets(model: CogVideoXTransformer3DModel, targetModules: string[] = LORA_DEFAULTS.targetModules): Map<string, LoraLinear> {
  const out = new Map<string, LoraLinear>();
  for (const [name, m] of model.namedModules()) {
    if (!(m instanceof LoraLinear)) continue;
    if (targetModules.some((t) => name === t || name.endsWith(`.${t}`))) out.set(name, m);
  }
  return out;
}

/**
 * Add LoRA adapters (A random, B zero: the output is unchanged) to the target modules and (unless
 * `freezeBase: false`) make only them and the VideoREPA align parts trainable, as the official trainer.
 * Returns the adapted module paths.
 */
export function addLora(model: CogVideoXTransformer3DModel, config: Partial<LoraConfig> = {}, opts: { rng?: Rng; freezeBase?: boolean } = {}): string[] {
  const c: LoraConfig = { ...LORA_DEFAULTS, ...config };
  if (!Array.isArray(c.targetModules) || c.targetModules.length === 0) throw new Error('addLora: targetModules must be a non-empty list');
  const targets = loraTargets(model, c.targetModules);
  if (targets.size === 0) throw new Error(`addLora: no module matches targetModules ${JSON.stringify(c.targetModules)} (LoRA-capable: to_q, to_k, to_v, to_out.0)`);
  for (const t of c.targetModules) {
    if (![...targets.keys()].some((n) => n === t || n.endsWith(`.${t}`))) throw new Error(`addLora: target module '${t}' matches nothing in the transformer`);
  }
  for (const lin of targets.values()) lin.addLora(c.rank, c.alpha, { rng: opts.rng });
  if (opts.freezeBase ?? true) {
    // official LoRA mode: only the adapters, the projector and the downsampler train
    model.requiresGrad(false);
    model.setTrainable((n) => n.includes('.lora_A.') || n.includes('.lora_B.') || n.startsWith('projectors.') || n.startsWith('downsampler_cogvideo_output.'), true);
  }
  return [...targets.keys()];
}

/** Every adapted linear of the model, by dotted path. */
export function loraModules(model: CogVideoXTransformer3DModel): Map<string, LoraLinear> {
  const out = new Map<string, LoraLinear>();
  for (const [name, m] of model.namedModules()) if (m instanceof LoraLinear && m.hasLora) out.set(name, m);
  return out;
}

/** The adapter state dict in the diffusers/PEFT file format (keys `transformer.…lora_A.weight`, PyTorch layout). */
export function loraStateDict(model: CogVideoXTransformer3DModel): Map<string, tf.Tensor> {
  const out = new Map<string, tf.Tensor>();
  for (const [name, m] of loraModules(model)) {
    const l = m.lora!;
    out.set(`${LORA_PREFIX}${name}.lora_A.weight`, tf.transpose(l.A.weight.value)); // [r, in]
    out.set(`${LORA_PREFIX}${name}.lora_B.weight`, tf.transpose(l.B.weight.value)); // [out, r]
  }
  return out;
}

/** The LoraConfig the adapters of `model` were made with (one rank/alpha for all). */
export function loraConfigOf(model: CogVideoXTransformer3DModel): LoraConfig {
  const mods = [...loraModules(model).entries()];
  if (!mods.length) throw new Error('loraConfigOf: the model has no LoRA adapters');
  const [, first] = mods[0]!;
  const targets = new Set<string>();
  for (const [name, m] of mods) {
    if (m.rank !== first.rank || m.alpha !== first.alpha) throw new Error(`loraConfigOf: ${name} has rank ${m.rank} / alpha ${m.alpha}, others ${first.rank} / ${first.alpha}`);
    const parts = name.split('.');
    targets.add(parts.at(-1) === '0' && parts.at(-2) === 'to_out' ? 'to_out.0' : parts.at(-1)!);
  }
  return { rank: first.rank, alpha: first.alpha, targetModules: [...targets] };
}

/** diffusers' `lora_adapter_metadata` for a LoraConfig (the PEFT LoraConfig fields, keys prefixed `transformer.`). */
export function loraAdapterMetadata(c: Pick<LoraConfig, 'rank' | 'alpha' | 'targetModules'>): string {
  const meta = {
    [`${LORA_PREFIX}r`]: c.rank,
    [`${LORA_PREFIX}lora_alpha`]: c.alpha,
    [`${LORA_PREFIX}target_modules`]: c.targetModules,
    [`${LORA_PREFIX}init_lora_weights`]: true,
    [`${LORA_PREFIX}lora_dropout`]: 0.0,
    [`${LORA_PREFIX}bias`]: 'none',
    [`${LORA_PREFIX}use_dora`]: false,
    [`${LORA_PREFIX}use_rslora`]: false,
  };
  return JSON.stringify(meta, Object.keys(meta).sort(), 2);
}

export interface SaveLoraOptions {
  /**
   * Bake the scale α/r into `lora_B` and store `lora_alpha = r`: the same update W + (α/r)·B·A for every
   * loader, including those that ignore `lora_adapter_metadata` and run the adapter at scale 1
   * (older diffusers, the official inference script without `lora_scale`). Default false (α in the metadata).
   */
  bakeScale?: boolean;
}

/**
 * Save the adapters as diffusers does (`pytorch_lora_weights.safetensors` in a folder, or the given
 * `.safetensors` path), with `lora_adapter_metadata`. Adapters must be unmerged (their A/B are saved).
 */
export function saveLora(model: CogVideoXTransformer3DModel, outPath: string, opts: SaveLoraOptions = {}): string {
  const mods = loraModules(model);
  if (!mods.size) throw new Error('saveLora: the model has no LoRA adapters');
  for (const [n, m] of mods) if (m.merged) throw new Error(`saveLora: ${n} is merged; unmerge before saving`);
  const c = loraConfigOf(model);
  const file = outPath.endsWith('.safetensors') ? outPath : `${outPath.replace(/\/$/, '')}/pytorch_lora_weights.safetensors`;
  const sd = loraStateDict(model);
  try {
    if (opts.bakeScale) {
      for (const [k, t] of [...sd]) {
        if (!k.endsWith('.lora_B.weight')) continue;
        sd.set(k, tf.tidy(() => tf.mul(t, c.alpha / c.rank)));
        t.dispose();
      }
    }
    const meta = loraAdapterMetadata(opts.bakeScale ? { ...c, alpha: c.rank } : c);
    const dir = file.slice(0, file.lastIndexOf('/'));
    if (dir) fs.mkdirSync(dir, { recursive: true });
    writeSafetensors(file, sd, { metadata: { format: 'pt', [LORA_ADAPTER_METADATA_KEY]: meta } });
  } finally {
    tf.dispose([...sd.values()]);
  }
  return file;
}

export interface LoadLoraOptions {
  /** α when the file has no adapter metadata (diffusers then uses α = r, scale 1; pass the training α, e.g. 64) */
  alpha?: number;
  /** Prefix of the transformer's keys in the file (default 'transformer.'; '' for a bare PEFT state dict). */
  prefix?: string;
}

/**
 * Load a LoRA file (diffusers/PEFT format). Every key must name an adaptable linear of this model with
 * matching shapes — otherwise the error lists the offending keys (a LoRA file for another model).
 * Adapters are created when the model has none (rank from the file, α from the metadata / `alpha` /
 * rank), and their A/B are set exactly.
 */
export function loadLora(model: CogVideoXTransformer3DModel, file: string, opts: LoadLoraOptions = {}): { rank: number; alpha: number; modules: string[] } {
  const st = SafetensorsFile.open(file);
  try {
    const prefix = opts.prefix ?? LORA_PREFIX;
    let meta: Record<string, unknown> | null = null;
    const rawMeta = st.metadata[LORA_ADAPTER_METADATA_KEY];
    if (rawMeta) {
      try {
        meta = JSON.parse(rawMeta) as Record<string, unknown>;
      } catch {
        throw new Error(`loadLora: ${file}: metadata '${LORA_ADAPTER_METADATA_KEY}' is not JSON`);
      }
    }
    const keys = st.keys();
    if (!keys.length) throw new Error(`loadLora: ${file} holds no tensors`);
    const modules = new Map<string, { A?: string; B?: string }>();
    const bad: string[] = [];
    for (const k of keys) {
      const m = k.match(/^(.*)\.lora_([AB])\.weight$/);
      if (!k.startsWith(prefix) || !m) {
        bad.push(`${k} (not a ${prefix}….lora_A/B.weight key)`);
        continue;
      }
      const path = m[1]!.slice(prefix.length);
      const e = modules.get(path) ?? {};
      e[m[2] as 'A' | 'B'] = k;
      modules.set(path, e);
    }
    const all = new Map<string, LoraLinear>();
    for (const [name, mm] of model.namedModules()) if (mm instanceof LoraLinear) all.set(name, mm);
    let rank = 0;
    for (const [path, e] of modules) {
      const lin = all.get(path);
      if (!lin) {
        bad.push(`${path} (no such adaptable linear in this transformer: it has ${model.config.num_layers} blocks)`);
        continue;
      }
      if (!e.A || !e.B) {
        bad.push(`${path} (lora_${e.A ? 'B' : 'A'}.weight missing)`);
        continue;
      }
      const a = st.info(e.A).shape;
      const b = st.info(e.B).shape;
      if (a.length !== 2 || b.length !== 2 || a[1] !== lin.inFeatures || b[0] !== lin.outFeatures || a[0] !== b[1]) {
        bad.push(`${path} (lora_A [${a}] / lora_B [${b}] do not fit a ${lin.inFeatures}→${lin.outFeatures} linear)`);
        continue;
      }
      if (rank && a[0] !== rank) bad.push(`${path} (rank ${a[0]}, other modules ${rank})`);
      rank = rank || a[0]!;
      if (lin.hasLora && lin.rank !== a[0]) bad.push(`${path} (file rank ${a[0]}, the model's adapter has rank ${lin.rank})`);
    }
    if (bad.length) throw new Error(`loadLora: ${file} does not fit this transformer: ${bad.slice(0, 8).join('; ')}${bad.length > 8 ? `; … (${bad.length} problems)` : ''}`);
    const metaAlpha = meta && typeof meta[`${prefix}lora_alpha`] === 'number' ? (meta[`${prefix}lora_alpha`] as number) : undefined;
    const alpha = metaAlpha ?? opts.alpha ?? rank;
    tf.tidy(() => {
      for (const [path, e] of modules) {
        const lin = all.get(path)!;
        if (!lin.hasLora) lin.addLora(rank, alpha);
        else if (lin.merged) throw new Error(`loadLora: ${path} is merged; unmerge before loading`);
        else lin.setAlpha(alpha);
        lin.lora!.A.weight.value.assign(tf.transpose(tf.cast(hostToTensor(st.read(e.A!), e.A), 'float32')));
        lin.lora!.B.weight.value.assign(tf.transpose(tf.cast(hostToTensor(st.read(e.B!), e.B), 'float32')));
      }
    });
    return { rank, alpha, modules: [...modules.keys()] };
  } finally {
    st.close();
  }
}

/** Fold every adapter into its base weight (inference speed); `unmergeLora` takes them out again. */
export function mergeLora(model: CogVideoXTransformer3DModel): void {
  for (const m of loraModules(model).values()) m.merge();
}

export function unmergeLora(model: CogVideoXTransformer3DModel): void {
  for (const m of loraModules(model).values()) m.unmerge();
}

export interface BakeLoraOptions {
  /** α when the file has no adapter metadata (as `loadLora`'s; the metadata's α wins when present) */
  alpha?: number;
  /** Prefix of the transformer's keys (default 'transformer.') */
  prefix?: string;
}

/**
 * Rewrite a LoRA file for loaders that ignore `lora_adapter_metadata`: every `lora_B` multiplied by α/r
 * (r = that adapter's rank), the metadata's `lora_alpha` set to r. Merged weights are unchanged:
 * W + (α/r)·B·A = W + (r/r)·(α/r·B)·A. Other tensors and metadata are copied; stored dtypes are kept
 * (with F16/BF16 storage a scale that is not a power of two rounds B to that dtype). Returns α and r.
 */
export function bakeLoraFile(inFile: string, outFile: string, opts: BakeLoraOptions = {}): { rank: number; alpha: number; scaled: number } {
  const what = 'bakeLoraFile';
  const prefix = opts.prefix ?? LORA_PREFIX;
  const st = SafetensorsFile.open(inFile);
  try {
    const metadata = { ...st.metadata };
    let meta: Record<string, unknown> | null = null;
    if (metadata[LORA_ADAPTER_METADATA_KEY]) {
      try {
        meta = JSON.parse(metadata[LORA_ADAPTER_METADATA_KEY]) as Record<string, unknown>;
      } catch {
        throw new Error(`${what}: ${inFile}: metadata '${LORA_ADAPTER_METADATA_KEY}' is not JSON`);
      }
    }
    const metaAlpha = meta && typeof meta[`${prefix}lora_alpha`] === 'number' ? (meta[`${prefix}lora_alpha`] as number) : undefined;
    const alpha = metaAlpha ?? opts.alpha;
    if (alpha === undefined) {
      throw new Error(`${what}: ${inFile} has no ${LORA_ADAPTER_METADATA_KEY} with ${prefix}lora_alpha; pass alpha (--alpha), the α it was trained with`);
    }
    if (!(alpha > 0)) throw new Error(`${what}: alpha must be > 0, got ${alpha}`);
    const keys = st.keys();
    const bKeys = keys.filter((k) => k.endsWith('.lora_B.weight'));
    if (!bKeys.length) throw new Error(`${what}: ${inFile} holds no ….lora_B.weight tensors`);
    const ranks = new Set(bKeys.map((k) => st.info(k).shape[1]!));
    if (ranks.size !== 1) throw new Error(`${what}: ${inFile} has adapters of several ranks (${[...ranks].join(', ')}); one α/r per file is supported`);
    const rank = [...ranks][0]!;
    const scale = alpha / rank;
    const entries: SafetensorsStreamEntry[] = keys.map((k) => {
      const info = st.info(k);
      const dtype = info.dtype === 'F32' || info.dtype === 'F16' || info.dtype === 'BF16' ? info.dtype : undefined;
      return {
        name: k,
        dtype: info.dtype,
        shape: [...info.shape],
        bytes: () => {
          const x = st.read(k);
          if (!k.endsWith('.lora_B.weight')) return hostToStreamEntry(k, x, dtype).bytes();
          const data = Float32Array.from(x.data as ArrayLike<number>, (v) => v * scale);
          return hostToStreamEntry(k, { dtype: 'F32', shape: x.shape, data }, dtype).bytes();
        },
      };
    });
    if (meta) metadata[LORA_ADAPTER_METADATA_KEY] = JSON.stringify({ ...meta, [`${prefix}lora_alpha`]: rank }, Object.keys(meta).sort(), 2);
    fs.mkdirSync(dirname(outFile), { recursive: true });
    writeSafetensorsStream(outFile, entries, { metadata });
    return { rank, alpha, scaled: bKeys.length };
  } finally {
    st.close();
  }
}

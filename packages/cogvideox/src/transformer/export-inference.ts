/**
 * `exportForInference(inDir, outDir)`: a VideoREPA transformer folder (the full export `final/transformer`,
 * or an official VideoREPA checkpoint) → the same transformer without its training-only align parts:
 * config.json without `align_layer` / `align_dims` / `projector_dim`, weights without `projectors.*` /
 * `downsampler_cogvideo_output.*`. That folder is what stock diffusers' CogVideoXTransformer3DModel loads
 * without "config attributes … not expected" or "weights not used" warnings. Every other key and value is
 * copied unchanged, tensor by tensor (peak memory ≈ one tensor); stored dtypes are kept (F16 / BF16 are
 * widened on read and narrowed back exactly) unless `dtype` asks for another.
 * The output appears whole or not at all (written beside it, then renamed).
 */
import fs from 'node:fs';
import path from 'node:path';
import { hostToStreamEntry, openCheckpoint, type SafetensorsStreamEntry } from '@vrepa/core';
import { ALIGN_CONFIG_KEYS, isAlignKey, resolveTransformerConfig } from './config.js';
import { findDiffusersWeights } from './load.js';
import { writeDiffusersWeights } from './save.js';

export interface ExportForInferenceOptions {
  /** diffusers weight variant of the input (and of the output's file names), e.g. 'fp16' */
  variant?: string;
  /** stored float dtype of the output (default: each tensor's input dtype) */
  dtype?: 'F32' | 'F16' | 'BF16';
  /** shard the output above this many bytes (default 5 GB, as diffusers) */
  maxShardBytes?: number;
  /** replace an existing non-empty output folder */
  overwrite?: boolean;
}

export interface ExportForInferenceResult {
  /** the files of the output folder */
  files: string[];
  /** what was left out: config fields and weight names */
  dropped: { config: string[]; weights: string[] };
  /** tensors written */
  tensors: number;
}

const FLOATS = new Set(['F32', 'F16', 'BF16']);

export function exportForInference(inDir: string, outDir: string, opts: ExportForInferenceOptions = {}): ExportForInferenceResult {
  const what = 'exportForInference';
  const cfgPath = path.join(inDir, 'config.json');
  if (!fs.existsSync(cfgPath)) {
    const hint = fs.existsSync(path.join(inDir, 'transformer', 'config.json')) ? ` (a pipeline folder? pass ${path.join(inDir, 'transformer')})` : '';
    throw new Error(`${what}: ${cfgPath} does not exist: the input must be a diffusers transformer folder${hint}`);
  }
  let raw: Record<string, unknown>;
  try {
    raw = JSON.parse(fs.readFileSync(cfgPath, 'utf8')) as Record<string, unknown>;
  } catch (e) {
    throw new Error(`${what}: cannot read ${cfgPath} (${(e as Error).message})`);
  }
  resolveTransformerConfig(raw, cfgPath); // a CogVideoX transformer config, or one clear error
  if (path.resolve(inDir) === path.resolve(outDir)) throw new Error(`${what}: the output ${outDir} is the input folder; choose another`);
  if (fs.existsSync(outDir) && (!fs.statSync(outDir).isDirectory() || fs.readdirSync(outDir).length > 0) && !opts.overwrite) {
    throw new Error(`${what}: ${outDir} exists and is not empty (pass overwrite / --overwrite to replace it)`);
  }
  const weights = findDiffusersWeights(inDir, opts.variant);
  const ckpt = openCheckpoint(weights);
  const tmp = `${outDir.replace(/\/+$/, '')}.tmp-${process.pid}`;
  fs.rmSync(tmp, { recursive: true, force: true });
  try {
    fs.mkdirSync(tmp, { recursive: true });
    const config = Object.fromEntries(Object.entries(raw).filter(([k]) => !(ALIGN_CONFIG_KEYS as readonly string[]).includes(k)));
    fs.writeFileSync(path.join(tmp, 'config.json'), JSON.stringify(config, null, 2) + '\n');
    const dropped: string[] = [];
    const entries: SafetensorsStreamEntry[] = [];
    for (const [name, t] of ckpt.tensors) {
      if (isAlignKey(name)) {
        dropped.push(name);
        continue;
      }
      const dtype = FLOATS.has(t.dtype) ? (opts.dtype ?? (t.dtype as 'F32' | 'F16' | 'BF16')) : undefined;
      entries.push({ name, dtype: dtype ?? t.dtype, shape: [...t.shape], bytes: () => hostToStreamEntry(name, t.read(), dtype).bytes() });
    }
    const files = writeDiffusersWeights(tmp, entries, { maxShardBytes: opts.maxShardBytes, variant: opts.variant });
    // swap in: the old output (if any) is removed only after the new one is in place
    const old = fs.existsSync(outDir) ? `${outDir.replace(/\/+$/, '')}.old-${process.pid}` : null;
    if (old) fs.renameSync(outDir, old);
    fs.renameSync(tmp, outDir);
    if (old) fs.rmSync(old, { recursive: true, force: true });
    return {
      files: [path.join(outDir, 'config.json'), ...files.map((f) => path.join(outDir, path.basename(f)))],
      dropped: { config: ALIGN_CONFIG_KEYS.filter((k) => k in raw), weights: dropped },
      tensors: entries.length,
    };
  } catch (e) {
    fs.rmSync(tmp, { recursive: true, force: true });
    throw e;
  } finally {
    ckpt.close();
  }
}

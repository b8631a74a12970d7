/**
 * Pre-training checkpoints in the official layout (OpenGVLab/VideoMAEv2 `utils.save_model`): the state
 * dict under `model` of a `.pth` (PyTorch zip; `torch.load(f)['model']` loads into the official
 * `PretrainVisionTransformer`), or at the top level of a `.safetensors`. Ours also carry the config
 * (`.pth`: a JSON string under `vrepa_pretrain_config`; safetensors: the same key in the metadata), so
 * that the model — or its encoder as a teacher (`VideoMAEv2.fromCheckpoint`) — is rebuilt without
 * guessing. Official checkpoints have no config: it is given, or inferred from the shapes and the
 * registered presets. Loading is strict: one error lists every missing, unexpected and mis-shaped key.
 */
import * as tf from '@tensorflow/tfjs';
import { openCheckpoint, openCheckpointBytes, stateDictCandidates, writePth, writeSafetensors, type Checkpoint, type OpenCheckpointOptions, type PthValue } from '@vrepa/core';
import { PRETRAIN_CONFIGS, VideoMAEPretrain, pretrainConfig, pretrainImageSize, pretrainVitArch, type VideoMAEPretrainConfig } from './videomae-pretrain.js';
import { checkpointName, type CheckpointInput, type TeacherConfig } from './teacher.js';

/** Where our checkpoints keep their config (pickle key / safetensors metadata key). */
export const PRETRAIN_CONFIG_KEY = 'vrepa_pretrain_config';

export interface SavePretrainOptions {
  /** 'pth' or 'safetensors'; default from the extension (`.safetensors` → safetensors, else pth) */
  format?: 'pth' | 'safetensors';
  /** extra top-level entries of a `.pth` (e.g. `{ epoch: 3 }`), next to `model` and the config */
  extra?: Record<string, PthValue>;
}

const formatOf = (file: string, f?: 'pth' | 'safetensors') => f ?? (file.endsWith('.safetensors') ? 'safetensors' : 'pth');

/** Write `model`'s state dict (PyTorch layout, official names) and its config; atomic. */
export function savePretrainCheckpoint(model: VideoMAEPretrain, file: string, opts: SavePretrainOptions = {}): void {
  const sd = model.stateDict();
  try {
    const config = JSON.stringify(model.config);
    if (formatOf(file, opts.format) === 'safetensors') {
      writeSafetensors(file, Object.fromEntries(sd), { metadata: { format: 'pt', [PRETRAIN_CONFIG_KEY]: config } });
    } else {
      const reserved = Object.keys(opts.extra ?? {}).filter((k) => k === 'model' || k === PRETRAIN_CONFIG_KEY);
      if (reserved.length) throw new Error(`savePretrainCheckpoint: extra may not use the reserved key(s) ${reserved.join(', ')}`);
      writePth(file, { model: sd as Map<string, PthValue>, [PRETRAIN_CONFIG_KEY]: config, ...(opts.extra ?? {}) });
    }
  } finally {
    tf.dispose([...sd.values()]);
  }
}

/** Where the state dict sits in a checkpoint: `key` if given, else `model`, `module`, `state_dict`, else the top level. */
function chooseKey(file: string, tree: unknown, key?: string): string {
  if (key !== undefined) return key;
  const cands = new Set(stateDictCandidates(tree).map((c) => c.key));
  const k = ['model', 'module', 'state_dict'].find((x) => cands.has(x)) ?? (cands.has('') ? '' : undefined);
  if (k === undefined) throw new Error(`${file}: no state dict under 'model', 'module', 'state_dict' or at the top level (dicts holding tensors: ${[...cands].map((c) => `'${c}'`).join(', ') || 'none'}); pass key`);
  return k;
}

export interface OpenPretrainOptions {
  /** dotted location of the state dict; default `model`, `module`, `state_dict`, then the top level */
  key?: string;
}

/** Open a pre-training checkpoint: the tensors at the state dict's location and the stored config (ours) or null (official). */
export function openPretrainCheckpoint(input: CheckpointInput, opts: OpenPretrainOptions & { name?: string } = {}): { ck: Checkpoint; key: string; config: VideoMAEPretrainConfig | null } {
  // a path (Node) or the bytes of a safetensors checkpoint (anywhere; `name` names them in messages)
  const file = checkpointName(input, opts);
  let tree: unknown;
  let key = '';
  const options: OpenCheckpointOptions = {
    key: (t: unknown) => {
      tree = t;
      key = chooseKey(file, t, opts.key);
      return key;
    },
    allowGlobals: ['argparse.Namespace'],
  };
  let ck: Checkpoint;
  try {
    ck = typeof input === 'string' ? openCheckpoint(input, options) : openCheckpointBytes(input, { ...options, name: file });
  } catch (e) {
    // core says `cannot open (ENOENT)`; say it in this function's words (no node:fs here: it bundles for browsers)
    if (typeof input === 'string' && /cannot open \(ENOENT\)/.test((e as Error).message)) throw new Error(`${file}: no such checkpoint`);
    throw e;
  }
  try {
    let text: string | undefined = ck.metadata[PRETRAIN_CONFIG_KEY];
    const node = tree && typeof tree === 'object' ? (tree as Record<string, unknown>)[PRETRAIN_CONFIG_KEY] : undefined;
    if (text === undefined && typeof node === 'string') text = JSON.parse(node) as string; // summary strings are JSON-quoted
    let config: VideoMAEPretrainConfig | null = null;
    if (text !== undefined) {
      try {
        config = pretrainConfig(JSON.parse(text) as VideoMAEPretrainConfig);
      } catch (e) {
        throw new Error(`${file}: the stored ${PRETRAIN_CONFIG_KEY} is not a valid config (${(e as Error).message})`);
      }
    }
    return { ck, key, config };
  } catch (e) {
    ck.close();
    throw e;
  }
}

/** The config stored in one of our checkpoints, or null (official checkpoints have none). */
export function readPretrainCheckpointConfig(file: CheckpointInput, opts: OpenPretrainOptions & { name?: string } = {}): VideoMAEPretrainConfig | null {
  const { ck, config } = openPretrainCheckpoint(file, opts);
  ck.close();
  return config;
}

/**
 * The config an official pre-training state dict fits: dims, depths, patch and tubelet from the shapes;
 * head counts (not in any shape) from the registered preset with the same encoder / decoder width;
 * qkv bias and layer scale from the keys present. `imgSize` / `numFrames` are not in the state dict
 * (the position tables are not saved): they default to the official 224 / 16 unless given.
 */
export function inferPretrainConfig(names: readonly string[], shapeOf: (n: string) => number[], given: Partial<VideoMAEPretrainConfig> = {}): VideoMAEPretrainConfig {
  const has = new Set(names);
  const pe = 'encoder.patch_embed.proj.weight';
  if (!has.has(pe)) throw new Error(`inferPretrainConfig: no ${pe} in the state dict (keys start: ${names.slice(0, 6).join(', ')}); is this a VideoMAE pre-training checkpoint?`);
  const [encDim, chans, tubelet, patch] = shapeOf(pe) as [number, number, number, number];
  const depthOf = (prefix: string) => names.reduce((d, n) => (n.startsWith(prefix) ? Math.max(d, Number(n.slice(prefix.length).split('.')[0]) + 1) : d), 0);
  const decDim = has.has('mask_token') ? shapeOf('mask_token')[2]! : has.has('decoder.norm.weight') ? shapeOf('decoder.norm.weight')[0]! : 0;
  const hidden = has.has('encoder.blocks.0.mlp.fc1.weight') ? shapeOf('encoder.blocks.0.mlp.fc1.weight')[0]! : 4 * encDim;
  const presets = Object.values(PRETRAIN_CONFIGS);
  const encPreset = presets.find((c) => c.encoderEmbedDim === encDim);
  const decPreset = presets.find((c) => c.decoderEmbedDim === decDim);
  const encHeads = given.encoderNumHeads ?? encPreset?.encoderNumHeads;
  const decHeads = given.decoderNumHeads ?? decPreset?.decoderNumHeads;
  if (!encHeads || !decHeads)
    throw new Error(`inferPretrainConfig: no registered preset has encoder width ${encDim}${encHeads ? '' : ' (encoder heads unknown)'} / decoder width ${decDim}${decHeads ? '' : ' (decoder heads unknown)'}; pass encoderNumHeads / decoderNumHeads`);
  return pretrainConfig({
    name: given.name ?? encPreset?.name ?? 'videomae-pretrain-checkpoint',
    imgSize: given.imgSize ?? 224,
    numFrames: given.numFrames ?? 16,
    patchSize: patch,
    tubeletSize: tubelet,
    inChans: chans,
    encoderEmbedDim: encDim,
    encoderDepth: depthOf('encoder.blocks.'),
    encoderNumHeads: encHeads,
    decoderEmbedDim: decDim,
    decoderDepth: depthOf('decoder.blocks.'),
    decoderNumHeads: decHeads,
    mlpRatio: given.mlpRatio ?? hidden / encDim,
    qkvBias: has.has('encoder.blocks.0.attn.q_bias'),
    // the gammas are loaded; initValues only says that they exist
    initValues: given.initValues ?? (has.has('encoder.blocks.0.gamma_1') ? 1e-5 : 0),
    layerNormEps: given.layerNormEps ?? 1e-6,
    maxScoreElements: given.maxScoreElements,
  });
}

export interface LoadPretrainOptions extends OpenPretrainOptions {
  /** the config (a registered name or a full config); default: the stored one, else inferred from the shapes */
  config?: string | VideoMAEPretrainConfig;
  /** fields to override on the stored / inferred config (e.g. `{ imgSize: 112, numFrames: 16 }` for an official checkpoint) */
  overrides?: Partial<VideoMAEPretrainConfig>;
}

/**
 * A pre-training model from a checkpoint (ours or official, any size) to resume pre-training: strict —
 * every model key present with its shape and no unknown key, or one error listing all of them.
 */
export function loadPretrainCheckpoint(file: string, opts: LoadPretrainOptions = {}): VideoMAEPretrain {
  const { ck, key, config: stored } = openPretrainCheckpoint(file, opts);
  try {
    const names = [...ck.tensors.keys()];
    const shapeOf = (n: string) => ck.tensors.get(n)!.shape;
    const config =
      opts.config !== undefined ? pretrainConfig(opts.config, opts.overrides) : stored ? pretrainConfig(stored, opts.overrides) : inferPretrainConfig(names, shapeOf, opts.overrides);
    const model = new VideoMAEPretrain(config, { init: 'zeros' });
    try {
      model.loadStateDict({ keys: () => names, read: (n: string) => ck.tensors.get(n)!.read(), info: (n: string) => ({ shape: shapeOf(n) }) }, { strict: true, source: `${file}${key ? `, key '${key}'` : ''}` });
      return model;
    } catch (e) {
      model.dispose();
      throw e;
    }
  } finally {
    ck.close();
  }
}

/** The stored config of a checkpoint when it is one of our pre-training checkpoints; null for anything else (never throws for foreign files). */
export function peekPretrainConfig(file: CheckpointInput, opts: { name?: string } = {}): VideoMAEPretrainConfig | null {
  try {
    return readPretrainCheckpointConfig(file, { name: opts.name });
  } catch {
    return null;
  }
}

/** The VideoMAEv2 teacher config of a pre-training model's encoder (same ViT, same fixed table on the same grid). */
export function teacherConfigFromPretrain(c: VideoMAEPretrainConfig): TeacherConfig {
  const [h, w] = pretrainImageSize(c);
  const { init: _init, ...arch } = pretrainVitArch(c, 'encoder');
  return {
    ...arch,
    family: 'videomaev2',
    name: `${c.name}-encoder`,
    official: `encoder of ${c.name}`,
    imgSize: h,
    ...(h !== w ? { imgHW: [h, w] as const } : {}),
    numFrames: c.numFrames,
  };
}

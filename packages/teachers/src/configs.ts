/**
 * Teacher configs by name, mirroring the official factories (dims, depths, heads, MLP ratio, patch,
 * tubelet, pre-training clip size, LayerNorm eps 1e-6, qkv bias layout).
 */
import type { TeacherConfig, TeacherFamily } from './teacher.js';

type Base = Omit<TeacherConfig, 'name' | 'official' | 'embedDim' | 'depth' | 'numHeads' | 'family'>;

const VIDEOMAE_BASE: Base = {
  mlpRatio: 4,
  patchSize: 16,
  tubeletSize: 2,
  inChans: 3,
  qkvBias: 'qv',
  layerNormEps: 1e-6,
  imgSize: 224,
  numFrames: 16,
};

const VJEPA_BASE: Base = { ...VIDEOMAE_BASE, qkvBias: 'qkv', uniformPower: true, finalNorm: true };
const OMNIMAE_BASE: Base = { ...VIDEOMAE_BASE, qkvBias: 'qkv', patchEmbedSeqIndex: 1, finalNorm: true };

function cfg(family: TeacherFamily, name: string, official: string, embedDim: number, depth: number, numHeads: number, extra: Partial<TeacherConfig> = {}): TeacherConfig {
  const base = family === 'vjepa' ? VJEPA_BASE : family === 'omnimae' ? OMNIMAE_BASE : VIDEOMAE_BASE;
  return Object.freeze({ ...base, family, name, official, embedDim, depth, numHeads, ...extra });
}

/** Every registered config. VideoMAEv2-B is the official VideoREPA default. */
export const TEACHER_CONFIGS: Readonly<Record<string, TeacherConfig>> = Object.freeze({
  'videomaev2-s': cfg('videomaev2', 'videomaev2-s', 'vit_small_patch16_224', 384, 12, 6),
  'videomaev2-b': cfg('videomaev2', 'videomaev2-b', 'vit_base_patch16_224', 768, 12, 12),
  'videomaev2-l': cfg('videomaev2', 'videomaev2-l', 'vit_large_patch16_224', 1024, 24, 16),
  'videomaev2-h': cfg('videomaev2', 'videomaev2-h', 'vit_huge_patch16_224', 1280, 32, 16),
  'videomaev2-g': cfg('videomaev2', 'videomaev2-g', 'vit_giant_patch14_224', 1408, 40, 16, { patchSize: 14, mlpRatio: 48 / 11 }),
  'videomae-b': cfg('videomae', 'videomae-b', 'vit_base_patch16_224', 768, 12, 12),
  'videomae-l': cfg('videomae', 'videomae-l', 'vit_large_patch16_224', 1024, 24, 16),
  'vjepa-l': cfg('vjepa', 'vjepa-l', 'vit_large (patch 16, 16 frames, 224)', 1024, 24, 16),
  'vjepa-h': cfg('vjepa', 'vjepa-h', 'vit_huge (patch 16, 16 frames, 224)', 1280, 32, 16),
  'vjepa-h384': cfg('vjepa', 'vjepa-h384', 'vit_huge (patch 16, 16 frames, 384)', 1280, 32, 16, { imgSize: 384 }),
  'omnimae-b': cfg('omnimae', 'omnimae-b', 'vit_base_mae_pretraining', 768, 12, 12),
  'omnimae-l': cfg('omnimae', 'omnimae-l', 'vit_large_mae_pretraining', 1024, 24, 16),
  'omnimae-h': cfg('omnimae', 'omnimae-h', 'vit_huge_mae_pretraining', 1280, 32, 16),
});

/** The default config of each family. */
export const DEFAULT_TEACHER: Readonly<Record<TeacherFamily, string>> = Object.freeze({ videomaev2: 'videomaev2-b', videomae: 'videomae-b', vjepa: 'vjepa-l', omnimae: 'omnimae-b' });

/** A config by name (or a full config, validated for its family). */
export function teacherConfig(c: string | TeacherConfig | undefined, family: TeacherFamily): TeacherConfig {
  if (c === undefined) return TEACHER_CONFIGS[DEFAULT_TEACHER[family]]!;
  if (typeof c === 'string') {
    const found = TEACHER_CONFIGS[c];
    if (!found) throw new Error(`teacher config '${c}' is not registered; known: ${Object.keys(TEACHER_CONFIGS).join(', ')}`);
    if (found.family !== family) throw new Error(`teacher config '${c}' is a ${found.family} config, not ${family}`);
    return found;
  }
  if (c.family !== family) throw new Error(`teacher config '${c.name}' is a ${c.family} config, not ${family}`);
  return c;
}

/** Construction options every teacher class takes (they override the config's `init` / `maxScoreElements`). */
export interface TeacherOptions {
  init?: 'torch' | 'zeros';
  maxScoreElements?: number;
}

/** `teacherConfig(c, family)` with the constructor options applied: what every teacher class passes to its base. */
export function teacherConfigWith(c: string | TeacherConfig | undefined, family: TeacherFamily, opts: TeacherOptions = {}): TeacherConfig {
  const base = teacherConfig(c, family);
  return { ...base, ...(opts.init ? { init: opts.init } : {}), ...(opts.maxScoreElements ? { maxScoreElements: opts.maxScoreElements } : {}) };
}

/**
 * The registered config of `family` that a state dict fits: embed dim, tubelet and patch from
 * `patch_embed.proj.weight` `[D, C, t, p, p]`, depth from the `blocks.{i}` keys, MLP width from
 * `blocks.0.mlp.fc1.weight`, V-JEPA's pre-training grid from `pos_embed`. Head counts are not in the
 * shapes; registered configs with the same shapes would be ambiguous (none are). Throws naming what it
 * found when no registered config fits.
 */
export function inferTeacherConfig(family: TeacherFamily, names: readonly string[], shapeOf: (name: string) => number[]): TeacherConfig {
  const has = new Set(names);
  const pe = ['patch_embed.proj.weight', 'patch_embed.proj.1.weight'].find((n) => has.has(n));
  if (!pe) throw new Error(`inferTeacherConfig(${family}): the state dict has no patch_embed.proj(.1).weight, so its config cannot be inferred; pass config`);
  const [dim, chans, tubelet, patch] = shapeOf(pe) as [number, number, number, number];
  let depth = 0;
  for (const n of names) {
    const m = /^blocks\.(\d+)\./.exec(n);
    if (m) depth = Math.max(depth, Number(m[1]) + 1);
  }
  const hidden = has.has('blocks.0.mlp.fc1.weight') ? shapeOf('blocks.0.mlp.fc1.weight')[0] : undefined;
  const posN = has.has('pos_embed') ? shapeOf('pos_embed')[1] : undefined;
  const fits = Object.values(TEACHER_CONFIGS).filter((c) => {
    if (c.family !== family || c.embedDim !== dim || c.depth !== depth || c.patchSize !== patch || c.tubeletSize !== tubelet || c.inChans !== chans) return false;
    if (hidden !== undefined && Math.floor(c.embedDim * c.mlpRatio) !== hidden) return false;
    if (family === 'vjepa' && posN !== undefined) {
      const s = Math.floor(c.imgSize / c.patchSize);
      if ((c.numFrames / c.tubeletSize) * s * s !== posN) return false;
    }
    return true;
  });
  if (fits.length === 1) return fits[0]!;
  const found = `dim ${dim}, depth ${depth}, patch ${patch}, tubelet ${tubelet}, ${chans} channels${hidden !== undefined ? `, MLP ${hidden}` : ''}${posN !== undefined ? `, ${posN} positions` : ''}`;
  if (!fits.length) throw new Error(`inferTeacherConfig(${family}): no registered ${family} config has ${found}; pass config (a TeacherConfig with numHeads etc.)`);
  throw new Error(`inferTeacherConfig(${family}): ${fits.map((c) => c.name).join(', ')} all fit ${found}; pass config`);
}

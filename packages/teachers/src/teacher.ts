/**
 * What every teacher shares: its config, the encoder body (patch embedding → position table → blocks,
 * features = last block output, no final norm), the official pre-processing, input checks, and loading
 * from the official checkpoint layouts.
 */
import * as tf from '@tensorflow/tfjs';
import {
  LayerNorm,
  Linear,
  Module,
  ModuleList,
  openCheckpoint,
  openCheckpointBytes,
  stateDictCandidates,
  type Checkpoint,
  type CheckpointTensor,
  type OpenCheckpointOptions,
  type StateTensor,
} from '@vrepa/core';
import { teacherInputReduced, teacherInputs, type ReducedOptions, type TeacherInputStrategy } from '@vrepa/align-dims';
import { PatchEmbed3d, makeBlocks, vitForwardFlops, type TeacherGrid, type VitArch, type VitBlock } from './vit.js';

export type TeacherFamily = 'videomaev2' | 'videomae' | 'vjepa' | 'omnimae';

export interface TeacherConfig extends VitArch {
  family: TeacherFamily;
  /** registry name, e.g. 'videomaev2-b' */
  name: string;
  /** the official factory it mirrors, e.g. 'vit_base_patch16_224' */
  official: string;
  /** pre-training frame size (square) the position table is built for */
  imgSize: number;
  /** non-square pre-training frames: [height, width] (overrides imgSize for the position table's grid) */
  imgHW?: readonly [number, number];
  /** pre-training clip length in frames (`all_frames` / `num_frames`) */
  numFrames: number;
  /** VideoMAE family: the `fc_norm` LayerNorm of the pooled head (fine-tuned checkpoints have it) */
  fcNorm?: boolean;
  /** VideoMAE family: classes of the classifier `head` (Linear after `fc_norm`); 0/undefined = none */
  numClasses?: number;
  /** V-JEPA: the final `norm` LayerNorm (in the state dict; not applied to features, as officially) */
  finalNorm?: boolean;
  /** OmniMAE: the patch-embedding Conv3d is item `patchEmbedSeqIndex` of an nn.Sequential */
  patchEmbedSeqIndex?: number;
  /** V-JEPA: 3D sincos table with equal depth/height/width parts */
  uniformPower?: boolean;
}

export interface RangeCheck {
  /** what to do with pixel values outside [-1, 1] (beyond `slack`): default 'error' */
  onOutOfRange?: 'error' | 'warn' | 'off';
  /** default 1e-3 */
  slack?: number;
}

export interface PreprocessOptions extends ReducedOptions, RangeCheck {}

export interface EncodeResult {
  /** `[B, frames·height·width, D]`, frame-major */
  tokens: tf.Tensor3D;
  grid: TeacherGrid;
}

export interface EncodeTrace extends EncodeResult {
  /** patch embedding output before the position table `[B, N, D]` */
  patchEmbed: tf.Tensor3D;
  /** the position table added `[N, D]` */
  posEmbed: tf.Tensor2D;
  /** output of every block `[B, N, D]` (the last equals `tokens`) */
  blocks: tf.Tensor3D[];
}

export interface FromCheckpointOptions {
  /** a registered config name or a full config; default: the registered config the checkpoint's shapes fit */
  config?: string | TeacherConfig;
  /** where the state dict sits (dotted path); default: the family's official keys, tried in order */
  key?: string;
  /** strip exactly this prefix; default: strip leading 'module.', 'backbone.', 'encoder.' as the official loaders do */
  stripPrefix?: string;
  /** attention score budget (elements per `[B, heads, chunk, N]` block); default 2^24 */
  maxScoreElements?: number;
  /** the checkpoint's name in messages and the load report when it is given as bytes; default 'checkpoint bytes' */
  name?: string;
}

/**
 * A checkpoint to load: a path (Node: .pth, safetensors, sharded), or the bytes of a safetensors file
 * (anywhere, e.g. a file dropped on a web page).
 */
export type CheckpointInput = string | ArrayBuffer | ArrayBufferView;

export interface TeacherLoadReport {
  file: string;
  /** the state dict location used ('' = top level) */
  key: string;
  loaded: string[];
  /** checkpoint keys the model does not use (heads, decoders, masks), after prefix stripping */
  ignored: string[];
}

/** Values outside [-1, 1]: error (default), warning, or nothing. Returns the observed [min, max]. */
export function checkPixelRange(video: tf.Tensor, what: string, opts: RangeCheck = {}): [number, number] {
  const mode = opts.onOutOfRange ?? 'error';
  if (mode === 'off') return [NaN, NaN];
  const slack = opts.slack ?? 1e-3;
  const [lo, hi] = tf.tidy(() => [tf.min(video), tf.max(video)]).map((t) => {
    const v = t!.dataSync()[0]!;
    t!.dispose();
    return v;
  }) as [number, number];
  if (!(lo >= -1 - slack && hi <= 1 + slack)) {
    const msg = `${what}: pixel values must lie in [-1, 1], got [${lo}, ${hi}] (pass onOutOfRange: 'warn' or 'off' to accept)`;
    if (mode === 'error') throw new Error(msg);
    console.warn(msg);
  }
  return [lo, hi];
}

function assertRawVideo(video: tf.Tensor, what: string, chans: number) {
  if (!(video instanceof tf.Tensor)) throw new Error(`${what}: expected a tf.Tensor [batch, frames, height, width, ${chans}]`);
  if (video.rank !== 5) throw new Error(`${what}: expected rank 5 [batch, frames, height, width, ${chans}], got shape [${video.shape.join(', ')}]`);
  if (video.shape[4] !== chans) throw new Error(`${what}: expected ${chans} channels (last axis), got ${video.shape[4]} in shape [${video.shape.join(', ')}]`);
  if (video.dtype !== 'float32') throw new Error(`${what}: expected float32 values, got ${video.dtype}`);
}

/**
 * A frozen video teacher. Subclasses provide the position table for a grid. Parameters are registered
 * with the official names; `encode` runs under tf.tidy and keeps nothing but its result.
 */
export abstract class VideoTeacher extends Module {
  readonly patchEmbed: PatchEmbed3d;
  blocks!: ModuleList<VitBlock>;
  fcNorm: LayerNorm | null = null;
  head: Linear | null = null;
  loadReport: TeacherLoadReport | null = null;
  /**
   * Bumped each time the weights are (re)loaded (loadTeacherWeights): a digest of the weights memoised
   * elsewhere (the feature cache's hashTeacherWeights) holds for one version only.
   */
  weightsVersion = 0;
  private readonly posCache = new Map<string, tf.Tensor2D>();

  constructor(readonly config: TeacherConfig) {
    super();
    validateConfig(config);
    this.patchEmbed = this.module('patch_embed', new PatchEmbed3d(config.inChans, config.embedDim, config.tubeletSize, config.patchSize, config.init, config.patchEmbedSeqIndex));
  }

  /** Call at the end of a subclass constructor (keeps the official registration order). */
  protected finishBlocks(): void {
    this.blocks = this.module('blocks', makeBlocks(this.config));
  }

  /** The pre-training token grid of the position table. */
  get baseGrid(): TeacherGrid {
    const c = this.config;
    const [h, w] = c.imgHW ?? [c.imgSize, c.imgSize];
    return { frames: Math.floor(c.numFrames / c.tubeletSize), height: Math.floor(h / c.patchSize), width: Math.floor(w / c.patchSize) };
  }

  /** The token grid of a pre-processed clip `[B, F, H, W, C]` (throws on bad shapes). */
  gridFor(clipShape: readonly number[], what = `${this.config.name}.encode: clip`): TeacherGrid {
    return this.patchEmbed.gridOf(clipShape, what);
  }

  /** The position table `[N, D]` on the pre-training grid (a new tensor). */
  abstract baseTable(): tf.Tensor2D;
  /** The table interpolated to `grid` (a new tensor), as the family's official code does. */
  protected abstract interpolateTable(grid: TeacherGrid): tf.Tensor2D;

  /** The position table for `grid`, `[N, D]` (cached per grid; owned by the model — do not dispose). */
  posEmbedFor(grid: TeacherGrid): tf.Tensor2D {
    const k = `${grid.frames}x${grid.height}x${grid.width}`;
    let t = this.posCache.get(k);
    if (!t) {
      t = tf.keep(this.interpolateTable(grid));
      this.posCache.set(k, t);
    }
    return t;
  }

  /** Drop the cached interpolated tables (after loading new weights). */
  clearPosCache(): void {
    for (const t of this.posCache.values()) t.dispose();
    this.posCache.clear();
  }

  /**
   * Official pre-processing of a raw clip `[B, F, H, W, 3]` in [-1, 1]: frames 1..F-1, (x+1)/2, ImageNet
   * mean/std, bicubic to (H/3, W/3) → `[B, F-1, H/3, W/3, 3]`. Values outside [-1, 1] throw by default.
   */
  preprocess(video: tf.Tensor, opts: PreprocessOptions = {}): tf.Tensor5D {
    const what = `${this.config.name}.preprocess: video`;
    assertRawVideo(video, what, this.config.inChans);
    checkPixelRange(video, what, opts);
    const { clip } = teacherInputReduced(video, opts);
    try {
      this.gridFor(clip.shape, `${what} after pre-processing to [${clip.shape.join(', ')}]`);
    } catch (e) {
      clip.dispose();
      throw e;
    }
    return clip;
  }

  /** `preprocess` then `encode` (`opts.blocks` as in `encode`). */
  encodeVideo(video: tf.Tensor, opts: PreprocessOptions & { blocks?: number } = {}): EncodeResult {
    const clip = this.preprocess(video, opts);
    try {
      return this.encode(clip, { blocks: opts.blocks });
    } finally {
      clip.dispose();
    }
  }

  /**
   * Features of a raw clip under one of the paper's teacher-input strategies (Table 6, align-dims'
   * `teacherInputs`): 'reduced' (official; = encodeVideo), 'temporal-groups' (full-resolution frame groups
   * encoded separately, concatenated in time) or 'spatial-crops' (crops encoded separately, stitched).
   */
  encodeWithStrategy(video: tf.Tensor, strategy: TeacherInputStrategy, opts: RangeCheck = {}): EncodeResult {
    const what = `${this.config.name}.encodeWithStrategy: video`;
    assertRawVideo(video, what, this.config.inChans);
    checkPixelRange(video, what, opts);
    const inputs = teacherInputs(video, strategy);
    const feats: EncodeResult[] = [];
    try {
      inputs.clips.forEach((c, i) => feats.push(this.encode(c, {}, `${what} → ${strategy.kind} clip ${i} [${c.shape.join(', ')}]`)));
      return inputs.assemble(
        feats.map((f) => f.tokens),
        feats.map((f) => f.grid),
      );
    } finally {
      tf.dispose([...inputs.clips, ...feats.map((f) => f.tokens)]);
    }
  }

  /**
   * Features of a pre-processed clip `[B, F, H, W, C]` → `{ tokens [B, N, D], grid }`: the output of the
   * last block, or of block `opts.blocks` (1-based; the later blocks are not run).
   */
  encode(clip: tf.Tensor, opts: { blocks?: number } = {}, what = `${this.config.name}.encode: clip`): EncodeResult {
    const depth = opts.blocks ?? this.config.depth;
    if (!Number.isInteger(depth) || depth < 1 || depth > this.config.depth)
      throw new Error(`${this.config.name}.encode: blocks must be an integer in 1..${this.config.depth}, got ${opts.blocks}`);
    assertRawVideo(clip, what, this.config.inChans);
    const grid = this.gridFor(clip.shape, what);
    const pos = this.posEmbedFor(grid);
    const tokens = tf.tidy(() => {
      let x: tf.Tensor = tf.add(this.patchEmbed.forward(clip), pos);
      for (let i = 0; i < depth; i++) {
        const next = this.blocks.at(i).forward(x);
        x.dispose();
        x = next;
      }
      return x as tf.Tensor3D;
    });
    return { tokens, grid };
  }

  /** Like `encode`, keeping the patch embedding, the position table and every block's output (tests, conformance). */
  encodeTrace(clip: tf.Tensor): EncodeTrace {
    const what = `${this.config.name}.encode: clip`;
    assertRawVideo(clip, what, this.config.inChans);
    const grid = this.gridFor(clip.shape, what);
    const pos = this.posEmbedFor(grid);
    const [tokens, patchEmbed, posEmbed, ...blocks] = tf.tidy(() => {
      const pe = this.patchEmbed.forward(clip);
      let x: tf.Tensor = tf.add(pe, pos);
      const outs: tf.Tensor[] = [];
      for (const blk of this.blocks) {
        x = blk.forward(x);
        outs.push(x);
      }
      return [tf.clone(x), pe, tf.clone(pos), ...outs];
    });
    return { tokens: tokens as tf.Tensor3D, grid, patchEmbed: patchEmbed as tf.Tensor3D, posEmbed: posEmbed as tf.Tensor2D, blocks: blocks as tf.Tensor3D[] };
  }

  /** Clip embedding `[B, D]`: mean over tokens, then `fc_norm` when the model has it (VideoMAE fine-tuned heads). */
  pool(tokens: tf.Tensor): tf.Tensor2D {
    if (tokens.rank !== 3 || tokens.shape[2] !== this.config.embedDim)
      throw new Error(`${this.config.name}.pool: tokens must be [batch, tokens, ${this.config.embedDim}], got [${tokens.shape.join(', ')}]`);
    return tf.tidy(() => {
      const m = tf.mean(tokens, 1);
      return (this.fcNorm ? this.fcNorm.forward(m) : m) as tf.Tensor2D;
    });
  }

  /** Classifier logits `[B, classes]` = head(pool(tokens)) (VideoMAE fine-tuned checkpoints). */
  classify(tokens: tf.Tensor): tf.Tensor2D {
    if (!this.head) throw new Error(`${this.config.name}.classify: the model has no classifier head (config numClasses is ${this.config.numClasses ?? 0})`);
    return tf.tidy(() => this.head!.forward(this.pool(tokens)) as tf.Tensor2D);
  }

  /** Register `fc_norm` and `head` when the config asks for them (VideoMAE family; official order). */
  protected finishHead(): void {
    const c = this.config;
    if (c.fcNorm) this.fcNorm = this.module('fc_norm', new LayerNorm(c.embedDim, { eps: c.layerNormEps }));
    if (c.numClasses) this.head = this.module('head', new Linear(c.embedDim, c.numClasses, { init: c.init }));
  }

  /** Analytic forward FLOPs (matmuls) for a clip grid. */
  flops(grid: TeacherGrid, batch = 1): number {
    return vitForwardFlops(this.config, grid, batch);
  }

  /**
   * A stable description of everything that determines the features besides the weights and the clip
   * (for cache keys).
   */
  describe(): Record<string, unknown> {
    const { init: _i, maxScoreElements: _m, ...rest } = this.config;
    return { ...rest, fcNorm: !!this.fcNorm, numClasses: this.head ? this.config.numClasses : 0 };
  }

  override dispose(): void {
    this.clearPosCache();
    super.dispose();
  }
}

function validateConfig(c: TeacherConfig) {
  const ints: Array<keyof TeacherConfig> = ['embedDim', 'depth', 'numHeads', 'patchSize', 'tubeletSize', 'inChans', 'imgSize', 'numFrames'];
  for (const k of ints) {
    const v = c[k];
    if (!Number.isInteger(v) || (v as number) < 1) throw new Error(`teacher config ${c.name}: ${String(k)} must be a positive integer, got ${String(v)}`);
  }
  if (c.embedDim % c.numHeads !== 0) throw new Error(`teacher config ${c.name}: embedDim ${c.embedDim} is not divisible by numHeads ${c.numHeads}`);
  if (!(c.mlpRatio > 0)) throw new Error(`teacher config ${c.name}: mlpRatio must be > 0, got ${c.mlpRatio}`);
  if (c.numFrames % c.tubeletSize !== 0) throw new Error(`teacher config ${c.name}: numFrames ${c.numFrames} is not divisible by tubeletSize ${c.tubeletSize}`);
}

// ---------------------------------------------------------------------------------------------------
// Checkpoints

/** A state-dict view: names → shapes and lazy reads. */
export interface WeightSource {
  names(): string[];
  shape(name: string): number[];
  read(name: string): StateTensor;
}

export function weightSourceFromCheckpoint(ck: Checkpoint, rename: (n: string) => string = (n) => n): WeightSource {
  const map = new Map<string, CheckpointTensor>();
  for (const t of ck.tensors.values()) {
    const n = rename(t.name);
    const prev = map.get(n);
    if (prev) throw new Error(`${ck.path}: '${prev.sourceName}' and '${t.sourceName}' both map to state-dict key '${n}'`);
    map.set(n, t);
  }
  return { names: () => [...map.keys()], shape: (n) => map.get(n)!.shape, read: (n) => map.get(n)!.read() };
}

/**
 * Strip leading 'module.' / 'backbone.' / 'encoder.' / 'trunk.' (repeatedly), as the official loaders do
 * per key ('trunk.' is OmniMAE's wrapper around the encoder).
 */
export function officialRename(name: string): string {
  let n = name;
  for (;;) {
    const p = ['module.', 'backbone.', 'encoder.', 'trunk.'].find((x) => n.startsWith(x));
    if (!p) return n;
    n = n.slice(p.length);
  }
}

/**
 * Load a teacher's weights from a state-dict view: every model key must be present with the model's
 * shape (one error lists all missing and mis-shaped keys); checkpoint keys the model lacks are ignored
 * and reported.
 */
export function loadTeacherWeights(model: VideoTeacher, src: WeightSource, where: string): { loaded: string[]; ignored: string[] } {
  const want = model.stateDictShapes();
  const have = new Set(src.names());
  const missing = [...want.keys()].filter((k) => !have.has(k));
  const mismatched: string[] = [];
  for (const [k, s] of want) {
    if (!have.has(k)) continue;
    const got = src.shape(k);
    if (got.length !== s.length || got.some((d, i) => d !== s[i])) mismatched.push(`${k}: checkpoint [${got.join(', ')}] vs model [${s.join(', ')}]`);
  }
  if (missing.length || mismatched.length) {
    const parts: string[] = [];
    if (mismatched.length) parts.push(`${mismatched.length} mis-shaped key(s): ${mismatched.join('; ')}`);
    if (missing.length) parts.push(`${missing.length} missing key(s): ${missing.slice(0, 12).join(', ')}${missing.length > 12 ? ', …' : ''}`);
    throw new Error(`${where}: the checkpoint does not fit config '${model.config.name}' (${model.config.official}, dim ${model.config.embedDim}, depth ${model.config.depth}, patch ${model.config.patchSize}): ${parts.join('. ')}`);
  }
  const keys = [...want.keys()];
  const report = model.loadStateDict({ keys: () => keys, read: (k: string) => src.read(k), info: (k: string) => ({ shape: src.shape(k) }) }, { strict: true, source: where });
  model.clearPosCache();
  model.weightsVersion++;
  const ignored = src.names().filter((n) => !want.has(n));
  return { loaded: report.loaded, ignored };
}

/** How a checkpoint input is named in messages: its path, or `opts.name` for bytes. */
export function checkpointName(input: CheckpointInput, opts: { name?: string } = {}): string {
  return typeof input === 'string' ? input : (opts.name ?? 'checkpoint bytes');
}

/**
 * Open a teacher checkpoint (.pth / safetensors / sharded, or safetensors bytes) at the family's official location:
 * `key` if given, else the first of `preferredKeys` that holds tensors, else the top level.
 */
export function openTeacherCheckpoint(input: CheckpointInput, preferredKeys: string[], opts: FromCheckpointOptions): { ck: Checkpoint; key: string } {
  let chosen = opts.key;
  const path = checkpointName(input, opts);
  const options: OpenCheckpointOptions = {
    key: (tree: unknown) => {
      if (chosen !== undefined) return chosen;
      const cands = new Set(stateDictCandidates(tree).map((c) => c.key));
      chosen = preferredKeys.find((k) => cands.has(k)) ?? (cands.has('') ? '' : undefined);
      if (chosen === undefined)
        throw new Error(`${path}: no state dict under ${preferredKeys.map((k) => `'${k}'`).join(', ')} or at the top level (dicts holding tensors: ${[...cands].map((k) => `'${k}'`).join(', ') || 'none'}); pass key`);
      return chosen;
    },
    stripPrefix: opts.stripPrefix,
  };
  const ck = typeof input === 'string' ? openCheckpoint(input, options) : openCheckpointBytes(input, { ...options, name: path });
  return { ck, key: chosen ?? '' };
}

/** Shared body of every family's `fromCheckpoint`. */
export function teacherFromCheckpoint<T extends VideoTeacher>(
  input: CheckpointInput,
  preferredKeys: string[],
  opts: FromCheckpointOptions,
  build: (src: WeightSource) => T,
): T {
  const path = checkpointName(input, opts);
  const { ck, key } = openTeacherCheckpoint(input, preferredKeys, opts);
  try {
    const src = weightSourceFromCheckpoint(ck, opts.stripPrefix !== undefined ? (n) => n : officialRename);
    const model = build(src);
    try {
      const { loaded, ignored } = loadTeacherWeights(model, src, `fromCheckpoint(${path}${key ? `, key '${key}'` : ''})`);
      model.loadReport = { file: path, key, loaded, ignored };
      model.requiresGrad(false);
      return model;
    } catch (e) {
      model.dispose();
      throw e;
    }
  } finally {
    ck.close();
  }
}

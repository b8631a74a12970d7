/**
 * The CogVideoX transformer (diffusers `CogVideoXTransformer3DModel`) with the VideoREPA alignment tap
 * (official `CogVideoXTransformer3DModelAlign`): 2B style (3D sincos positions added after the patch
 * embedding) and 5B style (3D rotary embeddings on the vision tokens in every attention), built from a
 * diffusers `config.json`, parameter names = diffusers' state-dict names.
 *
 * Layouts at the API edge are channels-last (DESIGN.md §3): latents `[B, F, h, w, C]` (diffusers holds
 * them `[B, F, C, h, w]`), text embeddings `[B, L, text_embed_dim]`, vision tokens
 * `[B, F·(h/p)·(w/p), D]` frame-major (frame, row, col).
 */
import * as tf from '@tensorflow/tfjs';
import { Module, ModuleList, Linear, LayerNorm, silu, sincos3d, timestepEmbedding, type Parameter, type Rng, setInitRng, getInitRng, dropout, dropoutFn, type DropoutFn } from '@vrepa/core';
import { Projector, Downsampler } from '@vrepa/align-dims';
import { CogVideoXBlock, type RotaryTensors } from './block.js';
import {
  type AlignConfig,
  type CogVideoXTransformerConfig,
  innerDim,
  resolveAlignConfig,
  resolveTransformerConfig,
} from './config.js';
import { cogvideoxRotary } from './positions.js';

type Init = 'torch' | 'zeros';

/** The patch projection: diffusers' Conv2d(in, D, kernel = stride = p), run as patchify + one matMul. */
class PatchProj extends Module {
  readonly weight: Parameter;
  readonly bias: Parameter | null;
  constructor(
    readonly inChannels: number,
    readonly outChannels: number,
    readonly patch: number,
    bias: boolean,
    init: Init,
  ) {
    super();
    const bound = 1 / Math.sqrt(inChannels * patch * patch);
    const u = (shape: number[]) => (init === 'zeros' ? tf.zeros(shape) : getInitRng().randomTensor(shape, 'uniform', { low: -bound, high: bound }));
    // stored [kH, kW, in, out] (PyTorch [out, in, kH, kW])
    this.weight = this.param('weight', () => u([patch, patch, inChannels, outChannels]), { layout: 'conv2d' });
    this.bias = bias ? this.param('bias', () => u([outChannels])) : null;
  }
  /** `[B, F, H, W, C]` → `[B, F·(H/p)·(W/p), D]` frame-major, patches in (row, col) order. */
  forward(x: tf.Tensor): tf.Tensor {
    return tf.tidy(() => {
      const [B, F, H, W, C] = x.shape as number[] as [number, number, number, number, number];
      const p = this.patch;
      const h = H / p;
      const w = W / p;
      const patches = tf.reshape(tf.transpose(tf.reshape(x, [B * F, h, p, w, p, C]), [0, 1, 3, 2, 4, 5]), [B * F * h * w, p * p * C]);
      let y = tf.matMul(patches, tf.reshape(this.weight.value, [p * p * C, this.outChannels]));
      if (this.bias) y = tf.add(y, this.bias.value);
      return tf.reshape(y, [B, F * h * w, this.outChannels]);
    });
  }
}

/** diffusers CogVideoXPatchEmbed: `proj` (patches), `text_proj` (text), optional learned `pos_embedding`. */
class CogVideoXPatchEmbed extends Module {
  readonly proj: PatchProj;
  readonly text_proj: Linear;
  /** learned table `[1, max_text + patches, D]` (5B-I2V style), a persistent buffer as in diffusers */
  readonly learned: { value: tf.Tensor } | null;
  constructor(c: CogVideoXTransformerConfig, init: Init) {
    super();
    const D = innerDim(c);
    this.proj = this.module('proj', new PatchProj(c.in_channels, D, c.patch_size, c.patch_bias, init));
    this.text_proj = this.module('text_proj', new Linear(c.text_embed_dim, D, { init }));
    if (c.use_learned_positional_embeddings) {
      const P = (c.sample_height / c.patch_size) * (c.sample_width / c.patch_size) * ((c.sample_frames - 1) / c.temporal_compression_ratio + 1);
      this.learned = this.buffer('pos_embedding', tf.zeros([1, c.max_text_seq_length + Math.floor(P), D]), { persistent: true });
    } else this.learned = null;
  }
}

/** diffusers TimestepEmbedding: `linear_1` → SiLU → `linear_2`. */
class TimestepEmbedding extends Module {
  readonly linear_1: Linear;
  readonly linear_2: Linear;
  constructor(inDim: number, outDim: number, init: Init) {
    super();
    this.linear_1 = this.module('linear_1', new Linear(inDim, outDim, { init }));
    this.linear_2 = this.module('linear_2', new Linear(outDim, outDim, { init }));
  }
  forward(x: tf.Tensor): tf.Tensor {
    return tf.tidy(() => this.linear_2.forward(silu(this.linear_1.forward(x))));
  }
}

/** diffusers AdaLayerNorm(chunk_dim=1) as `norm_out`: `linear` (time_embed → 2D) gives [shift | scale]. */
class AdaLayerNorm extends Module {
  readonly linear: Linear;
  readonly norm: LayerNorm;
  constructor(embDim: number, dim: number, affine: boolean, eps: number, init: Init) {
    super();
    this.linear = this.module('linear', new Linear(embDim, 2 * dim, { init }));
    this.norm = this.module('norm', new LayerNorm(dim, { eps, affine }));
  }
  forward(x: tf.Tensor, temb: tf.Tensor): tf.Tensor {
    return tf.tidy(() => {
      const m = this.linear.forward(silu(temb));
      const [shift, scale] = tf.split(tf.reshape(m, [m.shape[0]!, 1, -1]), 2, 2) as [tf.Tensor, tf.Tensor];
      return tf.add(tf.mul(this.norm.forward(x), tf.add(scale, 1)), shift);
    });
  }
}

export type RotaryMode = 'pipeline' | 'trainer';

/**
 * What `forward` / `hiddenStates` take for the timesteps: B numbers (or a 1-D tensor of them, read back),
 * or the time projection made from them beforehand (`model.timeProjection(timesteps)`, `[B, inner_dim]`,
 * diffusers' `time_proj` output) — then the forward makes no tensor from the timesteps.
 */
export type TimestepInput = ArrayLike<number> | tf.Tensor | { timeProjection: tf.Tensor };

export interface TransformerForwardOptions {
  /**
   * 1-based block whose vision tokens are projected into `aligned` (official counting: 18 = after the
   * 18th block). Default: the model's align config when it has a projector; 0 = no alignment output.
   */
  alignLayer?: number;
  /**
   * 5B style: which rotary tables (default 'pipeline' = CogVideoXPipeline's linspace/crop grid;
   * 'trainer' = the official trainer's integer grid; equal when the latent grid is the sample grid),
   * or explicit tables `cos`/`sin` `[N, head_dim]`.
   */
  rotary?: RotaryMode | RotaryTensors;
  /**
   * Apply the projector to the aligned hidden state (default true). The training loss passes false and
   * hands `alignHidden` to @vrepa/align-dims' alignmentLoss, which applies the projector itself.
   */
  projectAligned?: boolean;
  /** Also return every block's joint output `[B, L+N, D]` (for conformance / debugging). */
  returnBlocks?: boolean;
  /** Also return the time embedding `[B, time_embed_dim]` and the patch embedding `[B, L+N, D]`. */
  returnEmbeddings?: boolean;
  /**
   * Training mode: draw the dropout masks of `config.dropout` (after the patch embedding and twice in every
   * feed-forward, as diffusers) from this seeded stream. Omitted = inference (no dropout), as in the official
   * pipeline and the fixtures. Each block gets its own forked stream, so gradient checkpointing replays the
   * same masks in its recompute. The masks are made from JS random values inside the forward, so a forward
   * with dropout cannot be traced into a fixed graph (the masks would become constants of it).
   */
  dropoutRng?: Rng;
}

export interface TransformerOutput {
  /** the denoiser output (v-prediction for CogVideoX) `[B, F, h, w, out_channels]` */
  sample: tf.Tensor;
  /** projector(vision tokens after block alignLayer) `[B, N, align_dim]`, when asked */
  aligned?: tf.Tensor;
  /** the vision tokens after block alignLayer `[B, N, D]`, when aligned is returned */
  alignHidden?: tf.Tensor;
  blocks?: tf.Tensor[];
  timeEmbedding?: tf.Tensor;
  patchEmbedded?: tf.Tensor;
}

export interface TransformerCreateOptions {
  /** Parameter init: 'torch' (PyTorch defaults, seeded through `rng`) or 'zeros' (cheap; for loading). */
  init?: Init;
  rng?: Rng;
  /** Build the VideoREPA projector (and downsampler) with these settings. */
  align?: Partial<AlignConfig> | boolean;
}

/** Token grid of a latent: frames × (h/p) × (w/p). */
export interface LatentGrid {
  frames: number;
  height: number;
  width: number;
}

export class CogVideoXTransformer3DModel extends Module {
  readonly config: CogVideoXTransformerConfig;
  readonly patch_embed: CogVideoXPatchEmbed;
  readonly time_embedding: TimestepEmbedding;
  readonly transformer_blocks: ModuleList<CogVideoXBlock>;
  readonly norm_final: LayerNorm;
  readonly norm_out: AdaLayerNorm;
  readonly proj_out: Linear;
  /** VideoREPA parts (state-dict names `projectors.0.*`, `downsampler_cogvideo_output.*`); see createAlignParts. */
  projector: Projector | null = null;
  downsampler: Downsampler | null = null;
  alignConfig: AlignConfig | null = null;
  /** Recompute each block's activations in the backward pass instead of holding them (see README). */
  gradientCheckpointing = false;
  private readonly tables = new Map<string, tf.Tensor[]>();

  constructor(config: CogVideoXTransformerConfig | Record<string, unknown>, opts: TransformerCreateOptions = {}) {
    super();
    const { config: c, align } = resolveTransformerConfig(config as Record<string, unknown>);
    this.config = c;
    const init = opts.init ?? 'torch';
    const prevRng = getInitRng();
    if (opts.rng) setInitRng(opts.rng);
    try {
      const D = innerDim(c);
      this.patch_embed = this.module('patch_embed', new CogVideoXPatchEmbed(c, init));
      this.time_embedding = this.module('time_embedding', new TimestepEmbedding(D, c.time_embed_dim, init));
      this.transformer_blocks = this.module('transformer_blocks', new ModuleList(Array.from({ length: c.num_layers }, () => new CogVideoXBlock(c, init))));
      this.norm_final = this.module('norm_final', new LayerNorm(D, { eps: c.norm_eps, affine: c.norm_elementwise_affine }));
      this.norm_out = this.module('norm_out', new AdaLayerNorm(c.time_embed_dim, D, c.norm_elementwise_affine, c.norm_eps, init));
      this.proj_out = this.module('proj_out', new Linear(D, c.patch_size * c.patch_size * c.out_channels, { init }));
      const alignOpt = opts.align === true ? {} : opts.align === false ? undefined : (opts.align ?? align);
      if (alignOpt) this.createAlignParts(alignOpt, { init, rng: opts.rng });
    } finally {
      setInitRng(prevRng);
    }
  }

  /**
   * Build the VideoREPA parts (official init, seeded through `rng`): the projector registered as
   * `projectors.0.{0,2,4}` and the downsampler as `downsampler_cogvideo_output`, so they are part of
   * the state dict, the key report and `trainableParameters()`. Once per model.
   */
  createAlignParts(align: Partial<AlignConfig>, opts: { init?: Init; rng?: Rng } = {}): void {
    if (this.projector) throw new Error('createAlignParts: the model already has its align parts');
    const a = resolveAlignConfig(this.config, align);
    const init = { init: opts.init ?? 'torch', rng: opts.rng };
    const projector = new Projector({ inDim: innerDim(this.config), hiddenDim: a.projector_dim, outDim: a.align_dims[0]! }, init);
    const downsampler = new Downsampler({ channels: a.align_dims[0]! }, init);
    this.module('projectors', projector.projectors);
    this.module('downsampler_cogvideo_output', downsampler.conv);
    this.projector = projector;
    this.downsampler = downsampler;
    this.alignConfig = a;
  }

  /** Use another block for the alignment output (1-based). */
  setAlignLayer(layer: number): void {
    if (!this.alignConfig) throw new Error('setAlignLayer: the model has no align parts');
    this.alignConfig = resolveAlignConfig(this.config, { ...this.alignConfig, align_layer: layer });
  }

  /** The align parts' variables by state-dict name (projector + downsampler). */
  alignParameters(): Record<string, tf.Variable> {
    const out: Record<string, tf.Variable> = {};
    for (const [n, p] of this.namedParameters()) if (n.startsWith('projectors.') || n.startsWith('downsampler_cogvideo_output.')) out[n] = p.value;
    return out;
  }

  get innerDim(): number {
    return innerDim(this.config);
  }

  /** Token grid for latents `[B, F, H, W, C]`, with shape checks against the config. */
  latentGrid(shape: readonly number[], what = 'latents'): LatentGrid {
    const c = this.config;
    if (shape.length !== 5) throw new Error(`${what}: expected [batch, frames, height, width, ${c.in_channels}] (channels-last), got [${shape.join(', ')}]`);
    const [, F, H, W, C] = shape as [number, number, number, number, number];
    if (C !== c.in_channels) throw new Error(`${what}: channel axis (last) is ${C}, config in_channels is ${c.in_channels} (shape [${shape.join(', ')}]; latents are channels-last)`);
    const p = c.patch_size;
    if (H % p !== 0 || W % p !== 0) throw new Error(`${what}: height ${H} and width ${W} must be multiples of patch_size ${p} (shape [${shape.join(', ')}])`);
    if (F < 1) throw new Error(`${what}: needs at least one frame, got shape [${shape.join(', ')}]`);
    return { frames: F, height: H / p, width: W / p };
  }

  private cached(key: string, make: () => tf.Tensor[]): tf.Tensor[] {
    let t = this.tables.get(key);
    if (!t) {
      t = tf.tidy(make).map((x) => tf.keep(x));
      this.tables.set(key, t);
    }
    return t;
  }

  /** The positional table added to the vision tokens (2B sincos / learned), `[1, N, D]` (+ text part for learned). */
  private positions(grid: LatentGrid, textLen: number): { text: tf.Tensor | null; vision: tf.Tensor } | null {
    const c = this.config;
    const D = this.innerDim;
    const sampleGrid = c.sample_height / c.patch_size === grid.height && c.sample_width / c.patch_size === grid.width;
    const preFrames = (grid.frames - 1) * c.temporal_compression_ratio + 1;
    if (c.use_learned_positional_embeddings) {
      if (!sampleGrid) {
        throw new Error(
          `CogVideoXTransformer3DModel: learned positional embeddings need the sample size ${c.sample_height}×${c.sample_width}, got latents ${grid.height * c.patch_size}×${grid.width * c.patch_size}`,
        );
      }
      if (textLen !== c.max_text_seq_length) {
        throw new Error(`CogVideoXTransformer3DModel: learned positional embeddings need text length max_text_seq_length ${c.max_text_seq_length}, got ${textLen}`);
      }
      if (preFrames === c.sample_frames) {
        const table = this.patch_embed.learned!.value;
        const [t, v] = tf.split(table, [textLen, table.shape[1]! - textLen], 1);
        return { text: t!, vision: v! };
      }
      // diffusers recomputes the sincos table when the frame count differs, even for learned tables
    } else if (c.use_rotary_positional_embeddings) return null;
    const [vision] = this.cached(`sincos:${grid.frames}x${grid.height}x${grid.width}`, () => {
      const tab = sincos3d(D, grid, { spatialInterpolationScale: c.spatial_interpolation_scale, temporalInterpolationScale: c.temporal_interpolation_scale });
      return [tf.reshape(tab, [1, grid.frames * grid.height * grid.width, D])];
    });
    return { text: null, vision: vision! };
  }

  /** The rotary tables for a grid (cached), `cos`/`sin` `[N, head_dim]`. */
  rotaryFor(grid: LatentGrid, mode: RotaryMode = 'pipeline'): RotaryTensors {
    const c = this.config;
    const [cos, sin] = this.cached(`rot:${mode}:${grid.frames}x${grid.height}x${grid.width}`, () => {
      const r = cogvideoxRotary(c.attention_head_dim, grid, mode, { height: Math.floor(c.sample_height / c.patch_size), width: Math.floor(c.sample_width / c.patch_size) });
      return [r.cos, r.sin];
    });
    return { cos: cos as tf.Tensor2D, sin: sin as tf.Tensor2D };
  }

  /**
   * time_proj(t) (diffusers Timesteps: the sinusoidal projection, made from the timesteps as JS numbers):
   * `[B, inner_dim]`, the input of `time_embedding`. Pass it as `{ timeProjection }` to forward.
   */
  timeProjection(timesteps: ArrayLike<number>): tf.Tensor2D {
    const c = this.config;
    return timestepEmbedding(Array.from(timesteps), this.innerDim, { flipSinToCos: c.flip_sin_to_cos, downscaleFreqShift: c.freq_shift });
  }

  /**
   * Build the position / rotary tables a forward on latents of `latentShape` with text length `textLen` reads
   * (cached on the model) and uploads them to the backend, without running the forward. A forward that is
   * traced into a graph (`compiledForward`) then reads them as tensors older than the trace (captured) instead
   * of freezing them as constants on its first call, so its first two traces are already identical. Throws
   * what forward would for these shapes.
   */
  prepareTables(latentShape: readonly number[], textLen: number, rotary: RotaryMode = 'pipeline'): void {
    const grid = this.latentGrid(latentShape);
    // a reshape of each uploads a table still held in JS (the tensorflow backend does on a tensor's first use)
    tf.tidy(() => {
      const pos = this.positions(grid, textLen);
      const rot = this.config.use_rotary_positional_embeddings ? this.rotaryFor(grid, rotary) : null;
      for (const t of [pos?.text, pos?.vision, rot?.cos, rot?.sin]) if (t) tf.reshape(t, [-1]);
    });
  }

  /** time_embedding(time_proj(t)) (or of a precomputed `{ timeProjection }`): `[B, time_embed_dim]`. */
  timeEmbedding(timesteps: ArrayLike<number> | { timeProjection: tf.Tensor }): tf.Tensor {
    return tf.tidy(() => {
      const t = isTimeProjection(timesteps) ? timesteps.timeProjection : this.timeProjection(timesteps);
      return this.time_embedding.forward(t);
    });
  }

  /** patch_embed(text, latents) (+ positions): the joint `[B, L+N, D]` sequence, text first. */
  patchEmbed(latents: tf.Tensor, text: tf.Tensor): tf.Tensor {
    const grid = this.latentGrid(latents.shape);
    return tf.tidy(() => {
      const L = text.shape[1]!;
      let t = this.patch_embed.text_proj.forward(text);
      let v = this.patch_embed.proj.forward(latents);
      const pos = this.positions(grid, L);
      if (pos) {
        v = tf.add(v, pos.vision);
        if (pos.text) t = tf.add(t, pos.text);
      }
      return tf.concat([t, v], 1);
    });
  }

  /** The shape checks forward and hiddenStates make on their inputs (named errors), without running anything. */
  checkInputs(latents: tf.Tensor, text: tf.Tensor, timesteps: ArrayLike<number> | { timeProjection: tf.Tensor }): void {
    const c = this.config;
    this.latentGrid(latents.shape);
    const B = latents.shape[0]!;
    if (text.rank !== 3 || text.shape[0] !== B || text.shape[2] !== c.text_embed_dim) {
      throw new Error(`textEmbeddings: expected [${B}, text_len, ${c.text_embed_dim}] (batch of the latents, config text_embed_dim), got [${text.shape.join(', ')}]`);
    }
    if (text.shape[1]! > c.max_text_seq_length) {
      throw new Error(`textEmbeddings: text length ${text.shape[1]} is over max_text_seq_length ${c.max_text_seq_length}`);
    }
    if (text.shape[1]! < 1) throw new Error('textEmbeddings: text length must be at least 1');
    if (isTimeProjection(timesteps)) {
      const p = timesteps.timeProjection;
      if (!(p instanceof tf.Tensor) || p.rank !== 2 || p.shape[0] !== B || p.shape[1] !== this.innerDim) {
        const got = p instanceof tf.Tensor ? `[${p.shape.join(', ')}]` : typeof p;
        throw new Error(`timeProjection: expected [${B}, ${this.innerDim}] (batch of the latents, inner_dim; model.timeProjection(timesteps)), got ${got}`);
      }
    } else if (timesteps.length !== B) throw new Error(`timesteps: expected ${B} values (one per batch item), got ${timesteps.length}`);
  }

  /** Run block i on the joint sequence, with gradient checkpointing if enabled. */
  private runBlock(i: number, x: tf.Tensor, temb: tf.Tensor, textLen: number, rot: RotaryTensors | null, drop?: () => DropoutFn): tf.Tensor {
    const block = this.transformer_blocks.at(i);
    if (!this.gradientCheckpointing) return block.forward(x, temb, textLen, rot, drop?.());
    return checkpointedBlock(block, x, temb, textLen, rot, drop);
  }

  /**
   * The align forward: `latents` `[B, F, h, w, C]` (noisy), `textEmbeddings` `[B, L, text_embed_dim]`
   * (L ≤ max_text_seq_length), `timesteps` (B integers or floats, or `{ timeProjection }` made beforehand
   * by `timeProjection(timesteps)`) → `{ sample, aligned }` with
   * `sample` `[B, F, h, w, out_channels]` and `aligned` = projector(vision tokens after block
   * `alignLayer`) `[B, F·(h/p)·(w/p), align_dim]` (the official `aligns[0]` is this flattened to
   * `[B·N, align_dim]`).
   */
  forward(latents: tf.Tensor, textEmbeddings: tf.Tensor, timesteps: TimestepInput, opts: TransformerForwardOptions = {}): TransformerOutput {
    const ts = timesteps instanceof tf.Tensor ? (Array.from(timesteps.dataSync()) as number[]) : timesteps;
    this.checkInputs(latents, textEmbeddings, ts);
    const c = this.config;
    const alignLayer = opts.alignLayer ?? (this.projector && this.alignConfig ? this.alignConfig.align_layer : 0);
    if (!Number.isInteger(alignLayer) || alignLayer < 0 || alignLayer > c.num_layers) {
      throw new Error(`forward: alignLayer ${alignLayer} is out of range (1-based block index 1..${c.num_layers}, or 0 for none)`);
    }
    if (alignLayer > 0 && !this.projector && (opts.projectAligned ?? true)) {
      throw new Error(`forward: alignLayer ${alignLayer} asked, but the model has no projector (load a VideoREPA checkpoint or call createAlignParts)`);
    }
    const grid = this.latentGrid(latents.shape);
    const rot: RotaryTensors | null = c.use_rotary_positional_embeddings
      ? typeof opts.rotary === 'object'
        ? opts.rotary
        : this.rotaryFor(grid, opts.rotary ?? 'pipeline')
      : null;
    if (rot && rot.cos.shape[0] !== grid.frames * grid.height * grid.width) {
      throw new Error(`forward: rotary tables have ${rot.cos.shape[0]} rows, the latents have ${grid.frames * grid.height * grid.width} vision tokens`);
    }
    const out: TransformerOutput = { sample: null as unknown as tf.Tensor };
    const result = tf.tidy(() => {
      const keep: tf.Tensor[] = [];
      const L = textEmbeddings.shape[1]!;
      const temb = this.timeEmbedding(ts);
      const p = opts.dropoutRng && c.dropout > 0 ? c.dropout : 0;
      let x = this.patchEmbed(latents, textEmbeddings);
      if (p) x = dropout(x, p, opts.dropoutRng!); // diffusers' embedding_dropout
      if (opts.returnEmbeddings) {
        out.timeEmbedding = temb;
        out.patchEmbedded = x;
        keep.push(temb, x);
      }
      if (opts.returnBlocks) out.blocks = [];
      for (let i = 0; i < c.num_layers; i++) {
        // a fresh clone of the block's stream per call: the checkpointed recompute draws the same masks
        const blockStream = p ? opts.dropoutRng!.fork() : undefined;
        x = this.runBlock(i, x, temb, L, rot, blockStream ? () => dropoutFn(p, blockStream.clone()) : undefined);
        if (opts.returnBlocks) {
          out.blocks!.push(x);
          keep.push(x);
        }
        if (i + 1 === alignLayer) {
          const hidden = tf.slice(x, [0, L, 0], [-1, -1, -1]);
          out.alignHidden = hidden;
          keep.push(hidden);
          if (opts.projectAligned ?? true) {
            const aligned = this.projector!.forward(hidden);
            out.aligned = aligned;
            keep.push(aligned);
          }
        }
      }
      let h = tf.slice(x, [0, L, 0], [-1, -1, -1]);
      h = this.norm_final.forward(h);
      h = this.norm_out.forward(h, temb);
      h = this.proj_out.forward(h);
      out.sample = this.unpatchify(h, latents.shape[0]!, grid);
      keep.push(out.sample);
      return keep;
    });
    void result;
    return out;
  }

  /**
   * The vision tokens after block `layer` (1-based) — running only blocks 1..layer — as `[B, N, D]`
   * frame-major, with the token grid. For feature extraction (e.g. the Physion probe at depth 18).
   */
  hiddenStates(
    latents: tf.Tensor,
    textEmbeddings: tf.Tensor,
    timesteps: TimestepInput,
    opts: { layer: number; rotary?: RotaryMode | RotaryTensors },
  ): { tokens: tf.Tensor; grid: LatentGrid } {
    const ts = timesteps instanceof tf.Tensor ? (Array.from(timesteps.dataSync()) as number[]) : timesteps;
    this.checkInputs(latents, textEmbeddings, ts);
    const c = this.config;
    if (!Number.isInteger(opts.layer) || opts.layer < 1 || opts.layer > c.num_layers) {
      throw new Error(`hiddenStates: layer ${opts.layer} is out of range (1-based block index 1..${c.num_layers})`);
    }
    const grid = this.latentGrid(latents.shape);
    const rot = c.use_rotary_positional_embeddings ? (typeof opts.rotary === 'object' ? opts.rotary : this.rotaryFor(grid, opts.rotary ?? 'pipeline')) : null;
    const tokens = tf.tidy(() => {
      const L = textEmbeddings.shape[1]!;
      const temb = this.timeEmbedding(ts);
      let x = this.patchEmbed(latents, textEmbeddings);
      for (let i = 0; i < opts.layer; i++) x = this.runBlock(i, x, temb, L, rot);
      return tf.slice(x, [0, L, 0], [-1, -1, -1]);
    });
    return { tokens, grid };
  }

  /** `[B, N, p·p·C]` (channel order C, p_row, p_col as diffusers) → `[B, F, h·p, w·p, C]`. */
  private unpatchify(h: tf.Tensor, B: number, g: LatentGrid): tf.Tensor {
    const p = this.config.patch_size;
    const C = this.config.out_channels;
    return tf.tidy(() => {
      const r = tf.reshape(h, [B * g.frames, g.height, g.width, C, p, p]);
      const t = tf.transpose(r, [0, 1, 4, 2, 5, 3]); // [BF, h, p, w, p, C]
      return tf.reshape(t, [B, g.frames, g.height * p, g.width * p, C]);
    });
  }

  /** Dispose parameters (align parts included) and the cached position tables. */
  override dispose(): void {
    super.dispose();
    for (const t of this.tables.values()) tf.dispose(t);
    this.tables.clear();
  }
}

function isTimeProjection(t: TimestepInput): t is { timeProjection: tf.Tensor } {
  return !(t instanceof tf.Tensor) && typeof t === 'object' && t !== null && 'timeProjection' in t;
}

/**
 * One block under tf.customGrad: the forward keeps nothing but its inputs; the backward recomputes the
 * block with a fresh tape and returns the gradients of the input sequence, the time embedding and
 * the block's trainable variables (which are passed as explicit inputs so the outer tape reaches them).
 */
export function checkpointedBlock(block: CogVideoXBlock, x: tf.Tensor, temb: tf.Tensor, textLen: number, rot: RotaryTensors | null, drop?: () => DropoutFn): tf.Tensor {
  const vars = block.trainableParameters();
  const f = tf.customGrad((...args: Array<tf.Tensor | tf.GradSaveFunc>) => {
    const save = args[args.length - 1] as tf.GradSaveFunc;
    const xIn = args[0] as tf.Tensor;
    const tIn = args[1] as tf.Tensor;
    save([xIn, tIn]);
    const value = block.forward(xIn, tIn, textLen, rot, drop?.());
    return {
      value,
      gradFunc: (dy: tf.Tensor | tf.Tensor[], saved: tf.Tensor[]) => {
        const [xs, tsv] = saved as [tf.Tensor, tf.Tensor];
        const g = tf.grads((a: tf.Tensor, b: tf.Tensor, ..._v: tf.Tensor[]) => block.forward(a, b, textLen, rot, drop?.()));
        // A nested gradients() call starts its own tape and, when done, frees it and clears the
        // engine's active tape, which the outer backward pass still needs for its cleanup: keep the
        // outer tape aside and put it back. (The recomputed activations are freed per block.)
        const state = (tf.engine() as unknown as { state: { activeTape: unknown } }).state;
        const outerTape = state.activeTape;
        try {
          return g([xs, tsv, ...vars], dy as tf.Tensor);
        } finally {
          state.activeTape = outerTape;
        }
      },
    };
  });
  return f(x, temb, ...vars) as tf.Tensor;
}

/** Parse and validate a config.json text / object (see resolveTransformerConfig). */
export function transformerConfigFrom(raw: unknown, what = 'config.json'): { config: CogVideoXTransformerConfig; align?: Partial<AlignConfig> } {
  return resolveTransformerConfig(raw as Record<string, unknown>, what);
}

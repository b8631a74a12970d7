/**
 * AutoencoderKLCogVideoX (diffusers), channels-last: videos `[B, F, H, W, C]`, latents `[B, f, h, w, C]`.
 * Parameter names = the diffusers state-dict keys (`encoder.conv_in.conv.weight`,
 * `decoder.up_blocks.0.resnets.1.norm1.conv_y.conv.weight`, …).
 *
 * Semantics followed exactly:
 * - causal 3D conv: time padded in front with the conv cache of the previous frame batch, or k−1 copies
 *   of the first frame; spatial zero padding (k−1)/2; the new cache is the last k−1 frames of the
 *   time-padded input. Computed as a sum of conv2d over time taps (core's conv3d).
 * - frame batching: encode runs the encoder on frame batches of 8 (the first also takes the extra
 *   leading frame: 1 + 8k frames → 9, 8, 8, …), decode on latent batches of 2 (first takes the extra
 *   one), carrying every causal conv's cache; GroupNorm statistics are per batch (as the official code).
 * - down blocks: temporal average pooling of frame pairs (first frame kept alone when the count is
 *   odd) in the first log2(temporal_compression_ratio) blocks, then right/bottom zero pad and a stride-2
 *   conv2d per frame; up blocks: nearest ×2 in space (and in time, first frame kept alone when odd)
 *   then conv2d per frame; decoder norms are spatial norms conditioned on the latent chunk
 *   (nearest-resized, first frame separately when the count is odd and > 1).
 * - posterior: mean, logvar = split(channels), logvar clamped to [−30, 20], std = exp(logvar / 2).
 * - tiling (opt-in, as enable_tiling): overlapping spatial tiles blended linearly, diffusers' sizes.
 */
import * as tf from '@tensorflow/tfjs';
import { Conv2d, Conv3d, GroupNorm, Module, ModuleList, Rng, conv3d, groupNormInference, silu, type InitOptions } from '@vrepa/core';
import { latentFrames, resolveVaeConfig, vaeSpatialFactor, type CogVideoXVaeConfig } from './config.js';

/** Per-conv caches carried between frame batches (each tensor kept; replaced ones disposed). */
export class ConvCache {
  private readonly map = new Map<Module, tf.Tensor>();
  get(m: Module): tf.Tensor | undefined {
    return this.map.get(m);
  }
  set(m: Module, t: tf.Tensor): void {
    const old = this.map.get(m);
    this.map.set(m, tf.keep(t));
    if (old && old !== t) old.dispose();
  }
  dispose(): void {
    for (const t of this.map.values()) t.dispose();
    this.map.clear();
  }
}

/** CogVideoXCausalConv3d: `conv` (a Conv3d, stride 1) with causal time padding and a conv cache. */
export class CausalConv3d extends Module {
  /** How the 3D convolutions run: 'taps' (default; Σ of conv2d over time taps) or 'native' tf.conv3d (benchmark baseline). */
  static impl: 'taps' | 'native' = 'taps';
  /**
   * Free intermediates as soon as they are used (conv taps, resnet and block chains): a much lower peak
   * for 480×720 videos. Forward only — set false to differentiate through the VAE.
   */
  static freeIntermediates = true;
  /** Inputs above this many elements are convolved in time chunks (the official CogVideoXSafeConv3d splits above 1 Gi fp16 values; default 2^27 float32 = 512 MiB). */
  static maxChunkElements = 2 ** 27;
  readonly conv: Conv3d;
  readonly kt: number;
  private readonly pad: number;
  constructor(inC: number, outC: number, k: number, init: InitOptions = {}) {
    super();
    this.kt = k;
    this.pad = (k - 1) / 2;
    this.conv = this.module('conv', new Conv3d(inC, outC, k, { ...init, padding: [0, this.pad, this.pad] }));
  }
  /** `[B, T, H, W, in]` → `[B, T, H, W, out]` */
  forward(x: tf.Tensor, cache?: ConvCache): tf.Tensor {
    return tf.tidy(() => {
      let inp = x;
      const k = this.kt;
      const T = x.shape[1]!;
      if (k > 1 && CausalConv3d.freeIntermediates && CausalConv3d.impl === 'taps' && (x.size / T) * (T + k - 1) <= CausalConv3d.maxChunkElements)
        return this.leanTaps(x, cache);
      if (k > 1) {
        const [b, , h, w, c] = x.shape as number[];
        const prev = cache?.get(this);
        const pad = prev ?? tf.tile(tf.slice(x, [0, 0, 0, 0, 0], [b!, 1, h!, w!, c!]), [1, k - 1, 1, 1, 1]);
        inp = tf.concat([pad, x], 1);
        if (CausalConv3d.freeIntermediates && pad !== prev) pad.dispose();
        if (cache) cache.set(this, tf.slice(inp, [0, inp.shape[1]! - (k - 1), 0, 0, 0], [b!, k - 1, h!, w!, c!]));
      }
      const p = this.pad;
      const run = (t: tf.Tensor) =>
        conv3d(t, this.conv.weight.value, this.conv.bias?.value, { padding: [0, p, p], impl: CausalConv3d.impl, inference: CausalConv3d.freeIntermediates });
      // CogVideoXSafeConv3d: large inputs are convolved in time chunks overlapping by k − 1 frames (same result)
      const outFrames = inp.shape[1]! - (k - 1);
      const parts = Math.min(outFrames, Math.ceil(inp.size / CausalConv3d.maxChunkElements));
      if (parts <= 1) return run(inp);
      const per = Math.ceil(outFrames / parts);
      const outs: tf.Tensor[] = [];
      for (let a = 0; a < outFrames; a += per) {
        const n = Math.min(per, outFrames - a);
        const piece = tf.slice(inp, [0, a, 0, 0, 0], [-1, n + k - 1, -1, -1, -1]);
        outs.push(run(piece));
        if (CausalConv3d.freeIntermediates) piece.dispose();
      }
      const y = tf.concat(outs, 1);
      if (CausalConv3d.freeIntermediates) tf.dispose(outs);
      return y;
    });
  }

  /**
   * Forward-only taps without the time-padded copy of the input: tap i reads frames i … i+T−1 of
   * [pad, x], i.e. the last k−1−i pad frames then x's first T−(k−1−i) frames (the last tap is x itself),
   * so only one tap's frames exist at a time. Same result as conv3d on concat([pad, x]).
   */
  private leanTaps(x: tf.Tensor, cache?: ConvCache): tf.Tensor {
    return tf.tidy(() => {
      const k = this.kt;
      const [b, T, h, w, c] = x.shape as [number, number, number, number, number];
      const prev = cache?.get(this);
      const pad = prev ?? tf.tile(tf.slice(x, [0, 0, 0, 0, 0], [b, 1, h, w, c]), [1, k - 1, 1, 1, 1]);
      // the new cache: the last k−1 frames of [pad, x] (set after the taps: setting it frees the old one, `pad`)
      const last = cache ? (T >= k - 1 ? tf.slice(x, [0, T - (k - 1), 0, 0, 0], [b, k - 1, h, w, c]) : tf.concat([tf.slice(pad, [0, T, 0, 0, 0], [b, k - 1 - T, h, w, c]), x], 1)) : null;
      const wt = this.conv.weight.value;
      const p = this.pad;
      let acc: tf.Tensor | null = null;
      for (let i = 0; i < k; i++) {
        const fromPad = Math.min(k - 1 - i, T);
        const fromX = T - fromPad;
        let frames: tf.Tensor;
        if (fromPad === 0) frames = x;
        else {
          const pp = tf.slice(pad, [0, i, 0, 0, 0], [b, fromPad, h, w, c]);
          if (fromX === 0) frames = pp;
          else {
            const xx = tf.slice(x, [0, 0, 0, 0, 0], [b, fromX, h, w, c]);
            frames = tf.concat([pp, xx], 1);
            tf.dispose([pp, xx]);
          }
        }
        const wi = tf.reshape(tf.slice(wt, [i, 0, 0, 0, 0], [1, -1, -1, -1, -1]), wt.shape.slice(1) as [number, number, number, number]) as tf.Tensor4D;
        // per-frame conv2d on a reshape (no copy): [B·T, H, W, C] → [B, T, H, W, out]
        const f4 = tf.reshape(frames, [b * T, h, w, c]) as tf.Tensor4D;
        const y4 = tf.conv2d(f4, wi, 1, [[0, 0], [p, p], [p, p], [0, 0]]);
        const y = tf.reshape(y4, [b, T, ...y4.shape.slice(1)]);
        tf.dispose([f4, y4, wi]);
        if (frames !== x) frames.dispose();
        if (acc) {
          const sum: tf.Tensor = tf.add(acc, y);
          tf.dispose([acc, y]);
          acc = sum;
        } else acc = y;
      }
      if (cache && last) cache.set(this, last);
      else if (pad !== prev) pad.dispose();
      const bias = this.conv.bias?.value;
      if (!bias) return acc!;
      const out = tf.add(acc!, bias);
      acc!.dispose();
      return out;
    });
  }
}

/** GroupNorm forward; the lean forward-only form when CausalConv3d.freeIntermediates is on. */
function gn(n: GroupNorm, x: tf.Tensor): tf.Tensor {
  return CausalConv3d.freeIntermediates ? groupNormInference(x, n.groups, n.weight?.value, n.bias?.value, n.eps) : n.forward(x);
}

/** PyTorch 'nearest' source indices for resizing `inSize` → `outSize` (float32 scale in/out, floor, clamp). */
export function nearestIndices(inSize: number, outSize: number): Int32Array {
  const idx = new Int32Array(outSize);
  if (outSize === inSize) idx.forEach((_, i) => (idx[i] = i));
  else if (outSize === 2 * inSize) idx.forEach((_, i) => (idx[i] = i >> 1));
  else {
    const scale = Math.fround(inSize / outSize);
    for (let i = 0; i < outSize; i++) idx[i] = Math.min(Math.floor(Math.fround(i * scale)), inSize - 1);
  }
  return idx;
}

/** F.interpolate(mode='nearest', size) on channels-last `[B, T, H, W, C]` to `[B, T', H', W', C]`. */
export function resizeNearest3d(x: tf.Tensor, size: [number, number, number]): tf.Tensor {
  return tf.tidy(() => {
    let y = x;
    for (let a = 0; a < 3; a++) {
      const n = y.shape[a + 1]!;
      if (n === size[a]) continue;
      y = tf.gather(y, tf.tensor1d(nearestIndices(n, size[a]!), 'int32'), a + 1);
    }
    return y;
  });
}

/** CogVideoXSpatialNorm3D: `norm_layer` GroupNorm(eps 1e-6), `conv_y`, `conv_b` (1×1×1 causal convs of zq). */
export class SpatialNorm3D extends Module {
  readonly norm_layer: GroupNorm;
  readonly conv_y: CausalConv3d;
  readonly conv_b: CausalConv3d;
  constructor(fC: number, zqC: number, groups: number, init: InitOptions = {}) {
    super();
    this.norm_layer = this.module('norm_layer', new GroupNorm(groups, fC, { eps: 1e-6 }));
    this.conv_y = this.module('conv_y', new CausalConv3d(zqC, fC, 1, init));
    this.conv_b = this.module('conv_b', new CausalConv3d(zqC, fC, 1, init));
  }
  forward(f: tf.Tensor, zq: tf.Tensor, cache?: ConvCache): tf.Tensor {
    return tf.tidy(() => {
      const [, t, h, w] = f.shape as number[];
      let z: tf.Tensor;
      if (t! > 1 && t! % 2 === 1) {
        const zt = zq.shape[1]!;
        const first = resizeNearest3d(tf.slice(zq, [0, 0, 0, 0, 0], [-1, 1, -1, -1, -1]), [1, h!, w!]);
        const rest = resizeNearest3d(tf.slice(zq, [0, 1, 0, 0, 0], [-1, zt - 1, -1, -1, -1]), [t! - 1, h!, w!]);
        z = tf.concat([first, rest], 1);
      } else {
        z = resizeNearest3d(zq, [t!, h!, w!]);
      }
      // norm(f)·conv_y(z) + conv_b(z), freeing each full-size intermediate after its use
      const free = CausalConv3d.freeIntermediates;
      const n = gn(this.norm_layer, f);
      const y = this.conv_y.forward(z, cache);
      const m = tf.mul(n, y);
      if (free) tf.dispose([n, y]);
      const b = this.conv_b.forward(z, cache);
      const out = tf.add(m, b);
      if (free) tf.dispose([m, b]);
      return out;
    });
  }
}

/**
 * `step(t, f)` = f(t), then frees t (unless it is the chain's input) when CausalConv3d.freeIntermediates
 * is on: a chain of big activations keeps one or two alive instead of all of them until tidy ends.
 */
function chainStep(input: tf.Tensor): (t: tf.Tensor, f: (t: tf.Tensor) => tf.Tensor) => tf.Tensor {
  return (t, f) => {
    const y = f(t);
    if (CausalConv3d.freeIntermediates && t !== input && t !== y) t.dispose();
    return y;
  };
}

/** CogVideoXResnetBlock3D (no time embedding): norm1, conv1, norm2, conv2, conv_shortcut (1×1×1) when channels change. */
export class ResnetBlock3D extends Module {
  readonly norm1: GroupNorm | SpatialNorm3D;
  readonly norm2: GroupNorm | SpatialNorm3D;
  readonly conv1: CausalConv3d;
  readonly conv2: CausalConv3d;
  readonly conv_shortcut: Conv3d | null = null;
  constructor(inC: number, outC: number, groups: number, eps: number, spatialNormDim: number | null, init: InitOptions = {}) {
    super();
    if (spatialNormDim === null) {
      this.norm1 = this.module('norm1', new GroupNorm(groups, inC, { eps }));
      this.norm2 = this.module('norm2', new GroupNorm(groups, outC, { eps }));
    } else {
      this.norm1 = this.module('norm1', new SpatialNorm3D(inC, spatialNormDim, groups, init));
      this.norm2 = this.module('norm2', new SpatialNorm3D(outC, spatialNormDim, groups, init));
    }
    this.conv1 = this.module('conv1', new CausalConv3d(inC, outC, 3, init));
    this.conv2 = this.module('conv2', new CausalConv3d(outC, outC, 3, init));
    if (inC !== outC) this.conv_shortcut = this.module('conv_shortcut', new Conv3d(inC, outC, 1, init));
  }
  private norm(n: GroupNorm | SpatialNorm3D, x: tf.Tensor, zq: tf.Tensor | null, cache?: ConvCache): tf.Tensor {
    return n instanceof SpatialNorm3D ? n.forward(x, zq!, cache) : gn(n, x);
  }
  forward(x: tf.Tensor, zq: tf.Tensor | null, cache?: ConvCache): tf.Tensor {
    return tf.tidy(() => {
      const step = chainStep(x);
      let h = step(this.norm(this.norm1, x, zq, cache), (t) => silu(t));
      h = step(h, (t) => this.conv1.forward(t, cache));
      h = step(h, (t) => this.norm(this.norm2, t, zq, cache));
      h = step(h, (t) => silu(t));
      h = step(h, (t) => this.conv2.forward(t, cache));
      const skip = this.conv_shortcut ? this.conv_shortcut.forward(x) : x;
      return step(h, (t) => tf.add(t, skip));
    });
  }
}

function foldFrames(x: tf.Tensor): tf.Tensor {
  const [b, t, h, w, c] = x.shape as number[];
  return tf.reshape(x, [b! * t!, h!, w!, c!]);
}
function unfoldFrames(x: tf.Tensor, b: number): tf.Tensor {
  const [bt, h, w, c] = x.shape as number[];
  return tf.reshape(x, [b, bt! / b, h!, w!, c!]);
}
/** mean of frame pairs: `[B, 2n, H, W, C]` → `[B, n, H, W, C]` */
function avgPoolTime(x: tf.Tensor): tf.Tensor {
  const [b, t, h, w, c] = x.shape as number[];
  return tf.mean(tf.reshape(x, [b!, t! / 2, 2, h!, w!, c!]), 2);
}
/** nearest ×2 in H and W, per frame */
function up2Spatial(x: tf.Tensor): tf.Tensor {
  const [b, t, h, w] = x.shape as number[];
  return unfoldFrames(tf.image.resizeNearestNeighbor(foldFrames(x) as tf.Tensor4D, [2 * h!, 2 * w!]), b!);
}
/** each frame twice */
function up2Time(x: tf.Tensor): tf.Tensor {
  const [b, t, h, w, c] = x.shape as number[];
  return tf.reshape(tf.tile(tf.expandDims(x, 2), [1, 1, 2, 1, 1, 1]), [b!, 2 * t!, h!, w!, c!]);
}

/** CogVideoXDownsample3D: optional temporal pair-averaging, then pad (0,1,0,1) and a stride-2 conv2d `conv` per frame. */
export class Downsample3D extends Module {
  readonly conv: Conv2d;
  constructor(
    ch: number,
    readonly compressTime: boolean,
    init: InitOptions = {},
  ) {
    super();
    this.conv = this.module('conv', new Conv2d(ch, ch, 3, { ...init, stride: 2, padding: [[0, 1], [0, 1]] }));
  }
  forward(x: tf.Tensor): tf.Tensor {
    return tf.tidy(() => {
      let y = x;
      const t = x.shape[1]!;
      if (this.compressTime) {
        if (t % 2 === 1) {
          const first = tf.slice(x, [0, 0, 0, 0, 0], [-1, 1, -1, -1, -1]);
          y = t > 1 ? tf.concat([first, avgPoolTime(tf.slice(x, [0, 1, 0, 0, 0], [-1, t - 1, -1, -1, -1]))], 1) : first;
        } else y = avgPoolTime(x);
      }
      return unfoldFrames(this.conv.forward(foldFrames(y)), x.shape[0]!);
    });
  }
}

/** CogVideoXUpsample3D: nearest ×2 (and ×2 in time when compressing, first frame alone when odd), then conv2d `conv` per frame. */
export class Upsample3D extends Module {
  readonly conv: Conv2d;
  constructor(
    ch: number,
    readonly compressTime: boolean,
    init: InitOptions = {},
  ) {
    super();
    this.conv = this.module('conv', new Conv2d(ch, ch, 3, { ...init, padding: 1 }));
  }
  forward(x: tf.Tensor): tf.Tensor {
    return tf.tidy(() => {
      const t = x.shape[1]!;
      let y: tf.Tensor;
      if (this.compressTime && t > 1 && t % 2 === 1) {
        const first = up2Spatial(tf.slice(x, [0, 0, 0, 0, 0], [-1, 1, -1, -1, -1]));
        const rest = up2Time(up2Spatial(tf.slice(x, [0, 1, 0, 0, 0], [-1, t - 1, -1, -1, -1])));
        y = tf.concat([first, rest], 1);
      } else if (this.compressTime && t > 1) {
        y = up2Time(up2Spatial(x));
      } else {
        y = up2Spatial(x);
      }
      return unfoldFrames(this.conv.forward(foldFrames(y)), x.shape[0]!);
    });
  }
}

/** CogVideoXDownBlock3D / CogVideoXUpBlock3D / CogVideoXMidBlock3D: `resnets` + optional `downsamplers.0` / `upsamplers.0`. */
export class VaeBlock3D extends Module {
  readonly resnets: ModuleList<ResnetBlock3D>;
  readonly downsamplers: ModuleList<Downsample3D> | null = null;
  readonly upsamplers: ModuleList<Upsample3D> | null = null;
  constructor(
    inC: number,
    outC: number,
    numLayers: number,
    groups: number,
    eps: number,
    spatialNormDim: number | null,
    resample: { kind: 'down' | 'up'; compressTime: boolean } | null,
    init: InitOptions = {},
  ) {
    super();
    this.resnets = this.module('resnets', new ModuleList<ResnetBlock3D>());
    for (let i = 0; i < numLayers; i++) this.resnets.push(new ResnetBlock3D(i === 0 ? inC : outC, outC, groups, eps, spatialNormDim, init));
    if (resample?.kind === 'down') this.downsamplers = this.module('downsamplers', new ModuleList([new Downsample3D(outC, resample.compressTime, init)]));
    if (resample?.kind === 'up') this.upsamplers = this.module('upsamplers', new ModuleList([new Upsample3D(outC, resample.compressTime, init)]));
  }
  forward(x: tf.Tensor, zq: tf.Tensor | null, cache?: ConvCache): tf.Tensor {
    return tf.tidy(() => {
      const step = chainStep(x);
      let h = x;
      for (const r of this.resnets) h = step(h, (t) => r.forward(t, zq, cache));
      if (this.downsamplers) for (const d of this.downsamplers) h = step(h, (t) => d.forward(t));
      if (this.upsamplers) for (const u of this.upsamplers) h = step(h, (t) => u.forward(t));
      return h;
    });
  }
}

/** CogVideoXEncoder3D: conv_in, down_blocks, mid_block (2 resnets), norm_out, SiLU, conv_out (2·latent channels). */
export class Encoder3D extends Module {
  readonly conv_in: CausalConv3d;
  readonly down_blocks: ModuleList<VaeBlock3D>;
  readonly mid_block: VaeBlock3D;
  readonly norm_out: GroupNorm;
  readonly conv_out: CausalConv3d;
  constructor(c: CogVideoXVaeConfig, init: InitOptions = {}) {
    super();
    const ch = c.block_out_channels;
    const level = Math.log2(c.temporal_compression_ratio);
    this.conv_in = this.module('conv_in', new CausalConv3d(c.in_channels, ch[0]!, 3, init));
    this.down_blocks = this.module('down_blocks', new ModuleList<VaeBlock3D>());
    let out = ch[0]!;
    ch.forEach((o, i) => {
      const inC = out;
      out = o;
      const last = i === ch.length - 1;
      this.down_blocks.push(
        new VaeBlock3D(inC, out, c.layers_per_block, c.norm_num_groups, c.norm_eps, null, last ? null : { kind: 'down', compressTime: i < level }, init),
      );
    });
    this.mid_block = this.module('mid_block', new VaeBlock3D(out, out, 2, c.norm_num_groups, c.norm_eps, null, null, init));
    this.norm_out = this.module('norm_out', new GroupNorm(c.norm_num_groups, out, { eps: 1e-6 }));
    this.conv_out = this.module('conv_out', new CausalConv3d(out, 2 * c.latent_channels, 3, init));
  }
  forward(x: tf.Tensor, cache?: ConvCache): tf.Tensor {
    return tf.tidy(() => {
      const step = chainStep(x);
      let h = this.conv_in.forward(x, cache);
      for (const b of this.down_blocks) h = step(h, (t) => b.forward(t, null, cache));
      h = step(h, (t) => this.mid_block.forward(t, null, cache));
      h = step(h, (t) => gn(this.norm_out, t));
      h = step(h, (t) => silu(t));
      return step(h, (t) => this.conv_out.forward(t, cache));
    });
  }
}

/** CogVideoXDecoder3D: conv_in, mid_block, up_blocks (layers_per_block + 1 resnets), norm_out (spatial), SiLU, conv_out. */
export class Decoder3D extends Module {
  readonly conv_in: CausalConv3d;
  readonly mid_block: VaeBlock3D;
  readonly up_blocks: ModuleList<VaeBlock3D>;
  readonly norm_out: SpatialNorm3D;
  readonly conv_out: CausalConv3d;
  constructor(c: CogVideoXVaeConfig, init: InitOptions = {}) {
    super();
    const rev = [...c.block_out_channels].reverse();
    const level = Math.log2(c.temporal_compression_ratio);
    const L = c.latent_channels;
    this.conv_in = this.module('conv_in', new CausalConv3d(L, rev[0]!, 3, init));
    this.mid_block = this.module('mid_block', new VaeBlock3D(rev[0]!, rev[0]!, 2, c.norm_num_groups, c.norm_eps, L, null, init));
    this.up_blocks = this.module('up_blocks', new ModuleList<VaeBlock3D>());
    let out = rev[0]!;
    rev.forEach((o, i) => {
      const inC = out;
      out = o;
      const last = i === rev.length - 1;
      this.up_blocks.push(
        new VaeBlock3D(inC, out, c.layers_per_block + 1, c.norm_num_groups, c.norm_eps, L, last ? null : { kind: 'up', compressTime: i < level }, init),
      );
    });
    this.norm_out = this.module('norm_out', new SpatialNorm3D(out, L, c.norm_num_groups, init));
    this.conv_out = this.module('conv_out', new CausalConv3d(out, c.out_channels, 3, init));
  }
  forward(z: tf.Tensor, cache?: ConvCache): tf.Tensor {
    return tf.tidy(() => {
      const step = chainStep(z);
      let h = this.conv_in.forward(z, cache);
      h = step(h, (t) => this.mid_block.forward(t, z, cache));
      for (const b of this.up_blocks) h = step(h, (t) => b.forward(t, z, cache));
      h = step(h, (t) => this.norm_out.forward(t, z, cache));
      h = step(h, (t) => silu(t));
      return step(h, (t) => this.conv_out.forward(t, cache));
    });
  }
}

/** The diagonal Gaussian posterior, channels-last `[B, f, h, w, latent]`. Dispose with `dispose()`. */
export interface VaePosterior {
  mean: tf.Tensor;
  logvar: tf.Tensor;
  std: tf.Tensor;
}

export interface TilingOptions {
  /** default sample_height / 2 */
  tileSampleMinHeight?: number;
  /** default sample_width / 2 */
  tileSampleMinWidth?: number;
  /** default 1/6 */
  overlapFactorHeight?: number;
  /** default 1/5 */
  overlapFactorWidth?: number;
}

/** Frame-batch ranges [start, end) of the official loops: batches of `size`, the remainder in the first. */
export function frameBatches(frames: number, size: number): Array<[number, number]> {
  const n = Math.max(Math.floor(frames / size), 1);
  const rem = frames % size;
  const out: Array<[number, number]> = [];
  for (let i = 0; i < n; i++) out.push([size * i + (i === 0 ? 0 : rem), Math.min(frames, size * (i + 1) + rem)]);
  return out;
}

/** blend `b`'s first rows/cols with `a`'s last ones along `axis` (2 = height, 3 = width), as blend_v / blend_h. */
function blend(a: tf.Tensor, b: tf.Tensor, extent: number, axis: 2 | 3): tf.Tensor {
  const e = Math.min(a.shape[axis]!, b.shape[axis]!, extent);
  if (e <= 0) return b;
  return tf.tidy(() => {
    const wShape = [1, 1, 1, 1, 1];
    wShape[axis] = e;
    const w = tf.tensor(Float32Array.from({ length: e }, (_, y) => y / e), wShape);
    const aEnd = sliceAxis(a, axis, a.shape[axis]! - e, e);
    const bStart = sliceAxis(b, axis, 0, e);
    const mixed = tf.add(tf.mul(aEnd, tf.sub(1, w)), tf.mul(bStart, w));
    return b.shape[axis] === e ? mixed : tf.concat([mixed, sliceAxis(b, axis, e, b.shape[axis]! - e)], axis);
  });
}
function sliceAxis(x: tf.Tensor, axis: number, start: number, size: number): tf.Tensor {
  const begin = x.shape.map(() => 0);
  const sz = x.shape.map(() => -1);
  begin[axis] = start;
  sz[axis] = size;
  return tf.slice(x, begin, sz);
}

/**
 * diffusers' tiled encode/decode scheme on channels-last `[B, T, H, W, C]`: tiles of `tileIn` (h, w)
 * starting every `stride` positions, each mapped by `fn`; each output tile is blended with the (already
 * blended) tile above over `blendExtent[0]` rows and the one to the left over `blendExtent[1]` cols,
 * cropped to `rowLimit`, and the crops are concatenated.
 */
export function tiledSpatial(
  x: tf.Tensor,
  fn: (tile: tf.Tensor) => tf.Tensor,
  opts: {
    tileIn: [number, number];
    stride: [number, number];
    blendExtent: [number, number];
    rowLimit: [number, number];
    /** called after each tile with its index and output (e.g. to check that only the outputs accumulate) */
    onTile?: (index: number, out: tf.Tensor) => void;
  },
): tf.Tensor {
  const [, , H, W] = x.shape as number[];
  const rows: tf.Tensor[][] = [];
  const originals: tf.Tensor[] = [];
  try {
    for (let i = 0; i < H!; i += opts.stride[0]) {
      const row: tf.Tensor[] = [];
      rows.push(row);
      for (let j = 0; j < W!; j += opts.stride[1]) {
        const tile = tf.tidy(() => sliceAxis(sliceAxis(x, 2, i, Math.min(opts.tileIn[0], H! - i)), 3, j, Math.min(opts.tileIn[1], W! - j)));
        try {
          const y = fn(tile);
          originals.push(y);
          row.push(y);
        } finally {
          tile.dispose();
        }
        opts.onTile?.(originals.length - 1, originals[originals.length - 1]!);
      }
    }
    return tf.tidy(() => {
      const outRows: tf.Tensor[] = [];
      for (let i = 0; i < rows.length; i++) {
        const parts: tf.Tensor[] = [];
        for (let j = 0; j < rows[i]!.length; j++) {
          let t = rows[i]![j]!;
          if (i > 0) t = blend(rows[i - 1]![j]!, t, opts.blendExtent[0], 2);
          if (j > 0) t = blend(rows[i]![j - 1]!, t, opts.blendExtent[1], 3);
          rows[i]![j] = t; // in place, as the official blend_v / blend_h
          parts.push(sliceAxis(sliceAxis(t, 2, 0, Math.min(opts.rowLimit[0], t.shape[2]!)), 3, 0, Math.min(opts.rowLimit[1], t.shape[3]!)));
        }
        outRows.push(tf.concat(parts, 3));
      }
      return tf.concat(outRows, 2);
    });
  } finally {
    tf.dispose(originals);
  }
}

export interface VaeEncodeOptions {
  /** override the model's tiling setting for this call */
  tiling?: boolean;
}

/** diffusers AutoencoderKLCogVideoX: `encoder`, `decoder`. */
export class AutoencoderKLCogVideoX extends Module {
  readonly config: CogVideoXVaeConfig;
  readonly encoder: Encoder3D;
  readonly decoder: Decoder3D;
  /** encode's frame batch (official 8) and decode's latent frame batch (official 2) */
  numSampleFramesBatchSize = 8;
  numLatentFramesBatchSize = 2;
  useTiling = false;
  tiling: Required<TilingOptions>;

  constructor(config: Partial<CogVideoXVaeConfig> & Record<string, unknown> = {}, init: InitOptions = {}) {
    super();
    this.config = resolveVaeConfig(config);
    this.encoder = this.module('encoder', new Encoder3D(this.config, init));
    this.decoder = this.module('decoder', new Decoder3D(this.config, init));
    this.tiling = {
      tileSampleMinHeight: Math.floor(this.config.sample_height / 2),
      tileSampleMinWidth: Math.floor(this.config.sample_width / 2),
      overlapFactorHeight: 1 / 6,
      overlapFactorWidth: 1 / 5,
    };
  }

  /** Spatial factor between video and latents (8 for CogVideoX). */
  get spatialFactor(): number {
    return vaeSpatialFactor(this.config);
  }

  /** Turn on diffusers-style spatial tiling (sizes default to sample_height/2 × sample_width/2). */
  enableTiling(opts: TilingOptions = {}): this {
    this.useTiling = true;
    this.tiling = { ...this.tiling, ...Object.fromEntries(Object.entries(opts).filter(([, v]) => v !== undefined)) };
    return this;
  }
  disableTiling(): this {
    this.useTiling = false;
    return this;
  }

  private tileLatentMin(): [number, number] {
    const f = this.spatialFactor;
    return [Math.trunc(this.tiling.tileSampleMinHeight / f), Math.trunc(this.tiling.tileSampleMinWidth / f)];
  }

  private checkVideo(x: tf.Tensor, what: string) {
    const c = this.config;
    if (x.rank !== 5 || x.shape[4] !== c.in_channels)
      throw new Error(`${what}: video must be [batch, frames, height, width, ${c.in_channels}], got [${x.shape.join(', ')}]`);
    const f = this.spatialFactor;
    if (x.shape[2]! % f !== 0 || x.shape[3]! % f !== 0)
      throw new Error(`${what}: height and width must be divisible by the VAE factor ${f}, got ${x.shape[2]}×${x.shape[3]}`);
  }

  /** Encoder output `[B, f, h, w, 2·latent]` with the official frame batching (no tiling). */
  private encodeRaw(x: tf.Tensor): tf.Tensor {
    const cache = new ConvCache();
    const parts: tf.Tensor[] = [];
    try {
      for (const [s, e] of frameBatches(x.shape[1]!, this.numSampleFramesBatchSize)) {
        parts.push(tf.tidy(() => this.encoder.forward(tf.slice(x, [0, s, 0, 0, 0], [-1, e - s, -1, -1, -1]), cache)));
      }
      return parts.length === 1 ? parts[0]! : tf.concat(parts, 1);
    } finally {
      cache.dispose();
      if (parts.length > 1) tf.dispose(parts);
    }
  }

  /**
   * Posterior of a video `[B, F, H, W, in]` in [−1, 1] (F = 1 + 4k for CogVideoX): mean, logvar
   * (clamped to [−30, 20]) and std, each `[B, (F−1)/4+1, H/8, W/8, latent]`.
   */
  encode(video: tf.Tensor, opts: VaeEncodeOptions = {}): VaePosterior {
    this.checkVideo(video, 'AutoencoderKLCogVideoX.encode');
    const [, , H, W] = video.shape as number[];
    const t = this.tiling;
    const tiled = (opts.tiling ?? this.useTiling) && (W! > t.tileSampleMinWidth || H! > t.tileSampleMinHeight);
    let h: tf.Tensor;
    if (tiled) {
      const [lh, lw] = this.tileLatentMin();
      const bh = Math.trunc(lh * t.overlapFactorHeight);
      const bw = Math.trunc(lw * t.overlapFactorWidth);
      h = tiledSpatial(video, (tile) => this.encodeRaw(tile), {
        tileIn: [t.tileSampleMinHeight, t.tileSampleMinWidth],
        stride: [Math.trunc(t.tileSampleMinHeight * (1 - t.overlapFactorHeight)), Math.trunc(t.tileSampleMinWidth * (1 - t.overlapFactorWidth))],
        blendExtent: [bh, bw],
        rowLimit: [lh - bh, lw - bw],
      });
    } else h = this.encodeRaw(video);
    const L = this.config.latent_channels;
    const out = tf.tidy(() => {
      const mean = tf.slice(h, [0, 0, 0, 0, 0], [-1, -1, -1, -1, L]);
      const logvar = tf.clipByValue(tf.slice(h, [0, 0, 0, 0, L], [-1, -1, -1, -1, L]), -30, 20);
      return { mean, logvar, std: tf.exp(tf.mul(logvar, 0.5)) };
    });
    h.dispose();
    return out;
  }

  /** A posterior sample mean + std·ε; ε given (same shape) or drawn N(0, 1) from `rng` / `seed`. */
  sample(posterior: VaePosterior, noise?: tf.Tensor | { seed?: number; rng?: Rng }): tf.Tensor {
    return tf.tidy(() => {
      let eps: tf.Tensor;
      if (noise instanceof tf.Tensor) {
        if (noise.shape.join() !== posterior.mean.shape.join())
          throw new Error(`AutoencoderKLCogVideoX.sample: noise must be [${posterior.mean.shape.join(', ')}] like the posterior mean, got [${noise.shape.join(', ')}]`);
        eps = noise;
      } else {
        const rng = noise?.rng ?? Rng.fromSeed(noise?.seed ?? 0);
        eps = rng.randomTensor(posterior.mean.shape, 'normal');
      }
      return tf.add(posterior.mean, tf.mul(posterior.std, eps));
    });
  }

  /** Decoder on latents `[B, f, h, w, latent]` (unscaled) → video `[B, 1 + 4(f−1), 8h, 8w, out]`. */
  decode(z: tf.Tensor, opts: VaeEncodeOptions = {}): tf.Tensor {
    const c = this.config;
    if (z.rank !== 5 || z.shape[4] !== c.latent_channels)
      throw new Error(`AutoencoderKLCogVideoX.decode: latents must be [batch, frames, h, w, ${c.latent_channels}], got [${z.shape.join(', ')}]`);
    const [, , h, w] = z.shape as number[];
    const [lh, lw] = this.tileLatentMin();
    const t = this.tiling;
    const tiled = (opts.tiling ?? this.useTiling) && (w! > lw || h! > lh);
    if (!tiled) return this.decodeRaw(z);
    const bh = Math.trunc(t.tileSampleMinHeight * t.overlapFactorHeight);
    const bw = Math.trunc(t.tileSampleMinWidth * t.overlapFactorWidth);
    return tiledSpatial(z, (tile) => this.decodeRaw(tile), {
      tileIn: [lh, lw],
      stride: [Math.trunc(lh * (1 - t.overlapFactorHeight)), Math.trunc(lw * (1 - t.overlapFactorWidth))],
      blendExtent: [bh, bw],
      rowLimit: [t.tileSampleMinHeight - bh, t.tileSampleMinWidth - bw],
    });
  }

  private decodeRaw(z: tf.Tensor): tf.Tensor {
    const cache = new ConvCache();
    const parts: tf.Tensor[] = [];
    try {
      for (const [s, e] of frameBatches(z.shape[1]!, this.numLatentFramesBatchSize)) {
        parts.push(tf.tidy(() => this.decoder.forward(tf.slice(z, [0, s, 0, 0, 0], [-1, e - s, -1, -1, -1]), cache)));
      }
      return parts.length === 1 ? parts[0]! : tf.concat(parts, 1);
    } finally {
      cache.dispose();
      if (parts.length > 1) tf.dispose(parts);
    }
  }

  /** What the trainer stores: posterior sample × scaling_factor, `[B, f, h, w, latent]`. */
  encodeToLatents(video: tf.Tensor, noise?: tf.Tensor | { seed?: number; rng?: Rng }, opts: VaeEncodeOptions = {}): tf.Tensor {
    const post = this.encode(video, opts);
    try {
      return tf.tidy(() => tf.mul(this.sample(post, noise), this.config.scaling_factor));
    } finally {
      tf.dispose([post.mean, post.logvar, post.std]);
    }
  }

  /** What the pipeline decodes: latents / scaling_factor → video `[B, F, H, W, out]` (values ~[−1, 1]). */
  decodeLatents(latents: tf.Tensor, opts: VaeEncodeOptions = {}): tf.Tensor {
    const z = tf.div(latents, this.config.scaling_factor);
    try {
      return this.decode(z, opts);
    } finally {
      z.dispose();
    }
  }

  /** Latent frames for a video of `frames` frames. */
  latentFrames(frames: number): number {
    return latentFrames(this.config, frames);
  }
}

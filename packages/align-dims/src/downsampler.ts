/**
 * The learned spatial downsampler of VideoREPA: Conv2d(D, D, kernel 3, stride 3) applied per frame,
 * registered as `downsampler_cogvideo_output` (core's Conv2d: PyTorch `[out, in, kH, kW]` in the state dict,
 * stored `[kH, kW, in, out]`). With kernel == stride and no padding the conv is exactly a patchify
 * (reshape → transpose → one flag-free matmul), which needs no Conv2DBackpropFilter and runs on the fast
 * matmul path; other configs go through core's conv2d.
 */
import * as tf from '@tensorflow/tfjs';
import { Conv2d, Module, type InitOptions, type StateDictSource } from '@vrepa/core';

export interface DownsamplerConfig {
  /** Input channels (official: align dim, 768). */
  channels: number;
  /** Output channels (default = channels). */
  outChannels?: number;
  /** [kH, kW] or one number (official 3). */
  kernel?: number | [number, number];
  /** [sH, sW] or one number (official 3). */
  stride?: number | [number, number];
  /** Symmetric zero padding (PyTorch `padding=int`), default 0. */
  padding?: number;
}

export interface ResolvedDownsamplerConfig {
  channels: number;
  outChannels: number;
  kernel: [number, number];
  stride: [number, number];
  padding: number;
}

const pair = (v: number | [number, number] | undefined, d: number): [number, number] => (v === undefined ? [d, d] : typeof v === 'number' ? [v, v] : [v[0], v[1]]);

function resolve(c: DownsamplerConfig): ResolvedDownsamplerConfig {
  const r: ResolvedDownsamplerConfig = {
    channels: c.channels,
    outChannels: c.outChannels ?? c.channels,
    kernel: pair(c.kernel, 3),
    stride: pair(c.stride, 3),
    padding: c.padding ?? 0,
  };
  const pos = (v: number) => Number.isInteger(v) && v >= 1;
  if (!pos(r.channels) || !pos(r.outChannels)) throw new Error(`Downsampler: channels must be positive integers, got ${r.channels} → ${r.outChannels}`);
  if (!r.kernel.every(pos)) throw new Error(`Downsampler: kernel must be positive integers, got [${r.kernel.join(', ')}]`);
  if (!r.stride.every(pos)) throw new Error(`Downsampler: stride must be positive integers, got [${r.stride.join(', ')}]`);
  if (!Number.isInteger(r.padding) || r.padding < 0) throw new Error(`Downsampler: padding must be an integer ≥ 0, got ${r.padding}`);
  return r;
}

export class Downsampler extends Module {
  readonly config: ResolvedDownsamplerConfig;
  readonly conv: Conv2d;

  /** Fresh parameters with PyTorch's default Conv2d init (`init.rng` to seed; `init: 'zeros'` before a load). */
  constructor(config: DownsamplerConfig, init: InitOptions = {}) {
    super();
    const c = resolve(config);
    this.config = c;
    this.conv = this.module('downsampler_cogvideo_output', new Conv2d(c.channels, c.outChannels, c.kernel, { ...init, stride: c.stride, padding: c.padding }));
  }

  static fromStateDict(src: StateDictSource, config: DownsamplerConfig): Downsampler {
    const d = new Downsampler(config, { init: 'zeros' });
    try {
      const rep = d.loadStateDict(src, { strict: false });
      if (rep.missing.length) throw new Error(`Downsampler: state dict is missing ${rep.missing.join(', ')}`);
    } catch (e) {
      d.dispose();
      throw e;
    }
    return d;
  }

  /** Output spatial size for an `h × w` map (PyTorch: floor((h + 2p − k)/s) + 1); throws if the kernel does not fit. */
  outputSize(h: number, w: number): [number, number] {
    const { kernel: k, stride: s, padding: p } = this.config;
    if (h + 2 * p < k[0] || w + 2 * p < k[1]) {
      throw new Error(`Downsampler: kernel ${k[0]}×${k[1]} is larger than the ${p ? 'padded ' : ''}map ${h + 2 * p}×${w + 2 * p}`);
    }
    return [Math.floor((h + 2 * p - k[0]) / s[0]) + 1, Math.floor((w + 2 * p - k[1]) / s[1]) + 1];
  }

  /** Per-image conv: `[N, H, W, C]` → `[N, H', W', outChannels]` (channels-last). */
  forward(x: tf.Tensor): tf.Tensor4D {
    const c = this.config;
    if (x.rank !== 4) throw new Error(`Downsampler: input must be [images, height, width, channels], got shape [${x.shape.join(', ')}]`);
    const [n, h, w, ch] = x.shape as [number, number, number, number];
    if (ch !== c.channels) throw new Error(`Downsampler: input has ${ch} channels (shape [${x.shape.join(', ')}]), expected ${c.channels}`);
    const [ho, wo] = this.outputSize(h, w);
    const [kh, kw] = c.kernel;
    return tf.tidy(() => {
      if (kh === c.stride[0] && kw === c.stride[1] && c.padding === 0) {
        let xc: tf.Tensor = x;
        if (ho * kh !== h || wo * kw !== w) xc = tf.slice(x, [0, 0, 0, 0], [n, ho * kh, wo * kw, ch]);
        // [N, Ho·kh, Wo·kw, C] → [N·Ho, kh, Wo, kw·C] → [N·Ho, Wo, kh, kw·C] → [N·Ho·Wo, kh·kw·C] (order kh, kw, c)
        const patches = tf.reshape(tf.transpose(tf.reshape(xc, [n * ho, kh, wo, kw * ch]), [0, 2, 1, 3]), [n * ho * wo, kh * kw * ch]) as tf.Tensor2D;
        // stored weight [kh, kw, in, out] → [kh·kw·in, out], the same (kh, kw, c) order
        const w2 = tf.reshape(this.conv.weight.value, [kh * kw * ch, c.outChannels]) as tf.Tensor2D;
        let y: tf.Tensor = tf.matMul(patches, w2);
        if (this.conv.bias) y = tf.add(y, this.conv.bias.value);
        return tf.reshape(y, [n, ho, wo, c.outChannels]) as tf.Tensor4D;
      }
      return this.conv.forward(x) as tf.Tensor4D;
    });
  }

  /** Alias of `forward`. */
  apply(x: tf.Tensor): tf.Tensor4D {
    return this.forward(x);
  }
}

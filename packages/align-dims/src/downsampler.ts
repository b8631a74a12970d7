/**
 * The learned spatial downsampler of VideoREPA: Conv2d(D, D, kernel 3, stride 3) applied per frame,
 * named `downsampler_cogvideo_output.{weight,bias}` (weight [out, in, kH, kW] as PyTorch).
 * With kernel == stride and no padding the conv is exactly a patchify (reshape → transpose → matmul),
 * which needs no Conv2DBackpropFilter and runs on the fast matmul path; other configs use tf.conv2d.
 */
import * as tf from '@tensorflow/tfjs';
import { linear2d } from './linear.js';
import { type StateDictSource, uniformInit, variableName, variablesFrom } from './params.js';

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
  /** State-dict prefix (official `downsampler_cogvideo_output`). */
  prefix?: string;
}

interface Resolved {
  channels: number;
  outChannels: number;
  kernel: [number, number];
  stride: [number, number];
  padding: number;
  prefix: string;
}

const pair = (v: number | [number, number] | undefined, d: number): [number, number] => (v === undefined ? [d, d] : typeof v === 'number' ? [v, v] : [v[0], v[1]]);

function resolve(c: DownsamplerConfig): Resolved {
  const r: Resolved = {
    channels: c.channels,
    outChannels: c.outChannels ?? c.channels,
    kernel: pair(c.kernel, 3),
    stride: pair(c.stride, 3),
    padding: c.padding ?? 0,
    prefix: c.prefix ?? 'downsampler_cogvideo_output',
  };
  const pos = (v: number) => Number.isInteger(v) && v >= 1;
  if (!pos(r.channels) || !pos(r.outChannels)) throw new Error(`Downsampler: channels must be positive integers, got ${r.channels} → ${r.outChannels}`);
  if (!r.kernel.every(pos)) throw new Error(`Downsampler: kernel must be positive integers, got [${r.kernel.join(', ')}]`);
  if (!r.stride.every(pos)) throw new Error(`Downsampler: stride must be positive integers, got [${r.stride.join(', ')}]`);
  if (!Number.isInteger(r.padding) || r.padding < 0) throw new Error(`Downsampler: padding must be an integer ≥ 0, got ${r.padding}`);
  return r;
}

export class Downsampler {
  private readonly cfg: Resolved;
  private readonly vars: Record<string, tf.Variable>;

  private constructor(cfg: Resolved, vars: Record<string, tf.Variable>) {
    this.cfg = cfg;
    this.vars = vars;
  }

  get config(): Readonly<Resolved> {
    return this.cfg;
  }

  static shapes(config: DownsamplerConfig): Record<string, number[]> {
    const c = resolve(config);
    return { [`${c.prefix}.weight`]: [c.outChannels, c.channels, c.kernel[0], c.kernel[1]], [`${c.prefix}.bias`]: [c.outChannels] };
  }

  /** Fresh parameters with PyTorch's default Conv2d init (fan-in = in·kH·kW), seeded. */
  static create(config: DownsamplerConfig, opts: { seed?: number } = {}): Downsampler {
    const c = resolve(config);
    const fanIn = c.channels * c.kernel[0] * c.kernel[1];
    const vars: Record<string, tf.Variable> = {};
    let i = 0;
    for (const [name, shape] of Object.entries(Downsampler.shapes(c))) {
      const init = uniformInit(shape, fanIn, (opts.seed ?? 0) * 104729 + 17 + i++);
      vars[name] = tf.variable(init, true, variableName(name));
      init.dispose();
    }
    return new Downsampler(c, vars);
  }

  static fromStateDict(src: StateDictSource, config: DownsamplerConfig): Downsampler {
    const c = resolve(config);
    return new Downsampler(c, tf.tidy(() => variablesFrom(src, Downsampler.shapes(c), 'Downsampler')));
  }

  parameters(): Record<string, tf.Variable> {
    return { ...this.vars };
  }

  /** Output spatial size for an `h × w` map (PyTorch: floor((h + 2p − k)/s) + 1); throws if the kernel does not fit. */
  outputSize(h: number, w: number): [number, number] {
    const { kernel: k, stride: s, padding: p } = this.cfg;
    if (h + 2 * p < k[0] || w + 2 * p < k[1]) {
      throw new Error(`Downsampler: kernel ${k[0]}×${k[1]} is larger than the ${p ? 'padded ' : ''}map ${h + 2 * p}×${w + 2 * p}`);
    }
    return [Math.floor((h + 2 * p - k[0]) / s[0]) + 1, Math.floor((w + 2 * p - k[1]) / s[1]) + 1];
  }

  /** Per-image conv: `[N, H, W, C]` → `[N, H', W', outChannels]` (channels-last). */
  apply(x: tf.Tensor): tf.Tensor4D {
    const c = this.cfg;
    if (x.rank !== 4) throw new Error(`Downsampler: input must be [images, height, width, channels], got shape [${x.shape.join(', ')}]`);
    const [n, h, w, ch] = x.shape as [number, number, number, number];
    if (ch !== c.channels) throw new Error(`Downsampler: input has ${ch} channels (shape [${x.shape.join(', ')}]), expected ${c.channels}`);
    const [ho, wo] = this.outputSize(h, w);
    const weight = this.vars[`${c.prefix}.weight`]!;
    const bias = this.vars[`${c.prefix}.bias`]! as tf.Tensor1D;
    const [kh, kw] = c.kernel;
    return tf.tidy(() => {
      if (kh === c.stride[0] && kw === c.stride[1] && c.padding === 0) {
        let xc: tf.Tensor = x;
        if (ho * kh !== h || wo * kw !== w) xc = tf.slice(x, [0, 0, 0, 0], [n, ho * kh, wo * kw, ch]);
        // [N, Ho·kh, Wo·kw, C] → [N·Ho, kh, Wo, kw·C] → [N·Ho, Wo, kh, kw·C] → [N·Ho·Wo, kh·kw·C] (order kh, kw, c)
        const patches = tf.reshape(tf.transpose(tf.reshape(xc, [n * ho, kh, wo, kw * ch]), [0, 2, 1, 3]), [n * ho * wo, kh * kw * ch]);
        // weight [out, in, kh, kw] → [out, kh, kw, in] → [out, kh·kw·in]
        const w2 = tf.reshape(tf.transpose(weight, [0, 2, 3, 1]), [c.outChannels, kh * kw * ch]) as tf.Tensor2D;
        return tf.reshape(linear2d(patches as tf.Tensor2D, w2, bias), [n, ho, wo, c.outChannels]) as tf.Tensor4D;
      }
      const filter = tf.transpose(weight, [2, 3, 1, 0]) as tf.Tensor4D;
      const y = tf.conv2d(x as tf.Tensor4D, filter, c.stride, c.padding === 0 ? 'valid' : [[0, 0], [c.padding, c.padding], [c.padding, c.padding], [0, 0]]);
      return tf.add(y, bias) as tf.Tensor4D;
    });
  }

  dispose(): void {
    Object.values(this.vars).forEach((v) => v.dispose());
  }
}

/**
 * Convolutions with PyTorch semantics on channels-last activations: conv2d `[B, H, W, C]`, conv3d
 * `[B, T, H, W, C]`; weights in the stored layout (`[kH, kW, in, out]`, `[kT, kH, kW, in, out]`, see
 * ParamLayout 'conv2d' / 'conv3d'). Dilation 1, groups 1.
 *
 * conv3d is computed as a sum over the kT time taps of one conv2d each (frames folded into the batch):
 * tfjs wasm's Conv3D kernel is a naive loop (~0.5 GFLOP/s) while its conv2d runs through XNNPACK
 * (~30 GFLOP/s). `impl: 'native'` calls tf.conv3d instead (symmetric padding only).
 */
import * as tf from '@tensorflow/tfjs';
import { Module, type Parameter } from '../module.js';
import { uniformInit, type InitOptions } from './init.js';

/** Per-axis padding: a number (both sides), or [before, after]. */
export type AxisPad = number | [number, number];

function pairs(p: AxisPad | AxisPad[] | undefined, n: number, what: string): Array<[number, number]> {
  const full: AxisPad[] = p === undefined ? new Array(n).fill(0) : typeof p === 'number' ? new Array(n).fill(p) : p;
  if (!Array.isArray(full) || full.length !== n) throw new Error(`${what}: padding must be a number or ${n} per-axis values, got ${JSON.stringify(p)}`);
  return full.map((a) => {
    const pr: [number, number] = typeof a === 'number' ? [a, a] : a;
    if (!Array.isArray(pr) || pr.length !== 2 || !pr.every((v) => Number.isInteger(v) && v >= 0))
      throw new Error(`${what}: padding must be non-negative integers, got ${JSON.stringify(p)}`);
    return pr;
  });
}

function strides(s: number | number[] | undefined, n: number, what: string): number[] {
  const full = s === undefined ? new Array(n).fill(1) : typeof s === 'number' ? new Array(n).fill(s) : s;
  if (full.length !== n || !full.every((v) => Number.isInteger(v) && v >= 1)) throw new Error(`${what}: stride must be a positive integer or ${n} of them, got ${JSON.stringify(s)}`);
  return full;
}

export interface Conv2dOptions {
  /** a number or [sH, sW]; default 1 */
  stride?: number | [number, number];
  /**
   * PyTorch padding: a number, [pH, pW], or per-axis pairs [[top, bottom], [left, right]] (asymmetric,
   * as F.pad would give); default 0.
   */
  padding?: number | [AxisPad, AxisPad];
}

/** PyTorch F.conv2d on `[B, H, W, Cin]` with weight `[kH, kW, Cin, Cout]` (+ bias `[Cout]`) → `[B, Ho, Wo, Cout]`. */
export function conv2d(x: tf.Tensor, weight: tf.Tensor, bias?: tf.Tensor | null, opts: Conv2dOptions = {}): tf.Tensor {
  if (x.rank !== 4) throw new Error(`conv2d: input must be [B, H, W, C], got [${x.shape.join(', ')}]`);
  if (weight.rank !== 4 || weight.shape[2] !== x.shape[3])
    throw new Error(`conv2d: weight must be [kH, kW, ${x.shape[3]}, out] for input [${x.shape.join(', ')}], got [${weight.shape.join(', ')}]`);
  const [sh, sw] = strides(opts.stride, 2, 'conv2d');
  const [ph, pw] = pairs(opts.padding as AxisPad | AxisPad[] | undefined, 2, 'conv2d');
  const [kh, kw] = [weight.shape[0]!, weight.shape[1]!];
  return tf.tidy(() => {
    // 'valid' / 'same' where they are exactly PyTorch's padding (tfjs-node rejects explicit padding in
    // the backward), else an explicit zero pad first
    const zero = ph![0] === 0 && ph![1] === 0 && pw![0] === 0 && pw![1] === 0;
    const same =
      sh === 1 && sw === 1 && kh % 2 === 1 && kw % 2 === 1 && ph![0] === (kh - 1) / 2 && ph![1] === ph![0] && pw![0] === (kw - 1) / 2 && pw![1] === pw![0];
    const xp = zero || same ? x : tf.pad(x, [[0, 0], ph!, pw!, [0, 0]]);
    let y = tf.conv2d(xp as tf.Tensor4D, weight as tf.Tensor4D, [sh!, sw!], same && !zero ? 'same' : 'valid');
    if (bias) y = tf.add(y, bias);
    return y;
  });
}

export interface Conv3dOptions {
  /** a number or [sT, sH, sW]; default 1 */
  stride?: number | [number, number, number];
  /** a number, [pT, pH, pW], or per-axis pairs [[front, back], [top, bottom], [left, right]]; default 0 */
  padding?: number | [AxisPad, AxisPad, AxisPad];
  /** 'taps' (default): Σ over time taps of conv2d; 'native': tf.conv3d (symmetric padding only) */
  impl?: 'taps' | 'native';
  /**
   * 'taps' only: free each tap's slice and partial sum as soon as it is used, so the peak is ~3 output-
   * sized tensors instead of ~2·kT (large video decoders). Forward only: no gradient can flow through
   * the freed tensors, so never set it under tf.grad.
   */
  inference?: boolean;
}

/**
 * PyTorch F.conv3d on `[B, T, H, W, Cin]` with weight `[kT, kH, kW, Cin, Cout]` (+ bias) →
 * `[B, To, Ho, Wo, Cout]`.
 */
export function conv3d(x: tf.Tensor, weight: tf.Tensor, bias?: tf.Tensor | null, opts: Conv3dOptions = {}): tf.Tensor {
  if (x.rank !== 5) throw new Error(`conv3d: input must be [B, T, H, W, C], got [${x.shape.join(', ')}]`);
  if (weight.rank !== 5 || weight.shape[3] !== x.shape[4])
    throw new Error(`conv3d: weight must be [kT, kH, kW, ${x.shape[4]}, out] for input [${x.shape.join(', ')}], got [${weight.shape.join(', ')}]`);
  const [st, sh, sw] = strides(opts.stride, 3, 'conv3d') as [number, number, number];
  const [pt, ph, pw] = pairs(opts.padding as AxisPad | AxisPad[] | undefined, 3, 'conv3d') as Array<[number, number]>;
  const [b, t, h, w, c] = x.shape as [number, number, number, number, number];
  const [kt, kh, kw, , cout] = weight.shape as [number, number, number, number, number];
  const tp = t + pt![0] + pt![1];
  const to = Math.floor((tp - kt) / st) + 1;
  const ho = Math.floor((h + ph![0] + ph![1] - kh) / sh) + 1;
  const wo = Math.floor((w + pw![0] + pw![1] - kw) / sw) + 1;
  if (to < 1 || ho < 1 || wo < 1)
    throw new Error(`conv3d: kernel [${kt}, ${kh}, ${kw}] is larger than the padded input [${tp}, ${h + ph![0] + ph![1]}, ${w + pw![0] + pw![1]}]`);

  if (opts.impl === 'native') {
    const sym = [pt!, ph!, pw!].every(([a, z]) => a === z);
    if (!sym) throw new Error(`conv3d: impl 'native' supports symmetric padding only, got ${JSON.stringify(opts.padding)}`);
    return tf.tidy(() => {
      const xp = pt![0] || ph![0] || pw![0] ? tf.pad(x, [[0, 0], pt!, ph!, pw!, [0, 0]]) : x;
      let y = tf.conv3d(xp as tf.Tensor5D, weight as tf.Tensor5D, [st, sh, sw], 'valid');
      if (bias) y = tf.add(y, bias);
      return y;
    });
  }

  return tf.tidy(() => {
    // pad time (zeros), and at the end so that every tap's strided window of `to` frames is in range
    const need = (kt - 1) + st * to; // frames needed by the last tap's reshape trick
    const extra = Math.max(0, need - tp);
    const xt = pt![0] || pt![1] || extra ? tf.pad(x, [[0, 0], [pt![0], pt![1] + extra], [0, 0], [0, 0], [0, 0]]) : x;
    let acc: tf.Tensor | null = null;
    for (let i = 0; i < kt; i++) {
      // frames i, i+st, …, i+st·(to−1)
      let frames: tf.Tensor;
      if (st === 1) frames = tf.slice(xt, [0, i, 0, 0, 0], [b, to, h, w, c]);
      else {
        const win = tf.slice(xt, [0, i, 0, 0, 0], [b, st * to, h, w, c]);
        frames = tf.slice(tf.reshape(win, [b, to, st, h * w * c]), [0, 0, 0, 0], [b, to, 1, h * w * c]);
      }
      const wi = tf.reshape(tf.slice(weight, [i, 0, 0, 0, 0], [1, kh, kw, c, cout]), [kh, kw, c, cout]);
      const xin = tf.reshape(frames, [b * to, h, w, c]);
      const y = conv2d(xin, wi, null, { stride: [sh, sw], padding: [ph!, pw!] });
      if (opts.inference) {
        // a reshape shares the slice's buffer on tfjs-node: free both, or every tap's copy lives until tidy ends
        tf.dispose([frames, xin]);
        if (acc) {
          const sum: tf.Tensor = tf.add(acc, y);
          acc.dispose();
          y.dispose();
          acc = sum;
        } else acc = y;
      } else acc = acc ? tf.add(acc, y) : y;
    }
    let out = tf.reshape(acc!, [b, to, ho, wo, cout]);
    if (bias) out = tf.add(out, bias);
    return out;
  });
}

export interface ConvModuleOptions extends InitOptions {
  /** default true */
  bias?: boolean;
}

/** PyTorch nn.Conv2d: `weight` (PyTorch `[out, in, kH, kW]`, stored `[kH, kW, in, out]`), `bias` `[out]`. */
export class Conv2d extends Module {
  readonly weight: Parameter;
  readonly bias: Parameter | null;
  readonly kernelSize: [number, number];
  constructor(
    readonly inChannels: number,
    readonly outChannels: number,
    kernelSize: number | [number, number],
    readonly opts: Conv2dOptions & ConvModuleOptions = {},
  ) {
    super();
    this.kernelSize = typeof kernelSize === 'number' ? [kernelSize, kernelSize] : kernelSize;
    const [kh, kw] = this.kernelSize;
    const bound = 1 / Math.sqrt(inChannels * kh * kw);
    this.weight = this.param('weight', () => uniformInit([kh, kw, inChannels, outChannels], bound, opts), { layout: 'conv2d' });
    this.bias = opts.bias ?? true ? this.param('bias', () => uniformInit([outChannels], bound, opts)) : null;
  }
  /** `[B, H, W, in]` → `[B, Ho, Wo, out]` */
  forward(x: tf.Tensor): tf.Tensor {
    return conv2d(x, this.weight.value, this.bias?.value, this.opts);
  }
}

/** PyTorch nn.Conv3d: `weight` (PyTorch `[out, in, kT, kH, kW]`, stored `[kT, kH, kW, in, out]`), `bias`. */
export class Conv3d extends Module {
  readonly weight: Parameter;
  readonly bias: Parameter | null;
  readonly kernelSize: [number, number, number];
  constructor(
    readonly inChannels: number,
    readonly outChannels: number,
    kernelSize: number | [number, number, number],
    readonly opts: Conv3dOptions & ConvModuleOptions = {},
  ) {
    super();
    this.kernelSize = typeof kernelSize === 'number' ? [kernelSize, kernelSize, kernelSize] : kernelSize;
    const [kt, kh, kw] = this.kernelSize;
    const bound = 1 / Math.sqrt(inChannels * kt * kh * kw);
    this.weight = this.param('weight', () => uniformInit([kt, kh, kw, inChannels, outChannels], bound, opts), { layout: 'conv3d' });
    this.bias = opts.bias ?? true ? this.param('bias', () => uniformInit([outChannels], bound, opts)) : null;
  }
  /** `[B, T, H, W, in]` → `[B, To, Ho, Wo, out]` */
  forward(x: tf.Tensor): tf.Tensor {
    return conv3d(x, this.weight.value, this.bias?.value, this.opts);
  }
}

/**
 * Fixed position / timestep tables, computed exactly as the reference code computes them (float64 where
 * it uses numpy/float64, float32 rounding where it uses float32 tensors), returned as float32 tensors.
 */
import * as tf from '@tensorflow/tfjs';

const f32 = Math.fround;

/**
 * VideoMAE / VideoMAEv2 `get_sinusoid_encoding_table(n_position, d_hid)`: angle(p, j) = p / 10000^(2⌊j/2⌋/d),
 * sin on even columns, cos on odd ones (float64, then float32). Returns `[nPosition, dim]` (the official
 * code adds a leading 1).
 */
export function sinusoidTable(nPosition: number, dim: number): tf.Tensor2D {
  const out = new Float32Array(nPosition * dim);
  for (let p = 0; p < nPosition; p++) {
    for (let j = 0; j < dim; j++) {
      const angle = p / Math.pow(10000, (2 * Math.floor(j / 2)) / dim);
      out[p * dim + j] = j % 2 === 0 ? Math.sin(angle) : Math.cos(angle);
    }
  }
  return tf.tensor2d(out, [nPosition, dim]);
}

export interface TimestepEmbeddingOptions {
  /** order cos, sin instead of sin, cos; default false */
  flipSinToCos?: boolean;
  /** frequencies exp(−ln(maxPeriod)·i/(half − shift)); default 1 (diffusers' default; CogVideoX uses 0) */
  downscaleFreqShift?: number;
  /** default 1 */
  scale?: number;
  /** default 10000 */
  maxPeriod?: number;
}

/**
 * diffusers `get_timestep_embedding(timesteps, embedding_dim, flip_sin_to_cos, downscale_freq_shift,
 * scale, max_period)`, in float32 tensor ops as the reference does. `timesteps` 1-D (numbers or a tensor,
 * may be fractional) → `[N, dim]` (an odd dim gets a zero last column).
 */
export function timestepEmbedding(timesteps: tf.Tensor | number[] | Float32Array, dim: number, opts: TimestepEmbeddingOptions = {}): tf.Tensor2D {
  const shift = opts.downscaleFreqShift ?? 1;
  const scale = opts.scale ?? 1;
  const maxPeriod = opts.maxPeriod ?? 10000;
  const half = Math.floor(dim / 2);
  return tf.tidy(() => {
    const t = timesteps instanceof tf.Tensor ? timesteps : tf.tensor1d(Float32Array.from(timesteps));
    if (t.rank !== 1) throw new Error(`timestepEmbedding: timesteps must be 1-D, got [${t.shape.join(', ')}]`);
    const tf32 = t.dtype === 'float32' ? t : tf.cast(t, 'float32');
    const exponent = tf.div(tf.mul(tf.range(0, half, 1, 'float32'), -Math.log(maxPeriod)), half - shift);
    let args = tf.mul(tf.expandDims(tf32, 1), tf.expandDims(tf.exp(exponent), 0));
    if (scale !== 1) args = tf.mul(args, scale);
    const parts = opts.flipSinToCos ? [tf.cos(args), tf.sin(args)] : [tf.sin(args), tf.cos(args)];
    let emb = tf.concat(parts, 1);
    if (dim % 2 === 1) emb = tf.pad(emb, [
      [0, 0],
      [0, 1],
    ]);
    return emb as tf.Tensor2D;
  });
}

/**
 * diffusers `get_1d_sincos_pos_embed_from_grid(embed_dim, pos)`: ω_i = 1/10000^(i/(D/2)) in float64,
 * out = [sin(pos·ω), cos(pos·ω)] → `[M, dim]` (host Float64Array, row-major).
 */
export function sincos1dHost(dim: number, pos: ArrayLike<number>, flipSinToCos = false): Float64Array {
  if (dim % 2 !== 0) throw new Error(`sincos1d: embed dim must be even, got ${dim}`);
  const half = dim / 2;
  const omega = new Float64Array(half);
  for (let i = 0; i < half; i++) omega[i] = 1 / Math.pow(10000, i / half);
  const out = new Float64Array(pos.length * dim);
  for (let m = 0; m < pos.length; m++) {
    for (let i = 0; i < half; i++) {
      const a = pos[m]! * omega[i]!;
      const s = Math.sin(a);
      const c = Math.cos(a);
      out[m * dim + i] = flipSinToCos ? c : s;
      out[m * dim + half + i] = flipSinToCos ? s : c;
    }
  }
  return out;
}

/** `[M, dim]` float32 tensor of sincos1dHost. */
export function sincos1d(dim: number, pos: ArrayLike<number>, flipSinToCos = false): tf.Tensor2D {
  return tf.tensor2d(Float32Array.from(sincos1dHost(dim, pos, flipSinToCos)), [pos.length, dim]);
}

/**
 * Spatial part shared by the 2D and 3D tables: rows in (row, col) order; the first dim/2 columns encode
 * the column (w) coordinate and the last dim/2 the row (h) coordinate — diffusers' meshgrid puts w first.
 */
function sincos2dFromGrid(dim: number, posH: Float32Array, posW: Float32Array): Float64Array {
  if (dim % 2 !== 0) throw new Error(`sincos2d: embed dim must be even, got ${dim}`);
  const hN = posH.length;
  const wN = posW.length;
  const half = dim / 2;
  const w = new Float64Array(hN * wN);
  const h = new Float64Array(hN * wN);
  for (let r = 0; r < hN; r++)
    for (let c = 0; c < wN; c++) {
      w[r * wN + c] = posW[c]!;
      h[r * wN + c] = posH[r]!;
    }
  const ew = sincos1dHost(half, w);
  const eh = sincos1dHost(half, h);
  const out = new Float64Array(hN * wN * dim);
  for (let m = 0; m < hN * wN; m++) {
    out.set(ew.subarray(m * half, (m + 1) * half), m * dim);
    out.set(eh.subarray(m * half, (m + 1) * half), m * dim + half);
  }
  return out;
}

export interface Sincos2dOptions {
  /** default 16 */
  baseSize?: number;
  /** default 1 */
  interpolationScale?: number;
  /** zero rows prepended (cls_token with extra_tokens); default 0 */
  extraTokens?: number;
}

/**
 * diffusers `get_2d_sincos_pos_embed(embed_dim, grid_size, base_size, interpolation_scale)`: positions
 * i/(size/base)/scale (float32), `[extraTokens + H·W, dim]`, rows in (row, col) order.
 */
export function sincos2d(dim: number, gridSize: number | [height: number, width: number], opts: Sincos2dOptions = {}): tf.Tensor2D {
  const [gh, gw] = typeof gridSize === 'number' ? [gridSize, gridSize] : gridSize;
  const base = opts.baseSize ?? 16;
  const interp = opts.interpolationScale ?? 1;
  const grid = (n: number) => Float32Array.from({ length: n }, (_, i) => f32(f32(i / f32(n / base)) / interp));
  const body = sincos2dFromGrid(dim, grid(gh), grid(gw));
  const extra = opts.extraTokens ?? 0;
  const out = new Float32Array((extra + gh * gw) * dim);
  out.set(body, extra * dim);
  return tf.tensor2d(out, [extra + gh * gw, dim]);
}

export interface Sincos3dOptions {
  /** default 1 (CogVideoX: 1.875) */
  spatialInterpolationScale?: number;
  /** default 1 */
  temporalInterpolationScale?: number;
}

/**
 * diffusers `get_3d_sincos_pos_embed` (CogVideoX 2B): `[frames, height·width, dim]`, each row
 * [temporal (dim/4) | spatial (3·dim/4)], temporal from t/temporalScale, spatial the 2D table (w-half
 * first) from h/spatialScale and w/spatialScale (float32 positions, float64 sin/cos). Note diffusers
 * passes `spatial_size=(width, height)`; here it is named.
 */
export function sincos3d(dim: number, grid: { frames: number; height: number; width: number }, opts: Sincos3dOptions = {}): tf.Tensor3D {
  if (dim % 4 !== 0) throw new Error(`sincos3d: embed dim must be divisible by 4, got ${dim}`);
  const { frames, height, width } = grid;
  const ss = opts.spatialInterpolationScale ?? 1;
  const ts = opts.temporalInterpolationScale ?? 1;
  const dS = (3 * dim) / 4;
  const dT = dim / 4;
  const pos = (n: number, s: number) => Float32Array.from({ length: n }, (_, i) => f32(i / f32(s)));
  const spatial = sincos2dFromGrid(dS, pos(height, ss), pos(width, ss));
  const temporal = sincos1dHost(dT, pos(frames, ts));
  const hw = height * width;
  const out = new Float32Array(frames * hw * dim);
  for (let t = 0; t < frames; t++)
    for (let m = 0; m < hw; m++) {
      const o = (t * hw + m) * dim;
      out.set(temporal.subarray(t * dT, (t + 1) * dT), o);
      out.set(spatial.subarray(m * dS, (m + 1) * dS), o + dT);
    }
  return tf.tensor3d(out, [frames, hw, dim]);
}

/** torch.linspace in float32 (symmetric evaluation: the first half from start, the second from end). */
function linspaceF32(start: number, end: number, steps: number): Float32Array {
  const out = new Float32Array(steps);
  if (steps === 1) {
    out[0] = start;
    return out;
  }
  const step = f32(f32(f32(end) - f32(start)) / (steps - 1));
  const halfway = Math.floor(steps / 2);
  for (let i = 0; i < steps; i++) out[i] = i < halfway ? f32(start + f32(step * i)) : f32(end - f32(step * (steps - i - 1)));
  return out;
}

/**
 * diffusers `get_1d_rotary_pos_embed(dim, pos, theta, use_real=True, repeat_interleave_real=True)`:
 * freqs_i = 1/θ^(2i/dim) (float32), angle = pos·freq, cos/sin repeat-interleaved → `[S, dim]` each.
 */
export function rotary1dHost(dim: number, pos: ArrayLike<number>, theta = 10000): { cos: Float32Array; sin: Float32Array } {
  if (dim % 2 !== 0) throw new Error(`rotary1d: dim must be even, got ${dim}`);
  const half = dim / 2;
  const freqs = Float32Array.from({ length: half }, (_, i) => f32(1 / f32(Math.pow(theta, f32((2 * i) / dim)))));
  const cos = new Float32Array(pos.length * dim);
  const sin = new Float32Array(pos.length * dim);
  for (let s = 0; s < pos.length; s++)
    for (let i = 0; i < half; i++) {
      const a = f32(f32(pos[s]!) * freqs[i]!);
      const c = Math.cos(a);
      const sn = Math.sin(a);
      cos[s * dim + 2 * i] = c;
      cos[s * dim + 2 * i + 1] = c;
      sin[s * dim + 2 * i] = sn;
      sin[s * dim + 2 * i + 1] = sn;
    }
  return { cos, sin };
}

export interface Rotary3dOptions {
  /** default 10000 */
  theta?: number;
  /** 'linspace' (the diffusers pipeline, default) or 'slice' (needs maxSize) */
  gridType?: 'linspace' | 'slice';
  /** linspace: crop coords [[top, left], [bottom, right]]; default [[0, 0], [height, width]] */
  cropsCoords?: [[number, number], [number, number]];
  /** slice: [maxH, maxW] of the table before slicing */
  maxSize?: [number, number];
}

/**
 * diffusers `get_3d_rotary_pos_embed` (CogVideoX 5B): cos, sin `[frames·height·width, headDim]`, tokens
 * frame-major; per token [t (headDim/4) | h (3/8) | w (3/8)] blocks, each repeat-interleaved.
 */
export function rotary3d(headDim: number, grid: { frames: number; height: number; width: number }, opts: Rotary3dOptions = {}): { cos: tf.Tensor2D; sin: tf.Tensor2D } {
  const { frames, height, width } = grid;
  const theta = opts.theta ?? 10000;
  let gt: Float32Array, gh: Float32Array, gw: Float32Array;
  if ((opts.gridType ?? 'linspace') === 'linspace') {
    const [[t0, l0], [b1, r1]] = opts.cropsCoords ?? [
      [0, 0],
      [height, width],
    ];
    gh = linspaceF32(t0, f32((b1 * (height - 1)) / height), height);
    gw = linspaceF32(l0, f32((r1 * (width - 1)) / width), width);
    gt = linspaceF32(0, f32((frames * (frames - 1)) / frames), frames);
  } else {
    if (!opts.maxSize) throw new Error("rotary3d: gridType 'slice' needs maxSize [maxH, maxW]");
    const [mh, mw] = opts.maxSize;
    if (height > mh || width > mw) throw new Error(`rotary3d: grid ${height}×${width} exceeds maxSize ${mh}×${mw}`);
    const ar = (n: number) => Float32Array.from({ length: n }, (_, i) => i);
    gt = ar(frames);
    gh = ar(height);
    gw = ar(width);
  }
  const dT = Math.floor(headDim / 4);
  const dH = Math.floor(headDim / 8) * 3;
  const dW = dH;
  const D = dT + dH + dW;
  const ft = rotary1dHost(dT, gt, theta);
  const fh = rotary1dHost(dH, gh, theta);
  const fw = rotary1dHost(dW, gw, theta);
  const n = frames * height * width;
  const cos = new Float32Array(n * D);
  const sin = new Float32Array(n * D);
  let row = 0;
  for (let t = 0; t < frames; t++)
    for (let r = 0; r < height; r++)
      for (let c = 0; c < width; c++, row++) {
        const o = row * D;
        cos.set(ft.cos.subarray(t * dT, (t + 1) * dT), o);
        sin.set(ft.sin.subarray(t * dT, (t + 1) * dT), o);
        cos.set(fh.cos.subarray(r * dH, (r + 1) * dH), o + dT);
        sin.set(fh.sin.subarray(r * dH, (r + 1) * dH), o + dT);
        cos.set(fw.cos.subarray(c * dW, (c + 1) * dW), o + dT + dH);
        sin.set(fw.sin.subarray(c * dW, (c + 1) * dW), o + dT + dH);
      }
  return { cos: tf.tensor2d(cos, [n, D]), sin: tf.tensor2d(sin, [n, D]) };
}

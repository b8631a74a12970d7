/**
 * `torch.nn.functional.interpolate`, exactly, on channels-last tensors `[batch, ...spatial, channels]`
 * with 1, 2 or 3 spatial dims, built from separable interpolation matrices applied with plain 2-D
 * matmuls (`M[out,in] · X[in, rest]`, no transpose flags, no gather). The gradient is the transposed
 * matrix applied to the output gradient (a custom gradient with a precomputed `Mᵀ`, again flag-free).
 *
 * The matrices reproduce PyTorch's CPU index/weight arithmetic (torch 1.13–2.x, `UpSample.h`): the
 * scale is computed in float32 (`in/out` for `size=`, `1/scale_factor` for `scale_factor=` with the
 * default `recompute_scale_factor=None`), source coordinates `scale·(dst+0.5)−0.5` (clamped at 0 for
 * linear modes, not for cubic), Keys cubic convolution with A = −0.75 and the four taps' indices
 * clamped to the border, legacy `nearest` (`floor(dst·scale)`, with its `out == in` and `out == 2·in`
 * shortcuts) and `nearest-exact` (`floor((dst+0.5)·scale)`). No antialiasing.
 */
import * as tf from '@tensorflow/tfjs';

export type InterpolationMode = 'nearest' | 'nearest-exact' | 'linear' | 'bilinear' | 'trilinear' | 'bicubic';

/** The 1-D kernel a mode applies along each axis. */
export type AxisKernel = 'nearest' | 'nearest-exact' | 'linear' | 'cubic';

export interface AxisInterpolation {
  inSize: number;
  outSize: number;
  kernel: AxisKernel;
  /** PyTorch `align_corners` (linear and cubic kernels only). Default false. */
  alignCorners?: boolean;
  /** The `scale_factor` given to PyTorch for this axis (its coordinate map uses 1/scale); omit for `size=`. */
  scaleFactor?: number;
}

export interface InterpolateOptions {
  /** Output spatial size (one number per spatial dim, or one number for all). Exclusive with scaleFactor. */
  size?: number | readonly number[];
  /** PyTorch `scale_factor` (one per spatial dim, or one for all): output = floor(in·scale). */
  scaleFactor?: number | readonly number[];
  mode?: InterpolationMode;
  /** PyTorch `align_corners` (linear modes and bicubic). Default false. */
  alignCorners?: boolean;
}

const CUBIC_A = -0.75;
const f32 = Math.fround;

/** Spatial dims each mode requires (nearest modes: 1, 2 or 3). */
const MODE_DIMS: Record<InterpolationMode, number[]> = {
  nearest: [1, 2, 3],
  'nearest-exact': [1, 2, 3],
  linear: [1],
  bilinear: [2],
  trilinear: [3],
  bicubic: [2],
};

function modeKernel(mode: InterpolationMode): AxisKernel {
  if (mode === 'nearest' || mode === 'nearest-exact') return mode;
  return mode === 'bicubic' ? 'cubic' : 'linear';
}

/** float32 `compute_scales_value` / `area_pixel_compute_scale` of PyTorch. */
function axisScale(a: AxisInterpolation): number {
  if (a.alignCorners && (a.kernel === 'linear' || a.kernel === 'cubic')) {
    return a.outSize > 1 ? f32((a.inSize - 1) / (a.outSize - 1)) : 0;
  }
  if (a.scaleFactor !== undefined && a.scaleFactor > 0) return f32(1.0 / a.scaleFactor);
  return f32(a.inSize / a.outSize);
}

function cubicConv1(x: number): number {
  return f32(f32(f32(f32(f32((CUBIC_A + 2) * x) - (CUBIC_A + 3)) * x) * x) + 1);
}
function cubicConv2(x: number): number {
  return f32(f32(f32(f32(f32(f32(CUBIC_A * x) - 5 * CUBIC_A) * x) + 8 * CUBIC_A) * x) - 4 * CUBIC_A);
}

const matrixCache = new Map<string, { m: Float32Array; mt: Float32Array; identity: boolean; inSize: number; outSize: number }>();

function validateAxis(a: AxisInterpolation): void {
  if (!Number.isInteger(a.inSize) || a.inSize < 1) throw new Error(`interpolationMatrix: inSize must be a positive integer, got ${a.inSize}`);
  if (!Number.isInteger(a.outSize) || a.outSize < 1) throw new Error(`interpolationMatrix: outSize must be a positive integer, got ${a.outSize}`);
  if (a.scaleFactor !== undefined && !(Number.isFinite(a.scaleFactor) && a.scaleFactor > 0)) {
    throw new Error(`interpolationMatrix: scaleFactor must be a finite number > 0, got ${a.scaleFactor}`);
  }
  if (!['nearest', 'nearest-exact', 'linear', 'cubic'].includes(a.kernel)) {
    throw new Error(`interpolationMatrix: kernel must be nearest, nearest-exact, linear or cubic, got '${String(a.kernel)}'`);
  }
}

/**
 * The `[outSize, inSize]` interpolation matrix (row-major float64) of one axis: output[i] = Σ_j M[i,j]·input[j].
 * Weights follow PyTorch's float32 arithmetic, so the float32 cast of this matrix is PyTorch's weights.
 */
export function interpolationMatrix(a: AxisInterpolation): Float64Array {
  validateAxis(a);
  const { inSize, outSize } = a;
  const m = new Float64Array(outSize * inSize);
  const align = !!a.alignCorners;
  if (a.kernel === 'nearest' || a.kernel === 'nearest-exact') {
    if (a.alignCorners) throw new Error(`interpolationMatrix: alignCorners is only defined for linear and cubic kernels, not '${a.kernel}'`);
    const scale = axisScale(a);
    for (let i = 0; i < outSize; i++) {
      let src: number;
      if (a.kernel === 'nearest') {
        if (outSize === inSize) src = i;
        else if (outSize === 2 * inSize) src = i >> 1;
        else src = Math.min(Math.floor(f32(i * scale)), inSize - 1);
      } else {
        src = Math.min(Math.floor(f32((i + 0.5) * scale)), inSize - 1);
      }
      m[i * inSize + src] = 1;
    }
    return m;
  }
  const scale = axisScale(a);
  for (let i = 0; i < outSize; i++) {
    let real = align ? f32(scale * i) : f32(scale * (i + 0.5) - 0.5);
    if (a.kernel === 'linear') {
      if (real < 0) real = 0;
      const i0 = Math.min(Math.floor(real), inSize - 1);
      const lambda = Math.min(Math.max(f32(real - i0), 0), 1);
      const i1 = i0 + (i0 < inSize - 1 ? 1 : 0);
      m[i * inSize + i0] += f32(1 - lambda);
      m[i * inSize + i1] += lambda;
    } else {
      const i0 = Math.floor(real);
      const t = f32(real - i0);
      const w = [cubicConv2(f32(t + 1)), cubicConv1(t), cubicConv1(f32(1 - t)), cubicConv2(f32(f32(1 - t) + 1))];
      for (let j = 0; j < 4; j++) {
        const idx = Math.max(Math.min(i0 - 1 + j, inSize - 1), 0);
        m[i * inSize + idx] += w[j]!;
      }
    }
  }
  return m;
}

/**
 * Cached float32 matrix, its transpose, and whether it is the identity. With `skipLeading = k` the matrix
 * takes `inSize + k` inputs and ignores the first k (zero columns): "drop the first k, then interpolate"
 * as one matmul (no slice, and the dropped entries get a zero gradient).
 */
export function cachedMatrix(a: AxisInterpolation, skipLeading = 0): { m: Float32Array; mt: Float32Array; identity: boolean; inSize: number; outSize: number } {
  const key = `${a.inSize}|${a.outSize}|${a.kernel}|${a.alignCorners ? 1 : 0}|${a.scaleFactor ?? ''}|${skipLeading}`;
  let hit = matrixCache.get(key);
  if (!hit) {
    const m64 = interpolationMatrix(a);
    const n = a.inSize + skipLeading;
    const o = a.outSize;
    const m = new Float32Array(o * n);
    for (let i = 0; i < o; i++) for (let j = 0; j < a.inSize; j++) m[i * n + j + skipLeading] = m64[i * a.inSize + j]!;
    const mt = new Float32Array(n * o);
    let identity = n === o;
    for (let i = 0; i < o; i++) {
      for (let j = 0; j < n; j++) {
        const v = m[i * n + j]!;
        mt[j * o + i] = v;
        if (identity && v !== (i === j ? 1 : 0)) identity = false;
      }
    }
    hit = { m, mt, identity, inSize: n, outSize: o };
    if (matrixCache.size > 512) matrixCache.clear();
    matrixCache.set(key, hit);
  }
  return hit;
}

/**
 * Apply `M [out, in]` along `axis` of `x`: y[..., i, ...] = Σ_j M[i,j]·x[..., j, ...]. Flag-free 2-D
 * matmuls; the gradient is `Mᵀ · dy` with a precomputed `Mᵀ`.
 */
export function applyAlongAxis(x: tf.Tensor, axis: number, m: Float32Array, mt: Float32Array, outSize: number): tf.Tensor {
  const shape = x.shape;
  const inSize = shape[axis]!;
  if (m.length !== outSize * inSize) throw new Error(`applyAlongAxis: matrix has ${m.length} entries, expected ${outSize}×${inSize} for axis ${axis} of [${shape.join(', ')}]`);
  const pre = shape.slice(0, axis).reduce((p, v) => p * v, 1);
  const post = shape.slice(axis + 1).reduce((p, v) => p * v, 1);
  const outShape = [...shape.slice(0, axis), outSize, ...shape.slice(axis + 1)];
  return tf.tidy(() => {
    const apply = tf.customGrad((...args: Array<tf.Tensor | tf.GradSaveFunc>) => {
      const xi = args[0] as tf.Tensor;
      const save = args[1] as tf.GradSaveFunc;
      const mT = tf.tensor2d(m, [outSize, inSize]);
      const mtT = tf.tensor2d(mt, [inSize, outSize]);
      save([mtT]);
      let x2: tf.Tensor2D;
      if (pre === 1) x2 = tf.reshape(xi, [inSize, post]);
      else x2 = tf.reshape(tf.transpose(tf.reshape(xi, [pre, inSize, post]), [1, 0, 2]), [inSize, pre * post]);
      const y2 = tf.matMul(mT, x2);
      const value = pre === 1 ? tf.reshape(y2, outShape) : tf.reshape(tf.transpose(tf.reshape(y2, [outSize, pre, post]), [1, 0, 2]), outShape);
      const gradFunc = (dy: tf.Tensor, saved: tf.Tensor[]) => {
        const mtS = saved[0] as tf.Tensor2D;
        let d2: tf.Tensor2D;
        if (pre === 1) d2 = tf.reshape(dy, [outSize, post]);
        else d2 = tf.reshape(tf.transpose(tf.reshape(dy, [pre, outSize, post]), [1, 0, 2]), [outSize, pre * post]);
        const g2 = tf.matMul(mtS, d2);
        return pre === 1 ? tf.reshape(g2, shape) : tf.reshape(tf.transpose(tf.reshape(g2, [inSize, pre, post]), [1, 0, 2]), shape);
      };
      return { value, gradFunc };
    });
    return apply(x);
  });
}

function perDim(v: number | readonly number[], dims: number, what: string): number[] {
  if (typeof v === 'number') return new Array(dims).fill(v);
  if (!Array.isArray(v) || v.length !== dims) throw new Error(`interpolate: ${what} must be a number or ${dims} numbers (one per spatial dim), got ${JSON.stringify(v)}`);
  return [...v];
}

/** The output spatial size `interpolate` would produce (PyTorch's rule for scale_factor: floor(in·scale)). */
export function interpolateOutputSize(inSpatial: readonly number[], opts: InterpolateOptions): number[] {
  const dims = inSpatial.length;
  if ((opts.size === undefined) === (opts.scaleFactor === undefined)) {
    throw new Error('interpolate: give exactly one of size and scaleFactor');
  }
  let out: number[];
  if (opts.size !== undefined) {
    out = perDim(opts.size, dims, 'size');
    out.forEach((s) => {
      if (!Number.isInteger(s) || s < 1) throw new Error(`interpolate: size must be positive integers, got ${JSON.stringify(opts.size)}`);
    });
  } else {
    const sf = perDim(opts.scaleFactor!, dims, 'scaleFactor');
    sf.forEach((s) => {
      if (!(Number.isFinite(s) && s > 0)) throw new Error(`interpolate: scaleFactor must be finite numbers > 0, got ${JSON.stringify(opts.scaleFactor)}`);
    });
    out = inSpatial.map((n, i) => Math.floor(n * sf[i]!));
    out.forEach((s, i) => {
      if (s < 1) throw new Error(`interpolate: scaleFactor ${sf[i]} maps input size ${inSpatial[i]} of spatial dim ${i} to ${s}; output sizes must be > 0`);
    });
  }
  return out;
}

/** The per-axis specs of an interpolate call on a `[B, ...spatial, C]` tensor. */
export function interpolationAxes(inSpatial: readonly number[], opts: InterpolateOptions): AxisInterpolation[] {
  const mode = opts.mode ?? 'nearest';
  if (!(mode in MODE_DIMS)) throw new Error(`interpolate: mode must be one of ${Object.keys(MODE_DIMS).join(', ')}, got '${String(mode)}'`);
  const dims = inSpatial.length;
  if (!MODE_DIMS[mode].includes(dims)) {
    throw new Error(
      `interpolate: mode '${mode}' needs ${MODE_DIMS[mode].map((d) => `${d + 2}-D`).join(' or ')} input [batch, ${MODE_DIMS[mode][0] === 1 ? 'length' : '...spatial'}, channels], got ${dims + 2}-D (${dims} spatial dims)`,
    );
  }
  const kernel = modeKernel(mode);
  if (opts.alignCorners && (kernel === 'nearest' || kernel === 'nearest-exact')) {
    throw new Error(`interpolate: alignCorners is only defined for linear, bilinear, trilinear and bicubic, not '${mode}'`);
  }
  const out = interpolateOutputSize(inSpatial, opts);
  const sf = opts.scaleFactor !== undefined ? perDim(opts.scaleFactor, dims, 'scaleFactor') : undefined;
  return inSpatial.map((n, i) => ({ inSize: n, outSize: out[i]!, kernel, alignCorners: !!opts.alignCorners, scaleFactor: sf?.[i] }));
}

/**
 * `torch.nn.functional.interpolate` on a channels-last tensor `[batch, ...spatial, channels]` (1, 2 or 3
 * spatial dims), differentiable. PyTorch's `[B, C, ...spatial]` input corresponds to
 * `x.transpose(0, 2, …, 1)` here. Defaults as PyTorch: mode 'nearest', alignCorners false.
 */
export function interpolate(x: tf.Tensor, opts: InterpolateOptions): tf.Tensor {
  // duck-typed, so tensors made by another loaded copy of tfjs-core are accepted too
  if (!x || typeof x !== 'object' || !Array.isArray((x as tf.Tensor).shape) || !('dataId' in x)) throw new Error('interpolate: x must be a tf.Tensor');
  if (x.rank < 3 || x.rank > 5) {
    throw new Error(`interpolate: x must be [batch, ...spatial, channels] with 1 to 3 spatial dims (rank 3 to 5), got shape [${x.shape.join(', ')}]`);
  }
  if (x.dtype !== 'float32') throw new Error(`interpolate: x must be float32, got ${x.dtype}`);
  const spatial = x.shape.slice(1, -1);
  const axes = interpolationAxes(spatial, opts);
  return tf.tidy(() => {
    let y: tf.Tensor = x;
    axes.forEach((a, i) => {
      const { m, mt, identity } = cachedMatrix(a);
      if (identity) return;
      y = applyAlongAxis(y, i + 1, m, mt, a.outSize);
    });
    return y === x ? tf.clone(x) : y;
  });
}

/** Drop the cached matrices (they are plain JS arrays; this only frees host memory). */
export function clearInterpolationCache(): void {
  matrixCache.clear();
}

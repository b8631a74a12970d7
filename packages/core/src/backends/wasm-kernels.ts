/**
 * Kernel fixes for the tfjs wasm backend, registered once per process when the wasm backend initialises
 * (../shared/notes/wasm-kernels.md has the measurements behind each one):
 *
 * - `BatchMatMul` / `_FusedMatMul`: the stock kernel uses XNNPACK only without transpose flags and with batch
 *   1 (~32 GFLOP/s); every other form runs a scalar loop (~2.8 GFLOP/s) and the fused bias is wrong there.
 *   The override transposes physically, folds the batch into the rows when b is shared, or splits the batch
 *   into single matmuls, so every form takes the fast path.
 * - `Conv2DBackpropFilter` (missing on wasm): im2col on the heap plus one fast matmul per chunk of rows;
 *   `Conv2DBackpropInput` (stock: a direct loop, 6–10× slower than the forward): one fast matmul plus col2im.
 * - `UnsortedSegmentSum` (missing on wasm; the gather / embedding gradient): a direct loop on the heap.
 * - `Slice`: the stock kernel copies the whole input out of the heap on every call; core's copies the slice.
 * - `Conv3D`, `Conv3DBackpropInputV2`, `Conv3DBackpropFilterV2` (registered but naive, ~0.5 GFLOP/s): the
 *   3-D convolution as a sum over its temporal taps of 2-D convolutions on stacked frames.
 *
 * Every kernel works on TensorInfos and calls the stock kernels captured before the overrides, so a kernel
 * never re-enters itself and nothing touches the engine's refcounts of the caller's tensors.
 */
import * as tf from '@tensorflow/tfjs';
import {
  addInto,
  alloc,
  copyOut,
  heapF32,
  heapI32,
  release,
  reshapeInfo,
  runWasm,
  sizeOf,
  stockWasmKernels,
  wordOffset,
  type KernelArgs,
  type KernelFn,
  type WasmBackend,
} from './wasm-util.js';

/** Kernel names core registers or replaces on the wasm backend. */
export const WASM_KERNEL_FIXES = [
  'BatchMatMul',
  '_FusedMatMul',
  'Conv2DBackpropFilter',
  'Conv2DBackpropInput',
  'UnsortedSegmentSum',
  'Slice',
  'Conv3D',
  'Conv3DBackpropInputV2',
  'Conv3DBackpropFilterV2',
  'Identity',
] as const;
export type WasmKernelFix = (typeof WASM_KERNEL_FIXES)[number];

// ---------------------------------------------------------------------------------------------------------
// matmul

const ACTIVATION_KERNELS: Record<string, string | null> = {
  linear: null,
  relu: 'Relu',
  relu6: 'Relu6',
  elu: 'Elu',
  sigmoid: 'Sigmoid',
  leakyrelu: 'LeakyRelu',
  prelu: 'Prelu',
};

/**
 * a·b on the wasm fast path. `a` is `[...outerA, M, K]` (or `[..., K, M]` with transposeA), `b` likewise;
 * outer dims broadcast. `fused` (bias [N], prelu weights of size 1 or N, activation) is passed to the
 * stock fast kernel; the caller applies anything else.
 */
function fastMatMul(
  backend: WasmBackend,
  a: tf.TensorInfo,
  b: tf.TensorInfo,
  transposeA: boolean,
  transposeB: boolean,
  fused?: { bias?: tf.TensorInfo; prelu?: tf.TensorInfo; activation: string; leakyreluAlpha?: number },
): tf.TensorInfo {
  const ra = a.shape.length;
  const rb = b.shape.length;
  const M = transposeA ? a.shape[ra - 1]! : a.shape[ra - 2]!;
  const K = transposeA ? a.shape[ra - 2]! : a.shape[ra - 1]!;
  const Kb = transposeB ? b.shape[rb - 1]! : b.shape[rb - 2]!;
  const N = transposeB ? b.shape[rb - 2]! : b.shape[rb - 1]!;
  if (K !== Kb) {
    throw new Error(
      `Error in matMul: inner shapes (${K}) and (${Kb}) of Tensors with shapes ${a.shape} and ${b.shape} and transposeA=${transposeA} and transposeB=${transposeB} must match.`,
    );
  }
  const outerA = a.shape.slice(0, -2);
  const outerB = b.shape.slice(0, -2);
  const outer = tf.backend_util.assertAndGetBroadcastShape(outerA, outerB);
  const Ba = sizeOf(outerA);
  const Bb = sizeOf(outerB);
  const Bo = sizeOf(outer);
  const outShape = [...outer, M, N];
  if (M === 0 || N === 0 || Bo === 0) return alloc(backend, outShape);
  if (K === 0) return alloc(backend, outShape, 'float32', true); // an empty contraction (fused: handled by the caller)
  // Physically [Ba, M, K] and [Bb, K, N].
  const a3 = transposeA ? transposeLast2(backend, a, Ba, K, M) : reshapeInfo(backend, a, [Ba, M, K]);
  const b3 = transposeB ? transposeLast2(backend, b, Bb, N, K) : reshapeInfo(backend, b, [Bb, K, N]);
  const call = (x: tf.TensorInfo, w: tf.TensorInfo) =>
    fused
      ? runWasm(
          backend,
          '_FusedMatMul',
          { a: x, b: w, bias: fused.bias, preluActivationWeights: fused.prelu },
          { transposeA: false, transposeB: false, activation: fused.activation, leakyreluAlpha: fused.leakyreluAlpha },
        )
      : runWasm(backend, 'BatchMatMul', { a: x, b: w }, { transposeA: false, transposeB: false });
  try {
    if (Bb === 1) {
      // b is shared: fold every batch of a into the rows of one matmul.
      const a2 = reshapeInfo(backend, a3, [1, Ba * M, K]);
      const r = call(a2, b3);
      release(backend, a2);
      return { dataId: r.dataId, shape: outShape, dtype: r.dtype };
    }
    // Split the batch; the output batch index maps to (ia, ib) by broadcasting.
    const out = alloc(backend, outShape);
    const rank = outer.length;
    const padA = [...new Array(rank - outerA.length).fill(1), ...outerA];
    const padB = [...new Array(rank - outerB.length).fill(1), ...outerB];
    const idx = new Array(rank).fill(0);
    let aShared: tf.TensorInfo | undefined = Ba === 1 ? reshapeInfo(backend, a3, [1, M, K]) : undefined;
    try {
      for (let o = 0; o < Bo; o++) {
        let ia = 0;
        let ib = 0;
        for (let d = 0; d < rank; d++) {
          ia = ia * padA[d]! + (padA[d] === 1 ? 0 : idx[d]!);
          ib = ib * padB[d]! + (padB[d] === 1 ? 0 : idx[d]!);
        }
        const ai = aShared ?? copyOut(backend, a3, ia * M * K, M * K, [1, M, K]);
        // XNNPACK caches its packed weights per b tensor id: a fresh b per call keeps that cache correct.
        const bi = copyOut(backend, b3, ib * K * N, K * N, [1, K, N]);
        const r = call(ai, bi);
        heapF32(backend).copyWithin(wordOffset(backend, out) + o * M * N, wordOffset(backend, r), wordOffset(backend, r) + M * N);
        release(backend, r, bi);
        if (!aShared) release(backend, ai);
        for (let d = rank - 1; d >= 0; d--) {
          if (++idx[d] < outer[d]!) break;
          idx[d] = 0;
        }
      }
    } finally {
      release(backend, aShared);
      aShared = undefined;
    }
    return out;
  } finally {
    release(backend, a3, b3);
  }
}

/** `[B, R, C]` (any shape of that size) → a new `[B, C, R]`. */
function transposeLast2(backend: WasmBackend, x: tf.TensorInfo, B: number, R: number, C: number): tf.TensorInfo {
  const v = reshapeInfo(backend, x, [B, R, C]);
  try {
    return runWasm(backend, 'Transpose', { x: v }, { perm: [0, 2, 1] });
  } finally {
    release(backend, v);
  }
}

function batchMatMulKernel(args: KernelArgs): tf.TensorInfo {
  const backend = args.backend as WasmBackend;
  const { a, b } = args.inputs as { a: tf.TensorInfo; b: tf.TensorInfo };
  const attrs = args.attrs as { transposeA: boolean; transposeB: boolean };
  if (a.dtype !== 'float32' || b.dtype !== 'float32') {
    return (stockWasmKernels.get('BatchMatMul')!.kernelFunc as unknown as KernelFn)(args) as tf.TensorInfo;
  }
  return fastMatMul(backend, a, b, attrs.transposeA, attrs.transposeB);
}

function fusedMatMulKernel(args: KernelArgs): tf.TensorInfo {
  const backend = args.backend as WasmBackend;
  const { a, b, bias, preluActivationWeights: prelu } = args.inputs as Record<string, tf.TensorInfo | undefined>;
  const attrs = args.attrs as { transposeA: boolean; transposeB: boolean; activation: string; leakyreluAlpha?: number };
  if (a!.dtype !== 'float32' || b!.dtype !== 'float32') {
    return (stockWasmKernels.get('_FusedMatMul')!.kernelFunc as unknown as KernelFn)(args) as tf.TensorInfo;
  }
  const activation = attrs.activation ?? 'linear';
  if (!(activation in ACTIVATION_KERNELS)) {
    throw new Error(`_FusedMatMul: activation '${activation}' is not supported on the wasm backend; expected one of ${Object.keys(ACTIVATION_KERNELS).join(', ')}`);
  }
  const rb = b!.shape.length;
  const N = attrs.transposeB ? b!.shape[rb - 2]! : b!.shape[rb - 1]!;
  const K = attrs.transposeB ? b!.shape[rb - 1]! : b!.shape[rb - 2]!;
  if (K === 0) return (stockWasmKernels.get('_FusedMatMul')!.kernelFunc as unknown as KernelFn)(args) as tf.TensorInfo;
  const biasOk = !bias || (bias.shape.length === 1 && bias.shape[0] === N);
  const preluOk = !prelu || sizeOf(prelu.shape) === 1 || (sizeOf(prelu.shape) === N && prelu.shape[prelu.shape.length - 1] === N);
  if (biasOk && preluOk) {
    return fastMatMul(backend, a!, b!, attrs.transposeA, attrs.transposeB, { bias, prelu, activation, leakyreluAlpha: attrs.leakyreluAlpha });
  }
  // Broadcast bias / prelu weights the fused stock kernel cannot take: product, then the separate kernels.
  let y = fastMatMul(backend, a!, b!, attrs.transposeA, attrs.transposeB);
  if (bias) {
    const z = runWasm(backend, 'Add', { a: y, b: bias });
    release(backend, y);
    y = z;
  }
  const k = ACTIVATION_KERNELS[activation];
  if (k) {
    const z =
      k === 'Prelu'
        ? runWasm(backend, 'Prelu', { x: y, alpha: prelu })
        : k === 'LeakyRelu'
          ? runWasm(backend, 'LeakyRelu', { x: y }, { alpha: attrs.leakyreluAlpha ?? 0.2 })
          : runWasm(backend, k, { x: y });
    release(backend, y);
    y = z;
  }
  return y;
}

// ---------------------------------------------------------------------------------------------------------
// Conv2DBackpropFilter

/** Words of im2col patches built per chunk (32 MiB). */
const IM2COL_CHUNK_WORDS = 8 * 2 ** 20;

interface Conv2DGeom {
  N: number;
  H: number;
  W: number;
  Cin: number;
  OH: number;
  OW: number;
  Cout: number;
  FH: number;
  FW: number;
  sh: number;
  sw: number;
  top: number;
  left: number;
}

/**
 * dW `[FH, FW, Cin, Cout]` = Σ over output positions of patch(x)ᵀ·dy, with x `[N,H,W,Cin]` and dy
 * `[N,OH,OW,Cout]` (NHWC, dilation 1). Builds im2col rows in chunks and runs one fast matmul per chunk.
 */
function conv2dFilterGrad(backend: WasmBackend, x: tf.TensorInfo, dy: tf.TensorInfo, g: Conv2DGeom): tf.TensorInfo {
  const { N, H, W, Cin, OH, OW, Cout, FH, FW, sh, sw, top, left } = g;
  const Kc = FH * FW * Cin;
  const rows = N * OH * OW;
  if (rows === 0 || Kc === 0 || Cout === 0) return alloc(backend, [FH, FW, Cin, Cout], 'float32', true);
  const chunk = Math.max(1, Math.min(rows, Math.floor(IM2COL_CHUNK_WORDS / Kc)));
  let acc: tf.TensorInfo | undefined;
  for (let r0 = 0; r0 < rows; r0 += chunk) {
    const rc = Math.min(chunk, rows - r0);
    const p = alloc(backend, [rc, Kc], 'float32', true);
    const heap = heapF32(backend);
    const po = wordOffset(backend, p);
    const xo = wordOffset(backend, x);
    for (let r = 0; r < rc; r++) {
      const row = r0 + r;
      const ow = row % OW;
      const oh = Math.floor(row / OW) % OH;
      const n = Math.floor(row / (OW * OH));
      const iw0 = ow * sw - left;
      const kw0 = Math.max(0, -iw0);
      const kw1 = Math.min(FW, W - iw0);
      if (kw1 <= kw0) continue;
      for (let kh = 0; kh < FH; kh++) {
        const ih = oh * sh - top + kh;
        if (ih < 0 || ih >= H) continue;
        const src = xo + ((n * H + ih) * W + iw0 + kw0) * Cin;
        heap.copyWithin(po + r * Kc + (kh * FW + kw0) * Cin, src, src + (kw1 - kw0) * Cin);
      }
    }
    const pt = runWasm(backend, 'Transpose', { x: p }, { perm: [1, 0] });
    release(backend, p);
    const dyc = rc === rows ? reshapeInfo(backend, dy, [rc, Cout]) : copyOut(backend, dy, r0 * Cout, rc * Cout, [rc, Cout]);
    const pt3 = reshapeInfo(backend, pt, [1, Kc, rc]);
    const dy3 = reshapeInfo(backend, dyc, [1, rc, Cout]);
    const part = runWasm(backend, 'BatchMatMul', { a: pt3, b: dy3 }, { transposeA: false, transposeB: false });
    release(backend, pt, pt3, dyc, dy3);
    if (!acc) acc = part;
    else {
      addInto(backend, acc, 0, part, 0, Kc * Cout);
      release(backend, part);
    }
  }
  return { dataId: acc!.dataId, shape: [FH, FW, Cin, Cout], dtype: 'float32' };
}

function conv2dBackpropFilterKernel(args: KernelArgs): tf.TensorInfo {
  const backend = args.backend as WasmBackend;
  const { x, dy } = args.inputs as { x: tf.TensorInfo; dy: tf.TensorInfo };
  const { strides, pad, dataFormat, dimRoundingMode, filterShape } = args.attrs as {
    strides: number | [number, number];
    pad: 'valid' | 'same' | number | tf.backend_util.ExplicitPadding;
    dataFormat: 'NHWC' | 'NCHW';
    dimRoundingMode?: 'floor' | 'round' | 'ceil';
    filterShape: [number, number, number, number];
  };
  if (dataFormat === 'NCHW') throw new Error('Conv2DBackpropFilter on wasm: dataFormat NCHW is not supported; use NHWC');
  if (x.dtype !== 'float32' || dy.dtype !== 'float32') throw new Error(`Conv2DBackpropFilter on wasm: expected float32 x and dy, got ${x.dtype} and ${dy.dtype}`);
  const c = tf.backend_util.computeConv2DInfo(x.shape as [number, number, number, number], filterShape, strides, 1, pad, dimRoundingMode, false, 'channelsLast');
  if (dy.shape[1] !== c.outHeight || dy.shape[2] !== c.outWidth || dy.shape[3] !== c.outChannels) {
    throw new Error(`Conv2DBackpropFilter: dy has shape [${dy.shape}], expected [${c.batchSize},${c.outHeight},${c.outWidth},${c.outChannels}] for x [${x.shape}] and filter [${filterShape}]`);
  }
  return conv2dFilterGrad(backend, x, dy, {
    N: c.batchSize, H: c.inHeight, W: c.inWidth, Cin: c.inChannels, OH: c.outHeight, OW: c.outWidth, Cout: c.outChannels,
    FH: c.filterHeight, FW: c.filterWidth, sh: c.strideHeight, sw: c.strideWidth, top: c.padInfo.top, left: c.padInfo.left,
  });
}

/**
 * dx `[N,H,W,Cin]` of a conv2d (NHWC, dilation 1): columns = dy·Wᵀ (one fast matmul per chunk of output
 * positions, W as `[FH·FW·Cin, Cout]`), then col2im adds each column back at its input position. The stock
 * wasm kernel runs a direct loop several times slower than the forward conv.
 */
function conv2dInputGrad(backend: WasmBackend, dy: tf.TensorInfo, filter: tf.TensorInfo, g: Conv2DGeom): tf.TensorInfo {
  const { N, H, W, Cin, OH, OW, Cout, FH, FW, sh, sw, top, left } = g;
  const Kc = FH * FW * Cin;
  const rows = N * OH * OW;
  const dx = alloc(backend, [N, H, W, Cin], 'float32', true);
  if (rows === 0 || Kc === 0 || Cout === 0) return dx;
  const wt = transposeLast2(backend, filter, 1, Kc, Cout); // [1, Cout, Kc]
  const chunk = Math.max(1, Math.min(rows, Math.floor(IM2COL_CHUNK_WORDS / Kc)));
  try {
    for (let r0 = 0; r0 < rows; r0 += chunk) {
      const rc = Math.min(chunk, rows - r0);
      const dyc = rc === rows ? reshapeInfo(backend, dy, [1, rc, Cout]) : copyOut(backend, dy, r0 * Cout, rc * Cout, [1, rc, Cout]);
      const cols = runWasm(backend, 'BatchMatMul', { a: dyc, b: wt }, { transposeA: false, transposeB: false }); // [1, rc, Kc]
      release(backend, dyc);
      const heap = heapF32(backend);
      const co = wordOffset(backend, cols);
      const xo = wordOffset(backend, dx);
      for (let r = 0; r < rc; r++) {
        const row = r0 + r;
        const ow = row % OW;
        const oh = Math.floor(row / OW) % OH;
        const n = Math.floor(row / (OW * OH));
        const iw0 = ow * sw - left;
        const kw0 = Math.max(0, -iw0);
        const kw1 = Math.min(FW, W - iw0);
        if (kw1 <= kw0) continue;
        const len = (kw1 - kw0) * Cin;
        for (let kh = 0; kh < FH; kh++) {
          const ih = oh * sh - top + kh;
          if (ih < 0 || ih >= H) continue;
          const d = xo + ((n * H + ih) * W + iw0 + kw0) * Cin;
          const src = co + r * Kc + (kh * FW + kw0) * Cin;
          for (let j = 0; j < len; j++) heap[d + j] += heap[src + j]!;
        }
      }
      release(backend, cols);
    }
  } finally {
    release(backend, wt);
  }
  return dx;
}

function conv2dBackpropInputKernel(args: KernelArgs): tf.TensorInfo {
  const backend = args.backend as WasmBackend;
  const { dy, filter } = args.inputs as { dy: tf.TensorInfo; filter: tf.TensorInfo };
  const { strides, pad, dataFormat, dimRoundingMode, inputShape } = args.attrs as {
    strides: number | [number, number];
    pad: 'valid' | 'same' | number | tf.backend_util.ExplicitPadding;
    dataFormat: 'NHWC' | 'NCHW';
    dimRoundingMode?: 'floor' | 'round' | 'ceil';
    inputShape: [number, number, number, number];
  };
  if (dataFormat === 'NCHW' || dy.dtype !== 'float32' || filter.dtype !== 'float32') {
    return (stockWasmKernels.get('Conv2DBackpropInput')!.kernelFunc as unknown as KernelFn)(args) as tf.TensorInfo;
  }
  const c = tf.backend_util.computeConv2DInfo(inputShape, filter.shape as [number, number, number, number], strides, 1, pad, dimRoundingMode, false, 'channelsLast');
  if (dy.shape[1] !== c.outHeight || dy.shape[2] !== c.outWidth || dy.shape[3] !== c.outChannels) {
    throw new Error(`Conv2DBackpropInput: dy has shape [${dy.shape}], expected [${c.batchSize},${c.outHeight},${c.outWidth},${c.outChannels}] for input [${inputShape}] and filter [${filter.shape}]`);
  }
  return conv2dInputGrad(backend, dy, filter, {
    N: c.batchSize, H: c.inHeight, W: c.inWidth, Cin: c.inChannels, OH: c.outHeight, OW: c.outWidth, Cout: c.outChannels,
    FH: c.filterHeight, FW: c.filterWidth, sh: c.strideHeight, sw: c.strideWidth, top: c.padInfo.top, left: c.padInfo.left,
  });
}

// ---------------------------------------------------------------------------------------------------------
// UnsortedSegmentSum

function unsortedSegmentSumKernel(args: KernelArgs): tf.TensorInfo {
  const backend = args.backend as WasmBackend;
  const { x, segmentIds } = args.inputs as { x: tf.TensorInfo; segmentIds: tf.TensorInfo };
  const { numSegments } = args.attrs as { numSegments: number };
  if (x.dtype !== 'float32' && x.dtype !== 'int32') throw new Error(`UnsortedSegmentSum on wasm: x must be float32 or int32, got ${x.dtype}`);
  const nIds = sizeOf(segmentIds.shape);
  const lead = x.shape.slice(0, segmentIds.shape.length);
  if (lead.join(',') !== segmentIds.shape.join(',')) {
    throw new Error(`UnsortedSegmentSum: segmentIds shape [${segmentIds.shape}] must equal the leading dims of x [${x.shape}]`);
  }
  const inner = sizeOf(x.shape.slice(segmentIds.shape.length));
  const outShape = [numSegments, ...x.shape.slice(segmentIds.shape.length)];
  const out = alloc(backend, outShape, x.dtype, true);
  const oo = wordOffset(backend, out);
  const xo = wordOffset(backend, x);
  const io = wordOffset(backend, segmentIds);
  const ids = heapI32(backend);
  const data = x.dtype === 'float32' ? heapF32(backend) : heapI32(backend);
  for (let i = 0; i < nIds; i++) {
    const s = ids[io + i]!;
    if (s < 0 || s >= numSegments) continue; // TF drops negative ids; out-of-range ids contribute nothing
    const d = oo + s * inner;
    const src = xo + i * inner;
    for (let j = 0; j < inner; j++) data[d + j] += data[src + j]!;
  }
  return out;
}

// ---------------------------------------------------------------------------------------------------------
// Slice

/**
 * Slice copying only the selected runs on the heap. The stock wasm kernel first copies the WHOLE input out
 * of the heap (`readSync`) on every call: one row of a 100M-element tensor took 250 ms.
 */
function sliceKernel(args: KernelArgs): tf.TensorInfo {
  const backend = args.backend as WasmBackend;
  const { x } = args.inputs as { x: tf.TensorInfo };
  const { begin, size } = args.attrs as { begin: number | number[]; size: number | number[] };
  if (x.dtype !== 'float32' && x.dtype !== 'int32' && x.dtype !== 'bool') {
    return (stockWasmKernels.get('Slice')!.kernelFunc as unknown as KernelFn)(args) as tf.TensorInfo;
  }
  const [b, s] = tf.slice_util.parseSliceParams(x as unknown as tf.Tensor, begin, size);
  const out = backend.makeOutput(s, x.dtype as 'float32');
  const total = sizeOf(s);
  if (total === 0) return out;
  // Views after the allocation (it may have grown the heap).
  const xv = backend.typedArrayFromHeap(x);
  const ov = backend.typedArrayFromHeap(out);
  const shape = x.shape;
  const rank = shape.length;
  const strides = new Array<number>(rank).fill(1);
  for (let d = rank - 2; d >= 0; d--) strides[d] = strides[d + 1]! * shape[d + 1]!;
  // Innermost contiguous run: trailing dims taken whole, plus the first partial one.
  let d = rank - 1;
  let run = 1;
  while (d >= 0 && s[d] === shape[d]) run *= s[d--]!;
  if (d >= 0) run *= s[d]!;
  let base = 0;
  for (let k = 0; k < rank; k++) base += b[k]! * strides[k]!;
  const outer = d > 0 ? d : 0; // dims 0..outer-1 are iterated
  const idx = new Array<number>(outer).fill(0);
  for (let o = 0; o < total; o += run) {
    let off = base;
    for (let k = 0; k < outer; k++) off += idx[k]! * strides[k]!;
    ov.set(xv.subarray(off, off + run), o);
    for (let k = outer - 1; k >= 0; k--) {
      if (++idx[k]! < s[k]!) break;
      idx[k] = 0;
    }
  }
  return out;
}

// ---------------------------------------------------------------------------------------------------------
// Conv3D as 2-D convolutions over the temporal taps

interface Conv3DGeom {
  N: number; D: number; H: number; W: number; Cin: number;
  OD: number; OH: number; OW: number; Cout: number;
  FD: number; FH: number; FW: number;
  sd: number; sh: number; sw: number;
  front: number; top: number; bottom: number; left: number; right: number;
}

function conv3dGeom(xShape: number[], filterShape: number[], strides: number | number[], pad: 'valid' | 'same'): Conv3DGeom {
  const c = tf.backend_util.computeConv3DInfo(xShape as [number, number, number, number, number], filterShape as [number, number, number, number, number], strides as [number, number, number], 1, pad);
  return {
    N: c.batchSize, D: c.inDepth, H: c.inHeight, W: c.inWidth, Cin: c.inChannels,
    OD: c.outDepth, OH: c.outHeight, OW: c.outWidth, Cout: c.outChannels,
    FD: c.filterDepth, FH: c.filterHeight, FW: c.filterWidth,
    sd: c.strideDepth, sh: c.strideHeight, sw: c.strideWidth,
    front: c.padInfo.front, top: c.padInfo.top, bottom: c.padInfo.bottom, left: c.padInfo.left, right: c.padInfo.right,
  };
}

/** (n, od, d) triples that temporal tap `kt` connects: input frame d = od·sd − front + kt. */
function tapPairs(g: Conv3DGeom, kt: number): Array<[number, number, number]> {
  const out: Array<[number, number, number]> = [];
  for (let n = 0; n < g.N; n++)
    for (let od = 0; od < g.OD; od++) {
      const d = od * g.sd - g.front + kt;
      if (d >= 0 && d < g.D) out.push([n, od, d]);
    }
  return out;
}

/** Stack frames `(n, f)` of a `[N, F, ...frame]` tensor into `[count, ...frame]`. */
function gatherFrames(backend: WasmBackend, t: tf.TensorInfo, frames: Array<[number, number]>, F: number, frameShape: number[]): tf.TensorInfo {
  const fs = sizeOf(frameShape);
  const out = alloc(backend, [frames.length, ...frameShape]);
  const heap = heapF32(backend);
  const to = wordOffset(backend, t);
  const oo = wordOffset(backend, out);
  frames.forEach(([n, f], i) => heap.copyWithin(oo + i * fs, to + (n * F + f) * fs, to + (n * F + f + 1) * fs));
  return out;
}

function filterTap(backend: WasmBackend, filter: tf.TensorInfo, g: Conv3DGeom, kt: number): tf.TensorInfo {
  const size = g.FH * g.FW * g.Cin * g.Cout;
  return copyOut(backend, filter, kt * size, size, [g.FH, g.FW, g.Cin, g.Cout]);
}

function pad2d(g: Conv3DGeom): tf.backend_util.ExplicitPadding {
  return [[0, 0], [g.top, g.bottom], [g.left, g.right], [0, 0]];
}

function conv3dKernel(args: KernelArgs): tf.TensorInfo {
  const backend = args.backend as WasmBackend;
  const { x, filter } = args.inputs as { x: tf.TensorInfo; filter: tf.TensorInfo };
  const { strides, pad, dilations, dataFormat } = args.attrs as { strides: number[]; pad: 'valid' | 'same'; dilations: number | number[]; dataFormat?: string };
  const dil = typeof dilations === 'number' ? [dilations] : dilations ?? [1];
  if (x.dtype !== 'float32' || dil.some((d) => d !== 1) || (dataFormat && dataFormat !== 'NDHWC')) {
    return (stockWasmKernels.get('Conv3D')!.kernelFunc as unknown as KernelFn)(args) as tf.TensorInfo;
  }
  const g = conv3dGeom(x.shape, filter.shape, strides, pad);
  const outFrame = g.OH * g.OW * g.Cout;
  const out = alloc(backend, [g.N, g.OD, g.OH, g.OW, g.Cout], 'float32', true);
  for (let kt = 0; kt < g.FD; kt++) {
    const pairs = tapPairs(g, kt);
    if (!pairs.length) continue;
    const xs = gatherFrames(backend, x, pairs.map(([n, , d]) => [n, d]), g.D, [g.H, g.W, g.Cin]);
    const w = filterTap(backend, filter, g, kt);
    const y = runWasm(backend, 'Conv2D', { x: xs, filter: w }, { strides: [g.sh, g.sw], pad: pad2d(g), dataFormat: 'NHWC', dilations: [1, 1] });
    release(backend, xs, w);
    pairs.forEach(([n, od], i) => addInto(backend, out, (n * g.OD + od) * outFrame, y, i * outFrame, outFrame));
    release(backend, y);
  }
  return out;
}

function conv3dBackpropInputKernel(args: KernelArgs): tf.TensorInfo {
  const backend = args.backend as WasmBackend;
  const { dy, filter } = args.inputs as { dy: tf.TensorInfo; filter: tf.TensorInfo };
  const { strides, pad, inputShape } = args.attrs as { strides: number[]; pad: 'valid' | 'same'; inputShape: number[] };
  const g = conv3dGeom(inputShape, filter.shape, strides, pad);
  const inFrame = g.H * g.W * g.Cin;
  const dx = alloc(backend, [g.N, g.D, g.H, g.W, g.Cin], 'float32', true);
  for (let kt = 0; kt < g.FD; kt++) {
    const pairs = tapPairs(g, kt);
    if (!pairs.length) continue;
    const dys = gatherFrames(backend, dy, pairs.map(([n, od]) => [n, od]), g.OD, [g.OH, g.OW, g.Cout]);
    const w = filterTap(backend, filter, g, kt);
    const part = conv2dInputGrad(backend, dys, w, {
      N: pairs.length, H: g.H, W: g.W, Cin: g.Cin, OH: g.OH, OW: g.OW, Cout: g.Cout, FH: g.FH, FW: g.FW, sh: g.sh, sw: g.sw, top: g.top, left: g.left,
    });
    release(backend, dys, w);
    pairs.forEach(([n, , d], i) => addInto(backend, dx, (n * g.D + d) * inFrame, part, i * inFrame, inFrame));
    release(backend, part);
  }
  return dx;
}

function conv3dBackpropFilterKernel(args: KernelArgs): tf.TensorInfo {
  const backend = args.backend as WasmBackend;
  const { x, dy } = args.inputs as { x: tf.TensorInfo; dy: tf.TensorInfo };
  const { strides, pad, filterShape } = args.attrs as { strides: number[]; pad: 'valid' | 'same'; filterShape: number[] };
  const g = conv3dGeom(x.shape, filterShape, strides, pad);
  const tapSize = g.FH * g.FW * g.Cin * g.Cout;
  const dw = alloc(backend, [g.FD, g.FH, g.FW, g.Cin, g.Cout], 'float32', true);
  for (let kt = 0; kt < g.FD; kt++) {
    const pairs = tapPairs(g, kt);
    if (!pairs.length) continue;
    const xs = gatherFrames(backend, x, pairs.map(([n, , d]) => [n, d]), g.D, [g.H, g.W, g.Cin]);
    const dys = gatherFrames(backend, dy, pairs.map(([n, od]) => [n, od]), g.OD, [g.OH, g.OW, g.Cout]);
    const part = conv2dFilterGrad(backend, xs, dys, {
      N: pairs.length, H: g.H, W: g.W, Cin: g.Cin, OH: g.OH, OW: g.OW, Cout: g.Cout, FH: g.FH, FW: g.FW, sh: g.sh, sw: g.sw, top: g.top, left: g.left,
    });
    release(backend, xs, dys);
    addInto(backend, dw, kt * tapSize, part, 0, tapSize);
    release(backend, part);
  }
  return dw;
}

// ---------------------------------------------------------------------------------------------------------
// registration

/**
 * Identity sharing the input's buffer (a reference count), as the cpu and tfjs-node kernels do. The engine
 * runs Identity to clone every tensor a gradient saves for the backward; the stock wasm kernel copies it,
 * so under a gradient tape each saved activation and each weight a matMul uses was held (and copied) twice.
 */
function identityKernel(args: KernelArgs): tf.TensorInfo {
  const x = args.inputs.x as tf.TensorInfo;
  if (x.dtype === 'string') return (stockWasmKernels.get('Identity')!.kernelFunc as unknown as KernelFn)(args) as tf.TensorInfo;
  (args.backend as { incRef(dataId: object): void }).incRef(x.dataId);
  return { dataId: x.dataId, shape: x.shape, dtype: x.dtype };
}

const KERNELS: Record<WasmKernelFix, KernelFn> = {
  BatchMatMul: batchMatMulKernel as KernelFn,
  _FusedMatMul: fusedMatMulKernel as KernelFn,
  Conv2DBackpropFilter: conv2dBackpropFilterKernel as KernelFn,
  Conv2DBackpropInput: conv2dBackpropInputKernel as KernelFn,
  UnsortedSegmentSum: unsortedSegmentSumKernel as KernelFn,
  Slice: sliceKernel as KernelFn,
  Conv3D: conv3dKernel as KernelFn,
  Conv3DBackpropInputV2: conv3dBackpropInputKernel as KernelFn,
  Conv3DBackpropFilterV2: conv3dBackpropFilterKernel as KernelFn,
  Identity: identityKernel as KernelFn,
};

let installed = false;

/**
 * Register core's wasm kernels (idempotent; called by initBackend when the wasm backend comes up). The stock
 * kernels are kept: `withStockWasmKernels` runs code on them, for comparisons and benchmarks.
 */
export function installWasmKernels(): void {
  if (installed) return;
  for (const name of WASM_KERNEL_FIXES) {
    const stock = tf.getKernel(name, 'wasm');
    if (stock) {
      stockWasmKernels.set(name, stock);
      tf.unregisterKernel(name, 'wasm');
    }
    tf.registerKernel({ kernelName: name, backendName: 'wasm', kernelFunc: KERNELS[name] as unknown as tf.KernelFunc, setupFunc: stock?.setupFunc });
  }
  installed = true;
}

export function wasmKernelsInstalled(): boolean {
  return installed;
}

/**
 * Run `fn` with the stock tfjs wasm kernels in place of core's (kernels wasm lacks stay core's, since
 * there is no stock one). For tests and benchmarks.
 */
export async function withStockWasmKernels<T>(fn: () => T | Promise<T>): Promise<T> {
  if (!installed) return fn();
  const swapped: string[] = [];
  for (const [name, stock] of stockWasmKernels) {
    tf.unregisterKernel(name, 'wasm');
    tf.registerKernel(stock);
    swapped.push(name);
  }
  try {
    return await fn();
  } finally {
    for (const name of swapped) {
      tf.unregisterKernel(name, 'wasm');
      tf.registerKernel({ kernelName: name, backendName: 'wasm', kernelFunc: KERNELS[name as WasmKernelFix] as unknown as tf.KernelFunc, setupFunc: stockWasmKernels.get(name)?.setupFunc });
    }
  }
}

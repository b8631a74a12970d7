/**
 * Fixes for the native `tensorflow` backend (tfjs-node built against TensorFlow 2.21): `Round` on int32
 * returns zeros there (the one tfjs-core spec that fails on it, ../shared/notes/tfjs-node-offline.md);
 * rounding an integer is the identity, so int32 inputs get a copy and floats keep the stock kernel.
 *
 * Per-op overhead (issue 15; VREPA_TF_CAST_FIX=0, read at every call, runs the stock kernels): tfjs-node's `Cast` runs a
 * TensorFlow Cast even when the dtype does not change (tfjs-core's Multiply gradient casts its float32
 * operand to float32 on every call), and its `Mean` casts every input to float32 first (a second op). A
 * same-dtype cast is the identity (a copy of the values, bit for bit), so it shares the input's data as
 * the Identity kernel does, and a float32 Mean runs TensorFlow's Mean directly: the same values, one
 * TensorFlow op (and tfjs kernel) fewer each.
 *
 * GatherV2 (VREPA_TF_GATHER_FIX=0 runs the stock kernel): tfjs-node reads the indices back into JS to check
 * their bounds; TensorFlow's op checks them itself, so core's kernel leaves the check to it (no sync, and a
 * gather can be recorded into a graph function).
 *
 * Reshape (VREPA_TF_RESHAPE_VIEW=0, read at every call, runs the stock kernel): with core's binding patch 31
 * (`binding.reshapeTensor`), a reshape is a new handle sharing the input's buffer, made in one binding call,
 * instead of an eager Reshape op plus an int32 shape tensor made from JS values and deleted again.
 */
import * as tf from '@tensorflow/tfjs';

let installed = false;

interface NodeBackend {
  binding: { reshapeTensor?(id: number, shape: number[]): number };
  getDTypeInteger(dtype: tf.DataType): number;
  getInputTensorIds(tensors: tf.TensorInfo[]): number[];
  createOutputTensor(metadata: { id: number; shape: number[]; dtype: number }): tf.TensorInfo;
  incRef(dataId: unknown): void;
  executeSingleOutput(name: string, attrs: unknown[], inputs: tf.Tensor[]): tf.TensorInfo;
  createReductionOpAttrs(x: tf.TensorInfo, keepDims: boolean): unknown[];
}

export function installNativeKernelFixes(): void {
  if (installed) return;
  const round = tf.getKernel('Round', 'tensorflow');
  const identity = tf.getKernel('Identity', 'tensorflow');
  if (!round || !identity) return;
  tf.unregisterKernel('Round', 'tensorflow');
  tf.registerKernel({
    ...round,
    kernelFunc: (args) => (args.inputs.x!.dtype === 'int32' ? identity.kernelFunc(args) : round.kernelFunc(args)),
  });
  installed = true;
  // read at every call, so that a benchmark can compare both in one process
  const stock = () => typeof process !== 'undefined' && process.env?.VREPA_TF_CAST_FIX === '0';
  // each fix wraps the stock tensorflow kernel, which it calls whenever the fix does not apply
  const wrap = (name: string, fix: (stock: tf.KernelFunc, args: Parameters<tf.KernelFunc>[0]) => ReturnType<tf.KernelFunc>) => {
    const k = tf.getKernel(name, 'tensorflow');
    if (!k) return;
    tf.unregisterKernel(name, 'tensorflow');
    tf.registerKernel({ ...k, kernelFunc: (args) => fix(k.kernelFunc, args) });
  };
  wrap('Cast', (cast, args) => {
    const x = args.inputs.x as tf.TensorInfo;
    if (x.dtype !== (args.attrs as { dtype: tf.DataType }).dtype || stock()) return cast(args);
    (args.backend as unknown as NodeBackend).incRef(x.dataId);
    return { dataId: x.dataId, shape: x.shape, dtype: x.dtype };
  });
  const viewOff = () => typeof process !== 'undefined' && process.env?.VREPA_TF_RESHAPE_VIEW === '0';
  wrap('Reshape', (reshape, args) => {
    const backend = args.backend as unknown as NodeBackend;
    const x = args.inputs.x as tf.TensorInfo;
    if (typeof backend.binding?.reshapeTensor !== 'function' || (x.dtype !== 'float32' && x.dtype !== 'int32' && x.dtype !== 'bool') || viewOff()) return reshape(args);
    const shape = tf.util.inferFromImplicitShape([...(args.attrs as { shape: number[] }).shape], tf.util.sizeFromShape(x.shape));
    const id = backend.binding.reshapeTensor(backend.getInputTensorIds([x])[0]!, shape);
    return backend.createOutputTensor({ id, shape, dtype: backend.getDTypeInteger(x.dtype) });
  });
  // GatherV2: tfjs-node reads every index back into JavaScript to bounds-check it (a sync, and in a traced graph
  // function a read that cannot be recorded); TensorFlow's GatherV2 checks the bounds itself on the CPU and
  // raises "indices[i] = v is not in [0, n)". VREPA_TF_GATHER_FIX=0 (read per call) runs the stock kernel.
  const gatherOff = () => typeof process !== 'undefined' && process.env?.VREPA_TF_GATHER_FIX === '0';
  wrap('GatherV2', (gather, args) => {
    const backend = args.backend as unknown as NodeBackend & { binding: { TF_ATTR_INT: number } };
    const { x, indices } = args.inputs as { x: tf.TensorInfo; indices: tf.TensorInfo };
    if (gatherOff() || (backend as { isUsingGpuDevice?: boolean }).isUsingGpuDevice) return gather(args);
    const { axis, batchDims } = args.attrs as { axis: number; batchDims: number };
    tf.backend_util.segment_util.collectGatherOpShapeInfo(x as tf.Tensor, indices as tf.Tensor, axis, batchDims);
    const axisTensor = tf.scalar(axis, 'int32');
    const type = (name: string, dtype: tf.DataType) => ({ name, type: (backend.binding as unknown as { TF_ATTR_TYPE: number }).TF_ATTR_TYPE, value: backend.getDTypeInteger(dtype) });
    try {
      return backend.executeSingleOutput(
        'GatherV2',
        [{ name: 'batch_dims', type: backend.binding.TF_ATTR_INT, value: batchDims }, type('Tparams', x.dtype), type('Tindices', indices.dtype), type('Taxis', 'int32')],
        [x as tf.Tensor, indices as tf.Tensor, axisTensor],
      );
    } finally {
      axisTensor.dispose();
    }
  });
  wrap('Mean', (mean, args) => {
    const x = args.inputs.x as tf.TensorInfo;
    if (x.dtype !== 'float32' || stock()) return mean(args);
    const backend = args.backend as unknown as NodeBackend;
    const { axis, keepDims } = args.attrs as { axis: number | number[]; keepDims: boolean };
    const axes = tf.tensor1d(tf.util.parseAxisParam(axis, x.shape), 'int32');
    try {
      return backend.executeSingleOutput('Mean', backend.createReductionOpAttrs(x, keepDims), [x as tf.Tensor, axes]);
    } finally {
      axes.dispose();
    }
  });
}


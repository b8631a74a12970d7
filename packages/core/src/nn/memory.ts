/** What a gradient tape keeps alive for the backward, counted per buffer (not per tensor object). */
import * as tf from '@tensorflow/tfjs';

export interface SavedForBackward {
  /** bytes of the distinct buffers (data ids) saved by the active tape's ops */
  bytes: number;
  /** number of distinct buffers */
  buffers: number;
  /** bytes by the op (kernel or custom-op scope) that saved each buffer first */
  byOp: Record<string, number>;
}

interface TapeNode {
  kernelName: string;
  inputs: Record<string, tf.Tensor | undefined>;
  outputs: tf.Tensor[];
  saved?: tf.Tensor[];
}

/** ops whose output shares its input's buffer on every backend (tfjs-node gives it a new data id) */
const VIEW_OPS = new Set(['Reshape', 'ExpandDims', 'Squeeze']);

/**
 * Inside a function being differentiated (`tf.variableGrads`, `tf.grad`, …), after its forward: the
 * bytes the tape holds for the backward. Unlike `tf.memory().numBytes`, which adds the bytes of every
 * Tensor object (each saved clone and each tensor sharing a buffer counts again), this counts each
 * buffer once. `exclude`: tensors not to count (inputs, parameters: alive anyway). Outside a tape it
 * returns zeros. On tfjs-node a reshape's output is a new data id sharing TensorFlow's buffer: the
 * tape's Reshape / ExpandDims / Squeeze nodes are followed so such views count once (a view made
 * inside a custom op is not on the tape and would count again; core's ops save none).
 */
export function savedForBackward(exclude: tf.Tensor[] = []): SavedForBackward {
  const tape = (tf.engine() as unknown as { state: { activeTape: TapeNode[] | null } }).state.activeTape ?? [];
  const root = new Map<object, object>();
  const find = (id: object): object => {
    let r = id;
    while (root.has(r)) r = root.get(r)!;
    return r;
  };
  for (const node of tape) {
    const x = node.inputs.x;
    const y = node.outputs[0];
    if (VIEW_OPS.has(node.kernelName) && x && y && find(y.dataId) !== find(x.dataId)) root.set(find(y.dataId), find(x.dataId));
  }
  const seen = new Set<object>(exclude.map((t) => find(t.dataId)));
  const out: SavedForBackward = { bytes: 0, buffers: 0, byOp: {} };
  for (const node of tape)
    for (const t of node.saved ?? []) {
      const r = find(t.dataId);
      if (t.isDisposed || seen.has(r)) continue;
      seen.add(r);
      const b = t.size * (t.dtype === 'int32' || t.dtype === 'float32' ? 4 : 1);
      out.bytes += b;
      out.buffers++;
      out.byOp[node.kernelName] = (out.byOp[node.kernelName] ?? 0) + b;
    }
  return out;
}

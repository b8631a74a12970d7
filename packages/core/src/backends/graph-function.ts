/**
 * A function of tensors run as one TensorFlow graph (issue 15, fifth wave; binding patch 34,
 * `native-patches/34-graph-function.patch`).
 *
 * A small model's training step is ~800 eager ops, each paying tfjs' engine and tape, the backend's JS, N-API
 * and TensorFlow's eager dispatch (~25–40 µs all in) for a few µs of arithmetic. `traceGraph` runs a
 * function eagerly once while the binding records every op it runs (with the attributes TensorFlow inferred
 * for it); the record becomes a GraphDef, registered as a function of the eager context; `run` then executes
 * the whole function as one op (a PartitionedCall with Grappler off: the same kernels on the same inputs, so
 * the same values, without the per-op JavaScript).
 *
 * What a traced function may do: run ops on tensors it is given (its arguments), on tensors that existed
 * before the trace (read by id: "captured"; they must stay alive and unchanged while the graph is used), and
 * on tensors it makes from JS values (frozen as constants of the graph). It must not read values back into
 * JS (`dataSync`, `data`), call the optimizer, collectives or anything else outside the traced kernels — a
 * call to those raises a `GraphFunctionError` naming it. Values it makes from JS that differ between calls
 * (random draws, timestep tables) would be frozen wrongly: `compileFunction` therefore traces twice and runs
 * the graph only when both traces are identical (constants included), and otherwise stays eager with the
 * reason.
 */
import * as tf from '@tensorflow/tfjs';

/** What graphTraceEnd reports about a traced graph. */
export interface GraphTrace {
  /** FNV-1a of the whole GraphDef (ops, attributes, wiring, constants' values) */
  hash: string;
  /** nodes in the GraphDef: placeholders (arguments, then captured), constants, ops, output identities */
  nodes: number;
  /** the recorded ops' types, in order */
  ops: string[];
  /** a hash per GraphDef node, in the order above */
  nodeHashes: number[];
  /** ids of tensors older than the trace that the ops read and that were not arguments */
  captured: number[];
  /** constants (tensors made from JS values during the trace) */
  consts: number;
}

interface GraphBinding {
  TF_FLOAT: number;
  graphTraceBegin(): void;
  graphTraceEnd(name: string, args: Int32Array, outs: Int32Array): GraphTrace;
  graphTraceAbort(): void;
  graphRun(name: string, args: Int32Array, out: Int32Array, options?: number): number;
  graphRemove(name: string): void;
}

interface NodeBackend {
  binding: GraphBinding & Record<string, unknown>;
  getInputTensorIds(tensors: tf.TensorInfo[]): number[];
  createOutputTensor(metadata: { id: number; shape: number[]; dtype: number }): tf.Tensor;
}

/** A traced function cannot be run as a graph (what it did that a graph cannot hold). */
export class GraphFunctionError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'GraphFunctionError';
  }
}

// binding entry points a traced function may reach: the recorded fast paths and tensor bookkeeping
const ALLOWED = new Set(['executeOpIo', 'smallBinary', 'mulAdd', 'binaryInfo', 'reshapeTensor', 'createTensor', 'deleteTensor', 'getNumOfTensors', 'isUsingGpuDevice', 'setIoBuffer']);

function nodeBackend(): NodeBackend | undefined {
  if (tf.getBackend() !== 'tensorflow') return undefined;
  const b = tf.backend() as unknown as NodeBackend;
  return typeof b.binding?.graphTraceBegin === 'function' ? b : undefined;
}

/**
 * Whether graph functions run here (read per call): the `tensorflow` backend with binding patch 34, patch 32's
 * executeOpIo on (`VREPA_TF_FAST_EXEC` not '0': the stock executeOp is not recorded), and `VREPA_TF_GRAPH` not
 * '0'. With oneDNN off a graph run gives the eager ops' bits; with oneDNN on TensorFlow rewrites the graph's
 * ops to oneDNN kernels other than the ones the eager ops ran, so values differ from eager ones in rounding
 * (~1e-7 relative) — compileFunction takes every non-eager result from a graph for that reason.
 */
export function graphFunctionsAvailable(): boolean {
  const env = process.env.VREPA_TF_GRAPH;
  if (env !== undefined && env !== '' && env !== '0' && env !== '1') throw new Error(`VREPA_TF_GRAPH must be 0 or 1, got '${env}'`);
  return env !== '0' && process.env.VREPA_TF_FAST_EXEC !== '0' && nodeBackend() !== undefined;
}

let counter = 0;

/**
 * graphRun's options, read per call: `VREPA_TF_GRAPH_EXECUTOR=single` runs every kernel inline on the calling
 * thread in the recorded order (TensorFlow's SINGLE_THREADED_EXECUTOR; the default executor runs independent
 * ops on its inter-op threads); `VREPA_TF_GRAPH_GRAPPLER=1` lets TensorFlow's graph optimizer rewrite the
 * graph (fusions, folding: other kernels, other rounding; off by default, so a graph run gives the eager bits).
 */
export function graphRunOptions(): number {
  const ex = process.env.VREPA_TF_GRAPH_EXECUTOR;
  if (ex !== undefined && ex !== '' && ex !== 'single' && ex !== 'default') throw new Error(`VREPA_TF_GRAPH_EXECUTOR must be 'single' or 'default', got '${ex}'`);
  const gr = process.env.VREPA_TF_GRAPH_GRAPPLER;
  if (gr !== undefined && gr !== '' && gr !== '0' && gr !== '1') throw new Error(`VREPA_TF_GRAPH_GRAPPLER must be 0 or 1, got '${gr}'`);
  return (gr === '1' ? 1 : 0) | (ex === 'single' ? 2 : 0);
}

/** One traced graph, registered in TensorFlow's eager context until `dispose()`. */
export class GraphFunction {
  private disposed = false;
  private out = new Int32Array(64);
  constructor(
    readonly name: string,
    readonly numInputs: number,
    readonly trace: GraphTrace,
    private readonly backend: NodeBackend,
  ) {}

  /** Run the graph on `inputs` (same count, dtypes and shapes as traced): new tensors, one per traced output. */
  run(inputs: tf.Tensor[]): tf.Tensor[] {
    if (this.disposed) throw new GraphFunctionError(`graph function ${this.name} was disposed`);
    if (inputs.length !== this.numInputs) throw new GraphFunctionError(`graph function ${this.name} takes ${this.numInputs} inputs, got ${inputs.length}`);
    const b = this.backend;
    const ids = Int32Array.from(b.getInputTensorIds(inputs));
    let count: number;
    for (;;) {
      try {
        count = b.binding.graphRun(this.name, ids, this.out, graphRunOptions());
        break;
      } catch (e) {
        if (String((e as Error).message).includes('out buffer is too small') && this.out.length < 1 << 22) {
          this.out = new Int32Array(this.out.length * 4);
          continue;
        }
        throw e;
      }
    }
    const outs: tf.Tensor[] = [];
    let pos = 0;
    for (let i = 0; i < count; i++) {
      const id = this.out[pos]!;
      const dtype = this.out[pos + 1]!;
      const rank = this.out[pos + 2]!;
      const shape = Array.from(this.out.subarray(pos + 3, pos + 3 + rank));
      pos += 3 + rank;
      outs.push(b.createOutputTensor({ id, shape, dtype }));
    }
    return outs;
  }

  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    this.backend.binding.graphRemove(this.name);
  }
}

/**
 * Run `fn(inputs)` eagerly while recording it: returns its outputs (the eager values) and the graph of what it
 * ran. Throws GraphFunctionError when `fn` does something a graph cannot hold (and still returns nothing:
 * its outputs are disposed), or when graph functions are not available.
 */
export function traceGraph(fn: (inputs: tf.Tensor[]) => tf.Tensor[], inputs: tf.Tensor[], name = `vrepa_graph_${++counter}`): { outputs: tf.Tensor[]; graph: GraphFunction } {
  const backend = nodeBackend();
  if (!backend || !graphFunctionsAvailable()) throw new GraphFunctionError('graph functions need the tensorflow backend with binding patch 34 (`vrepa backend install-native`) and VREPA_TF_FAST_EXEC / VREPA_TF_GRAPH not 0');
  // arguments are tensors before the trace starts (a value still held in JS becomes a TensorFlow tensor now)
  const argIds = Int32Array.from(backend.getInputTensorIds(inputs));
  const binding = backend.binding;
  let violation: string | undefined;
  // An empty target: a proxy over the addon itself may not answer its read-only properties differently.
  const guarded = new Proxy({} as GraphBinding & Record<string, unknown>, {
    get(_empty, prop) {
      const v = Reflect.get(binding, prop) as unknown;
      if (typeof v !== 'function' || typeof prop !== 'string' || ALLOWED.has(prop)) return v;
      return () => {
        violation ??= prop;
        throw new GraphFunctionError(`a traced function called binding.${prop} (${prop === 'tensorDataSync' ? 'it reads a tensor back into JS' : prop === 'executeOp' ? 'the stock eager path, which is not recorded' : 'not an op a graph can hold'})`);
      };
    },
  });
  let outputs: tf.Tensor[] = [];
  binding.graphTraceBegin();
  backend.binding = guarded;
  try {
    outputs = tf.tidy(() => fn(inputs));
    const outIds = Int32Array.from(backend.getInputTensorIds(outputs));
    backend.binding = binding;
    if (violation) throw new GraphFunctionError(`a traced function called binding.${violation}`);
    const trace = binding.graphTraceEnd(name, argIds, outIds);
    return { outputs, graph: new GraphFunction(name, inputs.length, trace, backend) };
  } catch (e) {
    backend.binding = binding;
    binding.graphTraceAbort();
    tf.dispose(outputs);
    if (e instanceof GraphFunctionError) throw e;
    throw new GraphFunctionError(`tracing failed: ${(e as Error).message}`);
  }
}

/** Where two traces of one function differ, in words (undefined when they are the same graph). */
export function traceDifference(a: GraphTrace, b: GraphTrace, numInputs: number): string | undefined {
  if (a.hash === b.hash && a.captured.join() === b.captured.join()) return undefined;
  if (a.captured.join() !== b.captured.join()) return `the traces read different tensors they were not given (captured ids ${a.captured.slice(0, 5).join(',')} vs ${b.captured.slice(0, 5).join(',')}): pass them as inputs`;
  if (a.consts !== b.consts || a.ops.length !== b.ops.length) return `the traces ran different ops (${a.ops.length} vs ${b.ops.length} ops, ${a.consts} vs ${b.consts} constants made from JS values)`;
  const k = a.nodeHashes.findIndex((h, i) => h !== b.nodeHashes[i]);
  const placeholders = numInputs + a.captured.length;
  if (k < placeholders) return `input ${k} differs between the traces`;
  if (k < placeholders + a.consts) return `constant ${k - placeholders} (a tensor made from JS values inside the function) has other values in the second call: make it outside and pass it as an input`;
  const op = k - placeholders - a.consts;
  if (op < a.ops.length) return `op ${op} (${a.ops[op]}) differs between the traces (its attributes or inputs)`;
  return 'the outputs differ between the traces';
}

/** A function compiled by tracing: see compileFunction. */
export interface CompiledFunction {
  (inputs: tf.Tensor[]): tf.Tensor[];
  /** 'trace' for the first two or three calls per input signature, then 'graph' — or 'eager' when it cannot be a graph */
  mode(inputs?: tf.Tensor[]): 'trace' | 'graph' | 'eager';
  /** why it runs eagerly, when it does */
  readonly reason: string | undefined;
  /** the graph in use, per input signature */
  graphs(): GraphFunction[];
  dispose(): void;
}

export interface CompileOptions {
  /** called once when the function falls back to eager, with the reason */
  onFallback?: (reason: string) => void;
  /** input signatures (shapes and dtypes) to keep a graph for; a new one beyond this runs eagerly (default 4) */
  maxSignatures?: number;
}

interface SignatureState {
  first?: GraphFunction;
  graph?: GraphFunction;
  traces?: number;
}

/** Traces per input signature before giving up: the first call may fill caches, so calls 2 and 3 may be the first equal pair. */
const MAX_TRACES = 3;

/**
 * `fn` as a graph: per input signature (shapes, dtypes), calls are traced (run eagerly while recorded; the
 * call's results then come from running its own graph) until two consecutive traces are identical (ops,
 * attributes, wiring and every constant's value) — then every later call is one graph run. A first call may differ from the second because it fills a cache (a table made
 * from JS once, then read as an older tensor), so up to three traces are made; when the last two still
 * differ (a value made from JS inside `fn` that changes between calls), it stays eager, with the reason. A
 * graph that reads a tensor by id which has since been disposed (a frozen weight replaced) is traced again. Where graph functions are not available
 * (wasm, an unpatched binding, `VREPA_TF_GRAPH=0`) it runs `fn` eagerly. Outputs are new tensors either way:
 * the caller disposes them.
 */
export function compileFunction(fn: (inputs: tf.Tensor[]) => tf.Tensor[], opts: CompileOptions = {}): CompiledFunction {
  const states = new Map<string, SignatureState>();
  let reason: string | undefined;
  const fallBack = (why: string) => {
    if (reason !== undefined) return;
    reason = why;
    for (const s of states.values()) {
      s.first?.dispose();
      s.graph?.dispose();
    }
    states.clear();
    opts.onFallback?.(why);
  };
  const signature = (inputs: tf.Tensor[]) => inputs.map((t) => `${t.dtype}[${t.shape.join(',')}]`).join(' ');
  const mode = (inputs?: tf.Tensor[]) => {
    if (reason !== undefined || !graphFunctionsAvailable()) return 'eager' as const;
    if (!inputs) return [...states.values()].some((s) => s.graph) ? ('graph' as const) : ('trace' as const);
    return states.get(signature(inputs))?.graph ? ('graph' as const) : ('trace' as const);
  };
  const call = ((inputs: tf.Tensor[]) => {
    if (mode() === 'eager') return fn(inputs);
    const key = signature(inputs);
    let s = states.get(key);
    if (!s) {
      if (states.size >= (opts.maxSignatures ?? 4)) return fn(inputs);
      s = {};
      states.set(key, s);
    }
    if (s.graph) {
      try {
        return s.graph.run(inputs);
      } catch (e) {
        // a tensor the graph read by id is gone (e.g. a frozen weight replaced by a load): trace again
        if (!/captured tensor id \d+ no longer exists/.test(String((e as Error).message))) throw e;
        s.graph.dispose();
        s.graph = undefined;
        s.traces = 0;
      }
    }
    let traced: { outputs: tf.Tensor[]; graph: GraphFunction };
    try {
      traced = traceGraph(fn, inputs);
    } catch (e) {
      if (!(e instanceof GraphFunctionError)) throw e;
      fallBack(e.message);
      return fn(inputs);
    }
    // A traced call's results come from its own graph (its constants are its own values): every call that is
    // not eager then runs the same kernels — with oneDNN on the graph's differ from the eager ops' in rounding,
    // and a run resumed mid-way (tracing again) must give the bits an uninterrupted run gave.
    let outputs: tf.Tensor[];
    try {
      outputs = traced.graph.run(inputs);
      tf.dispose(traced.outputs);
    } catch (e) {
      traced.graph.dispose();
      fallBack(`the traced graph does not run: ${(e as Error).message}`);
      return traced.outputs;
    }
    if (!s.first) {
      s.first = traced.graph;
      return outputs;
    }
    const diff = traceDifference(s.first.trace, traced.graph.trace, inputs.length);
    s.first.dispose();
    s.first = undefined;
    s.traces = (s.traces ?? 1) + 1;
    if (diff === undefined) s.graph = traced.graph;
    else if (s.traces < MAX_TRACES) s.first = traced.graph; // a first call may fill caches (tables made once, then reused): compare the next two
    else {
      traced.graph.dispose();
      fallBack(diff);
    }
    return outputs;
  }) as CompiledFunction;
  call.mode = mode;
  Object.defineProperty(call, 'reason', { get: () => reason });
  call.graphs = () => [...states.values()].flatMap((s) => (s.graph ? [s.graph] : []));
  call.dispose = () => {
    for (const s of states.values()) {
      s.first?.dispose();
      s.graph?.dispose();
    }
    states.clear();
  };
  return call;
}

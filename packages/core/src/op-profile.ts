/**
 * A kernel-dispatch profiler: counts and times every tfjs kernel a function runs (forward ops, the
 * gradient ops autodiff emits, customGrad scopes), and on the native backend also every call into the
 * TensorFlow binding (eager ops by TF op name, tensor creations and deletions). Cheaper and finer than
 * `tf.profile`, which reads every output back to check it for NaNs.
 *
 * Only top-level kernels are timed (a kernel that runs others counts once, with their time); time between
 * kernels (the tape, tidy scopes, JS of the caller) is reported as `outsideMs`.
 */
import * as tf from '@tensorflow/tfjs';

export interface OpStat {
  /** Kernel name (`Add`, `BatchMatMul`, …), a customGrad scope's name, or for the binding level the TF op name. */
  name: string;
  count: number;
  totalMs: number;
}

export interface OpProfile<T> {
  result: T;
  /** Wall time of the whole call. */
  wallMs: number;
  /** Top-level tfjs kernels, most total time first. */
  kernels: OpStat[];
  /** Wall time not spent inside a top-level kernel. */
  outsideMs: number;
  /**
   * Native backend only: calls into the binding, by TF op name, plus `createTensor` (a tensor whose values
   * come from JS, e.g. every scalar operand), `deleteTensor`, `native Add|Sub|Mul|RealDiv|MulAdd` (smallBinary / mulAdd, binding patches 32–33) and `fusedAdamW` (core's AdamW in one native
   * call, also listed among `kernels` as `fusedAdamW (native)`); empty on other backends.
   */
  binding: OpStat[];
}

type Engine = { runKernelFunc: (p: unknown) => unknown; state: { activeScope?: { name: string } | null } };
type Binding = { executeOp: (name: string, ...rest: unknown[]) => unknown; createTensor: (...a: unknown[]) => unknown; deleteTensor: (...a: unknown[]) => unknown };

function add(map: Map<string, OpStat>, name: string, ms: number): void {
  const s = map.get(name);
  if (s) {
    s.count += 1;
    s.totalMs += ms;
  } else map.set(name, { name, count: 1, totalMs: ms });
}

const sorted = (m: Map<string, OpStat>) => [...m.values()].sort((a, b) => b.totalMs - a.totalMs || b.count - a.count);

/** Run `fn` once with every kernel dispatch counted and timed; the hooks are removed afterwards, also on a throw. */
export function profileOps<T>(fn: () => T): OpProfile<T> {
  const engine = tf.engine() as unknown as Engine;
  const kernels = new Map<string, OpStat>();
  const calls = new Map<string, OpStat>();
  const own = Object.prototype.hasOwnProperty.call(engine, 'runKernelFunc');
  const origRun = engine.runKernelFunc;
  let depth = 0;
  let inside = 0;
  engine.runKernelFunc = function (this: Engine, params: unknown) {
    if (depth > 0) return origRun.call(this, params);
    const p = params as { kernelName?: string };
    const name = p.kernelName ?? `customGrad:${this.state.activeScope?.name ?? ''}`;
    depth++;
    const t0 = performance.now();
    try {
      return origRun.call(this, params);
    } finally {
      const ms = performance.now() - t0;
      depth--;
      inside += ms;
      add(kernels, name, ms);
    }
  };
  // The addon's methods are read-only properties: swap the backend's `binding` for a proxy instead.
  const backend = tf.backend() as unknown as { binding?: Binding };
  const binding = backend.binding;
  const restoreBinding: Array<() => void> = [];
  if (binding && typeof binding.executeOp === 'function') {
    // fusedAdamW (core's binding patch 30) runs no tfjs kernel: it is also counted as a top-level kernel
    // so is graphRun (binding patch 34: a whole traced step as one TensorFlow graph)
    const timed = new Set(['executeOp', 'executeOpIo', 'createTensor', 'deleteTensor', 'fusedAdamW', 'smallBinary', 'mulAdd', 'graphRun']);
    const target = binding;
    // An empty target: a proxy over the addon itself may not answer its non-configurable properties differently.
    backend.binding = new Proxy({} as Binding, {
      get(_empty, key) {
        const v = Reflect.get(target, key) as unknown;
        if (typeof key !== 'string' || !timed.has(key) || typeof v !== 'function') return v;
        return (...args: unknown[]) => {
          const t1 = performance.now();
          try {
            return (v as (...a: unknown[]) => unknown).apply(target, args);
          } finally {
            const ms = performance.now() - t1;
            add(calls, key === 'executeOp' || key === 'executeOpIo' ? `TF ${String(args[0])}` : key === 'smallBinary' ? `native ${['Add', 'Sub', 'Mul', 'RealDiv'][Number(args[0])] ?? '?'}` : key === 'mulAdd' ? 'native MulAdd' : key, ms);
            if ((key === 'fusedAdamW' || key === 'graphRun') && depth === 0) {
              add(kernels, `${key} (native)`, ms);
              inside += ms;
            }
          }
        };
      },
    });
    restoreBinding.push(() => {
      backend.binding = binding;
    });
  }
  const t0 = performance.now();
  try {
    const result = fn();
    const wallMs = performance.now() - t0;
    return { result, wallMs, kernels: sorted(kernels), outsideMs: wallMs - inside, binding: sorted(calls) };
  } finally {
    if (own) engine.runKernelFunc = origRun;
    else delete (engine as Partial<Engine>).runKernelFunc;
    restoreBinding.forEach((r) => r());
  }
}

export interface MicrosPerOpOptions {
  /** back-to-back calls per round (default 2000) */
  reps?: number;
  /** rounds (default 5) */
  rounds?: number;
  /** 'median' of the rounds (default), or 'min': on a loaded machine the least disturbed round */
  stat?: 'median' | 'min';
  /**
   * 'wall' (default), or 'cpu': this process's CPU time (user + system, all its threads), which other
   * jobs on a shared machine disturb far less than wall time.
   */
  clock?: 'wall' | 'cpu';
}

/** The per-op cost of `op` in microseconds: `reps` back-to-back calls, each output disposed. */
export function microsPerOp(op: () => tf.Tensor | tf.Tensor[], opts: MicrosPerOpOptions = {}): number {
  const { reps = 2000, rounds = 5, stat = 'median', clock = 'wall' } = opts;
  const once = () => {
    const out = op();
    tf.dispose(out);
  };
  const now = clock === 'cpu' ? () => { const c = process.cpuUsage(); return (c.user + c.system) / 1000; } : () => performance.now();
  for (let i = 0; i < Math.min(200, reps); i++) once();
  const times: number[] = [];
  for (let r = 0; r < rounds; r++) {
    const t0 = now();
    for (let i = 0; i < reps; i++) once();
    times.push(((now() - t0) * 1000) / reps);
  }
  times.sort((a, b) => a - b);
  return stat === 'min' ? times[0]! : times[Math.floor(times.length / 2)]!;
}

/**
 * A small Module/parameter registry with PyTorch's dotted state-dict names.
 *
 * A Module owns named parameters (tf.Variable, float32, with a trainable flag), named buffers (fixed
 * tables: persistent ones are part of the state dict) and named child modules. `stateDict()` and
 * `loadStateDict()` speak PyTorch layouts; each parameter declares its layout once, and the layout
 * conversion happens once, at load (and is inverted by stateDict):
 *
 * | layout              | PyTorch shape          | stored (what our ops use)  |
 * |---------------------|------------------------|----------------------------|
 * | `identity`          | any                    | same                       |
 * | `linear`            | `[out, in]`            | `[in, out]`                |
 * | `conv1d`            | `[out, in, k]`         | `[k, in, out]`             |
 * | `conv2d`            | `[out, in, kH, kW]`    | `[kH, kW, in, out]`        |
 * | `conv3d`            | `[out, in, kT, kH, kW]`| `[kT, kH, kW, in, out]`    |
 * | `conv_transpose2d`  | `[in, out, kH, kW]`    | `[kH, kW, out, in]`        |
 * | `{ perm }`          | any                    | `transpose(torch, perm)`   |
 *
 * Linear weights are stored `[in, out]` so that the forward is one matMul without transpose flags:
 * the wasm backend's fast (XNNPACK) path is taken only for untransposed, unbatched matMul, and
 * `transposeB` is ~12× slower there.
 */
import * as tf from '@tensorflow/tfjs';
import { hostToTensor, type HostTensor } from './safetensors-bytes.js';

/** How a parameter is stored relative to PyTorch's layout. */
export type ParamLayout = 'identity' | 'linear' | 'conv1d' | 'conv2d' | 'conv3d' | 'conv_transpose2d' | { perm: number[] };

const LAYOUT_PERMS: Record<string, number[] | null> = {
  identity: null,
  linear: [1, 0],
  conv1d: [2, 1, 0],
  conv2d: [2, 3, 1, 0],
  conv3d: [2, 3, 4, 1, 0],
  conv_transpose2d: [2, 3, 1, 0],
};

/** The permutation taking a PyTorch-layout tensor to the stored layout (null: identity). */
export function layoutPerm(layout: ParamLayout): number[] | null {
  if (typeof layout === 'object') return layout.perm;
  const p = LAYOUT_PERMS[layout];
  if (p === undefined) throw new Error(`layoutPerm: unknown layout ${JSON.stringify(layout)}`);
  return p;
}

function invertPerm(p: number[]): number[] {
  const inv = new Array<number>(p.length);
  p.forEach((v, i) => (inv[v] = i));
  return inv;
}

/** The stored shape for a PyTorch shape under `layout`. */
export function storedShape(torchShape: readonly number[], layout: ParamLayout): number[] {
  const p = layoutPerm(layout);
  if (!p) return [...torchShape];
  if (p.length !== torchShape.length) throw new Error(`storedShape: layout ${JSON.stringify(layout)} needs rank ${p.length}, got [${torchShape.join(', ')}]`);
  return p.map((i) => torchShape[i]!);
}

/** The PyTorch shape for a stored shape under `layout`. */
export function torchShape(stored: readonly number[], layout: ParamLayout): number[] {
  const p = layoutPerm(layout);
  if (!p) return [...stored];
  return invertPerm(p).map((i) => stored[i]!);
}

/** Convert a PyTorch-layout tensor to the stored layout (a new tensor). */
export function fromTorchLayout(x: tf.Tensor, layout: ParamLayout): tf.Tensor {
  const p = layoutPerm(layout);
  return p ? tf.transpose(x, p) : x.clone();
}

/** Convert a stored-layout tensor to PyTorch's layout (a new tensor). */
export function toTorchLayout(x: tf.Tensor, layout: ParamLayout): tf.Tensor {
  const p = layoutPerm(layout);
  return p ? tf.transpose(x, invertPerm(p)) : x.clone();
}

/** A named trainable (or frozen) tensor of a module. `value` is the tf.Variable ops read. */
export class Parameter {
  constructor(
    readonly value: tf.Variable,
    readonly layout: ParamLayout,
  ) {}
  get trainable(): boolean {
    return this.value.trainable;
  }
  set trainable(flag: boolean) {
    this.value.trainable = flag;
  }
  /** Shape as stored (what ops see). */
  get shape(): number[] {
    return this.value.shape;
  }
  /** Shape in PyTorch's layout (what the state dict has). */
  get torchShape(): number[] {
    return torchShape(this.value.shape, this.layout);
  }
}

/** A fixed tensor of a module (a table, running statistics). Persistent buffers are in the state dict. */
export class ModuleBuffer {
  private t: tf.Tensor;
  constructor(
    value: tf.Tensor,
    readonly persistent: boolean,
    readonly layout: ParamLayout = 'identity',
  ) {
    this.t = tf.keep(value);
  }
  get value(): tf.Tensor {
    return this.t;
  }
  /** Replace the tensor (the old one is disposed; the new one is kept and owned by the buffer). */
  set value(next: tf.Tensor) {
    if (next === this.t) return;
    const old = this.t;
    this.t = tf.keep(next);
    old.dispose();
  }
  get shape(): number[] {
    return this.t.shape;
  }
  get torchShape(): number[] {
    return torchShape(this.t.shape, this.layout);
  }
  dispose(): void {
    this.t.dispose();
  }
}

/** A tensor from a checkpoint: a tf tensor or host data (e.g. from SafetensorsFile.read). */
export type StateTensor = tf.Tensor | HostTensor;

/**
 * Where `loadStateDict` reads entries from: a Map, a plain object, or a lazy source (a
 * SafetensorsFile works) that lists its keys and reads one tensor at a time, so a large checkpoint is
 * never held in memory twice.
 */
export type StateDictSource =
  | Map<string, StateTensor>
  | Record<string, StateTensor>
  | { keys(): Iterable<string>; read(key: string): StateTensor; info?(key: string): { shape: number[] } };

export interface LoadStateDictOptions {
  /** Throw (before changing anything) if any key is missing or unexpected. Default true. */
  strict?: boolean;
  /** Only entries under this prefix are read, with the prefix removed (e.g. 'module.'). */
  prefix?: string;
  /** Which checkpoint this is, for error messages. */
  source?: string;
}

export interface LoadStateDictReport {
  loaded: string[];
  missing: string[];
  unexpected: string[];
  /** `name: checkpoint [..] vs model [..]` (PyTorch layout) */
  mismatched: string[];
}

export class StateDictError extends Error {
  constructor(
    message: string,
    readonly report: LoadStateDictReport,
  ) {
    super(message);
    this.name = 'StateDictError';
  }
}

export interface ParamOptions {
  /** default true */
  trainable?: boolean;
  /** default 'identity' */
  layout?: ParamLayout;
}

let idCounter = 0;

function isHostTensor(x: unknown): x is HostTensor {
  return !!x && typeof x === 'object' && !(x instanceof tf.Tensor) && 'shape' in x && 'data' in x && 'dtype' in x;
}

/**
 * Base class of every model part. Subclasses register children in their constructor (or as class
 * fields), in PyTorch's order and with PyTorch's attribute names:
 * ```ts
 * class Block extends Module {
 *   norm1 = this.module('norm1', new LayerNorm(768, { eps: 1e-6 }));
 *   fc = this.module('fc', new Linear(768, 3072));
 *   scale = this.param('gamma', tf.ones([768]));
 * }
 * ```
 */
export class Module {
  private readonly _params = new Map<string, Parameter>();
  private readonly _buffers = new Map<string, ModuleBuffer>();
  private readonly _children = new Map<string, Module>();
  /** a unique id (for debugging and caches) */
  readonly moduleId = ++idCounter;

  /**
   * Register a parameter. `init` is the initial value in the STORED layout (see ParamLayout), or a
   * function making it; the tensor is copied into a new float32 tf.Variable.
   */
  protected param(name: string, init: tf.Tensor | (() => tf.Tensor), opts: ParamOptions = {}): Parameter {
    this.checkName(name);
    const v = tf.tidy(() => {
      const t = typeof init === 'function' ? init() : init;
      return tf.variable(t.dtype === 'float32' ? t : tf.cast(t, 'float32'), opts.trainable ?? true);
    });
    const p = new Parameter(v, opts.layout ?? 'identity');
    this._params.set(name, p);
    return p;
  }

  /**
   * Register a buffer (a fixed tensor). The module takes ownership of `value` (kept out of tidy scopes,
   * disposed with the module). Persistent buffers (default) are in the state dict.
   */
  protected buffer(name: string, value: tf.Tensor, opts: { persistent?: boolean; layout?: ParamLayout } = {}): ModuleBuffer {
    this.checkName(name);
    const b = new ModuleBuffer(value, opts.persistent ?? true, opts.layout ?? 'identity');
    this._buffers.set(name, b);
    return b;
  }

  /** Register a child module under `name` (a ModuleList registers its items under 0, 1, …). */
  protected module<M extends Module>(name: string, child: M): M {
    this.checkName(name);
    this._children.set(name, child);
    return child;
  }

  private checkName(name: string) {
    if (!name || name.includes('.')) throw new Error(`Module: name must be non-empty without dots, got ${JSON.stringify(name)}`);
    if (this._params.has(name) || this._buffers.has(name) || this._children.has(name))
      throw new Error(`Module: ${JSON.stringify(name)} is already registered in ${this.constructor.name}`);
  }

  /** Direct children, in registration order. */
  children(): Array<[string, Module]> {
    return [...this._children];
  }

  /** All modules below (and including) this one, with dotted names ('' for this one). */
  namedModules(prefix = ''): Array<[string, Module]> {
    const out: Array<[string, Module]> = [[prefix, this]];
    for (const [n, c] of this._children) out.push(...c.namedModules(prefix ? `${prefix}.${n}` : n));
    return out;
  }

  /** Child module by dotted path ('blocks.3.attn'). */
  getModule(path: string): Module {
    let m: Module = this;
    for (const part of path.split('.')) {
      const c = m._children.get(part);
      if (!c) throw new Error(`getModule: ${this.constructor.name} has no submodule ${JSON.stringify(path)} (no ${JSON.stringify(part)})`);
      m = c;
    }
    return m;
  }

  /** All parameters with their dotted PyTorch names, in registration order (depth first). */
  namedParameters(): Array<[string, Parameter]> {
    const out: Array<[string, Parameter]> = [];
    for (const [prefix, m] of this.namedModules()) for (const [n, p] of m._params) out.push([prefix ? `${prefix}.${n}` : n, p]);
    return out;
  }

  /** All buffers with their dotted names (persistent and not). */
  namedBuffers(): Array<[string, ModuleBuffer]> {
    const out: Array<[string, ModuleBuffer]> = [];
    for (const [prefix, m] of this.namedModules()) for (const [n, b] of m._buffers) out.push([prefix ? `${prefix}.${n}` : n, b]);
    return out;
  }

  /** The parameter variables (e.g. for an optimizer's var list). */
  parameters(): tf.Variable[] {
    return this.namedParameters().map(([, p]) => p.value);
  }

  /** The variables of the trainable parameters. */
  trainableParameters(): tf.Variable[] {
    return this.namedParameters()
      .filter(([, p]) => p.trainable)
      .map(([, p]) => p.value);
  }

  /** Parameter by dotted name. */
  getParameter(name: string): Parameter {
    const p = this.namedParameters().find(([n]) => n === name);
    if (!p) throw new Error(`getParameter: ${this.constructor.name} has no parameter ${JSON.stringify(name)}`);
    return p[1];
  }

  /** Number of scalar parameters (all, or only the trainable ones). */
  numParameters(opts: { trainableOnly?: boolean } = {}): number {
    let n = 0;
    for (const [, p] of this.namedParameters()) if (!opts.trainableOnly || p.trainable) n += p.value.size;
    return n;
  }

  /**
   * Set the trainable flag of the parameters whose dotted name matches: a RegExp (tested against the
   * name), a string (exact name, or a prefix when it ends with '.'; '*' matches all) or a predicate.
   * Returns the number of parameters changed.
   */
  setTrainable(match: RegExp | string | ((name: string, p: Parameter) => boolean), flag: boolean): number {
    const test =
      typeof match === 'function'
        ? match
        : match instanceof RegExp
          ? (n: string) => match.test(n)
          : match === '*'
            ? () => true
            : match.endsWith('.')
              ? (n: string) => n.startsWith(match)
              : (n: string) => n === match;
    let count = 0;
    for (const [n, p] of this.namedParameters()) {
      if (test(n, p)) {
        p.trainable = flag;
        count++;
      }
    }
    return count;
  }

  /** Freeze (or unfreeze) everything. */
  requiresGrad(flag: boolean): this {
    this.setTrainable('*', flag);
    return this;
  }

  /**
   * The state dict in PyTorch layout: parameters and persistent buffers, in registration order. The
   * tensors are new (transposed or cloned): the caller disposes them (tf.dispose([...map.values()])).
   */
  stateDict(): Map<string, tf.Tensor> {
    const out = new Map<string, tf.Tensor>();
    tf.tidy(() => {
      for (const [n, p] of this.namedParameters()) out.set(n, tf.keep(toTorchLayout(p.value, p.layout)));
      for (const [n, b] of this.namedBuffers()) if (b.persistent) out.set(n, tf.keep(toTorchLayout(b.value, b.layout)));
    });
    return out;
  }

  /** The state-dict keys with their PyTorch-layout shapes (no tensors made). */
  stateDictShapes(): Map<string, number[]> {
    const out = new Map<string, number[]>();
    for (const [n, p] of this.namedParameters()) out.set(n, p.torchShape);
    for (const [n, b] of this.namedBuffers()) if (b.persistent) out.set(n, b.torchShape);
    return out;
  }

  /**
   * Load PyTorch-layout tensors by their dotted names. Checks every key first and reports ALL missing,
   * unexpected and shape-mismatched keys in one StateDictError; with `strict: false` missing and
   * unexpected keys are only reported (shape mismatches still throw, as in PyTorch). Nothing is changed
   * when it throws. Tensors passed in are not disposed (host data is converted and freed).
   */
  loadStateDict(source: StateDictSource, opts: LoadStateDictOptions = {}): LoadStateDictReport {
    const strict = opts.strict ?? true;
    const prefix = opts.prefix ?? '';
    const src = normaliseSource(source);
    const targets = new Map<string, Parameter | ModuleBuffer>();
    for (const [n, p] of this.namedParameters()) targets.set(n, p);
    for (const [n, b] of this.namedBuffers()) if (b.persistent) targets.set(n, b);

    const report: LoadStateDictReport = { loaded: [], missing: [], unexpected: [], mismatched: [] };
    const present = new Map<string, string>(); // model key → source key
    for (const key of src.keys) {
      if (!key.startsWith(prefix)) continue;
      const name = key.slice(prefix.length);
      const target = targets.get(name);
      if (!target) {
        report.unexpected.push(key);
        continue;
      }
      present.set(name, key);
      const got = src.shape(key);
      const want = target.torchShape;
      if (got.length !== want.length || got.some((d, i) => d !== want[i]))
        report.mismatched.push(`${name}: checkpoint [${got.join(', ')}] vs model [${want.join(', ')}]`);
    }
    for (const n of targets.keys()) if (!present.has(n)) report.missing.push(n);

    const problems: string[] = [];
    if (report.mismatched.length) problems.push(`${report.mismatched.length} shape mismatch(es): ${report.mismatched.join('; ')}`);
    if (strict && report.missing.length) problems.push(`${report.missing.length} missing key(s): ${report.missing.join(', ')}`);
    if (strict && report.unexpected.length) problems.push(`${report.unexpected.length} unexpected key(s): ${report.unexpected.join(', ')}`);
    if (problems.length) {
      throw new StateDictError(
        `loadStateDict(${this.constructor.name}${opts.source ? `, ${opts.source}` : ''}${prefix ? `, prefix '${prefix}'` : ''}): ${problems.join('. ')}`,
        report,
      );
    }

    for (const [name, key] of present) {
      const target = targets.get(name)!;
      const raw = src.read(key);
      const owned = !(raw instanceof tf.Tensor);
      const t = raw instanceof tf.Tensor ? raw : hostToTensor(raw, key);
      try {
        const converted = tf.tidy(() => {
          const f = t.dtype === 'float32' ? t : tf.cast(t, 'float32');
          return fromTorchLayout(f, target.layout);
        });
        if (target instanceof Parameter) {
          target.value.assign(converted);
          converted.dispose();
        } else {
          target.value = converted;
        }
      } finally {
        if (owned) t.dispose();
      }
      report.loaded.push(name);
    }
    return report;
  }

  /** Dispose every parameter and buffer of this module and its children. */
  dispose(): void {
    for (const [, m] of this.namedModules()) {
      for (const p of m._params.values()) p.value.dispose();
      for (const b of m._buffers.values()) b.dispose();
    }
  }
}

function normaliseSource(source: StateDictSource): { keys: string[]; shape(k: string): number[]; read(k: string): StateTensor } {
  if (source instanceof Map) {
    return { keys: [...source.keys()], shape: (k) => source.get(k)!.shape, read: (k) => source.get(k)! };
  }
  const lazy = source as { keys?: unknown; read?: unknown; info?: unknown };
  if (typeof lazy.keys === 'function' && typeof lazy.read === 'function') {
    const s = source as { keys(): Iterable<string>; read(key: string): StateTensor; info?(key: string): { shape: number[] } };
    return {
      keys: [...s.keys()],
      shape: (k) => (s.info ? s.info(k).shape : s.read(k).shape),
      read: (k) => s.read(k),
    };
  }
  const rec = source as Record<string, StateTensor>;
  for (const [k, v] of Object.entries(rec))
    if (!(v instanceof tf.Tensor) && !isHostTensor(v)) throw new Error(`loadStateDict: entry ${JSON.stringify(k)} is not a tensor`);
  return { keys: Object.keys(rec), shape: (k) => rec[k]!.shape, read: (k) => rec[k]! };
}

/** A list of modules named 0, 1, 2, … (PyTorch nn.ModuleList). */
export class ModuleList<M extends Module = Module> extends Module {
  private readonly items: M[] = [];
  constructor(modules: Iterable<M> = []) {
    super();
    for (const m of modules) this.push(m);
  }
  push(m: M): M {
    this.module(String(this.items.length), m);
    this.items.push(m);
    return m;
  }
  get length(): number {
    return this.items.length;
  }
  at(i: number): M {
    const m = this.items.at(i);
    if (!m) throw new Error(`ModuleList.at: index ${i} out of range (length ${this.items.length})`);
    return m;
  }
  [Symbol.iterator](): Iterator<M> {
    return this.items[Symbol.iterator]();
  }
}

/** A module with a one-tensor forward. */
export interface Layer extends Module {
  forward(x: tf.Tensor): tf.Tensor;
}

/** Modules applied in order, named 0, 1, 2, … (PyTorch nn.Sequential). */
export class Sequential extends ModuleList<Layer> {
  forward(x: tf.Tensor): tf.Tensor {
    return tf.tidy(() => {
      let h = x;
      for (const m of this) h = m.forward(h);
      return h;
    });
  }
}

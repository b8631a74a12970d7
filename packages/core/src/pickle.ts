/**
 * A RESTRICTED unpickler for PyTorch state dicts (pickle protocols 0..5 opcodes). It builds plain data
 * only: dicts, lists, tuples (as arrays), numbers, strings, bytes, None/bools, and torch tensor
 * *descriptions* (storage key, dtype, offset, shape, stride) — never objects with behaviour. Only the
 * globals a state dict needs are accepted (collections.OrderedDict, torch._utils._rebuild_tensor_v2,
 * torch._utils._rebuild_parameter, torch.Size, the torch.*Storage types, _codecs.encode for bytes);
 * any other global is refused at the opcode that names it, before anything could call it. Nothing is
 * ever executed: there is no code path from pickle data to a JS function chosen by the data.
 */
import type { SafetensorsDtype } from './safetensors-bytes.js';

export class PickleError extends Error {
  constructor(
    readonly file: string,
    readonly offset: number,
    message: string,
  ) {
    super(`${file}: ${message} (pickle byte ${offset})`);
    this.name = 'PickleError';
  }
}

/** A refused global: `global` is `module.name` as the pickle spells it. */
export class PickleGlobalRefusedError extends PickleError {
  constructor(
    file: string,
    offset: number,
    readonly global: string,
  ) {
    super(
      file,
      offset,
      `the pickle names the global '${global}', which is not in the state-dict allowlist (OrderedDict, torch tensor/parameter rebuilds, torch storages, torch.Size); refusing to load it — nothing was executed ` +
        `(if it is plain data stored next to the weights, e.g. argparse.Namespace, pass allowGlobals: ['${global}'] to keep it as an inert record that is never called)`,
    );
    this.name = 'PickleGlobalRefusedError';
  }
}

/** torch storage class name → safetensors dtype. */
export const TORCH_STORAGE_DTYPES: Record<string, SafetensorsDtype> = {
  FloatStorage: 'F32',
  HalfStorage: 'F16',
  BFloat16Storage: 'BF16',
  DoubleStorage: 'F64',
  LongStorage: 'I64',
  IntStorage: 'I32',
  ShortStorage: 'I16',
  CharStorage: 'I8',
  ByteStorage: 'U8',
  BoolStorage: 'BOOL',
};

/** A storage named by a persistent id: its bytes live in `data/<key>` of the archive. */
export class TorchStorageRef {
  constructor(
    readonly key: string,
    readonly dtype: SafetensorsDtype,
    readonly storageType: string,
    readonly location: string,
    /** element count the pickle declares */
    readonly numel: number,
  ) {}
}

/** A tensor as torch describes it: a strided view of a storage. */
export class TorchTensorRef {
  constructor(
    readonly storage: TorchStorageRef,
    /** in elements */
    readonly offset: number,
    readonly shape: number[],
    /** in elements */
    readonly stride: number[],
    readonly requiresGrad: boolean,
    public parameter = false,
  ) {}

  get dtype(): SafetensorsDtype {
    return this.storage.dtype;
  }

  get numel(): number {
    return this.shape.reduce((a, b) => a * b, 1);
  }

  /** True when the view is the C-order contiguous run [offset, offset + numel). */
  isContiguous(): boolean {
    let expected = 1;
    for (let i = this.shape.length - 1; i >= 0; i--) {
      if (this.shape[i]! !== 1 && this.stride[i]! !== expected) return false;
      expected *= this.shape[i]!;
    }
    return true;
  }
}

/** A dict (plain or OrderedDict). Keys are strings, numbers, bigints, bools, null or tuples (as arrays). */
export class PickleDict {
  readonly map = new Map<PickleKey, PickleValue>();
  /** state set by BUILD (e.g. a state dict's `_metadata`); kept, never interpreted */
  state: PickleValue | undefined;
  constructor(readonly ordered: boolean) {}
}

/** A global the caller explicitly allowed as inert data: never called, only recorded. */
export class PickleOpaque {
  constructor(
    readonly global: string,
    readonly args: PickleValue[],
    public state: PickleValue | undefined = undefined,
  ) {}
}

export type PickleKey = string | number | bigint | boolean | null | PickleValue[];
export type PickleValue =
  | null
  | boolean
  | number
  | bigint
  | string
  | Uint8Array
  | PickleValue[]
  | PickleDict
  | TorchTensorRef
  | TorchStorageRef
  | PickleOpaque
  | PickleGlobal;

/** An allowlisted global on the stack, waiting for REDUCE. */
export class PickleGlobal {
  constructor(readonly global: string) {}
}

const ALLOWED = new Set([
  'collections.OrderedDict',
  'builtins.dict',
  'torch._utils._rebuild_tensor_v2',
  'torch._utils._rebuild_parameter',
  'torch.Size',
  '_codecs.encode',
  ...Object.keys(TORCH_STORAGE_DTYPES).map((s) => `torch.${s}`),
]);

export interface UnpickleOptions {
  /** file name used in errors */
  file?: string;
  /**
   * Extra globals (`module.name`) to accept as inert records (`PickleOpaque`): e.g. `argparse.Namespace`
   * that training scripts store next to the weights. They are never called.
   */
  allowGlobals?: string[];
}

const MARK = Symbol('mark');
type StackItem = PickleValue | typeof MARK;

/** Unpickle `bytes` into plain data (see the module comment for what is accepted). */
export function unpickle(bytes: Uint8Array, opts: UnpickleOptions = {}): PickleValue {
  const file = opts.file ?? 'pickle';
  const extra = new Set(opts.allowGlobals ?? []);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const n = bytes.length;
  let pos = 0;
  let op = 0;
  let opAt = 0;
  let stack: StackItem[] = [];
  const metastack: StackItem[][] = [];
  const memo = new Map<number, PickleValue>();
  const latin1 = new TextDecoder('latin1');
  const utf8 = new TextDecoder('utf-8', { fatal: true });

  const fail = (msg: string): never => {
    throw new PickleError(file, opAt, msg);
  };
  const need = (k: number) => {
    if (k < 0 || pos + k > n) fail(`truncated pickle: opcode 0x${op.toString(16)} needs ${k} bytes, ${n - pos} left`);
  };
  const take = (k: number): Uint8Array => {
    need(k);
    const out = bytes.subarray(pos, pos + k);
    pos += k;
    return out;
  };
  const line = (): string => {
    const end = bytes.indexOf(0x0a, pos);
    if (end < 0) fail('truncated pickle: missing newline');
    const s = latin1.decode(bytes.subarray(pos, end));
    pos = end + 1;
    return s;
  };
  const u8 = () => take(1)[0]!;
  const u16 = () => {
    need(2);
    const v = view.getUint16(pos, true);
    pos += 2;
    return v;
  };
  const u32 = () => {
    need(4);
    const v = view.getUint32(pos, true);
    pos += 4;
    return v;
  };
  const i32 = () => {
    need(4);
    const v = view.getInt32(pos, true);
    pos += 4;
    return v;
  };
  const u64 = () => {
    need(8);
    const v = view.getBigUint64(pos, true);
    pos += 8;
    if (v > BigInt(n)) fail(`length ${v} exceeds the pickle size`);
    return Number(v);
  };
  const pop = (): PickleValue => {
    if (stack.length === 0) fail('stack underflow');
    const v = stack.pop()!;
    if (v === MARK) fail('unexpected MARK on the stack');
    return v as PickleValue;
  };
  const top = (): PickleValue => {
    if (stack.length === 0) fail('stack underflow');
    const v = stack[stack.length - 1]!;
    if (v === MARK) fail('unexpected MARK on the stack');
    return v as PickleValue;
  };
  const popMark = (): PickleValue[] => {
    const items = stack as PickleValue[];
    if (metastack.length === 0) fail('no MARK to pop to');
    stack = metastack.pop()!;
    return items;
  };
  const str = (b: Uint8Array): string => {
    try {
      return utf8.decode(b);
    } catch {
      return fail('string is not valid UTF-8');
    }
  };
  const intOf = (v: bigint): number | bigint => (v >= BigInt(Number.MIN_SAFE_INTEGER) && v <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(v) : v);
  const longLE = (b: Uint8Array): number | bigint => {
    if (b.length === 0) return 0;
    let v = 0n;
    for (let i = b.length - 1; i >= 0; i--) v = (v << 8n) | BigInt(b[i]!);
    if (b[b.length - 1]! & 0x80) v -= 1n << BigInt(8 * b.length);
    return intOf(v);
  };
  const global = (module: string, name: string) => {
    const g = `${module}.${name}`;
    if (!ALLOWED.has(g) && !extra.has(g)) throw new PickleGlobalRefusedError(file, opAt, g);
    stack.push(new PickleGlobal(g));
  };
  const setItem = (d: PickleValue, k: PickleValue, v: PickleValue) => {
    if (!(d instanceof PickleDict)) fail(`SETITEM on a ${describe(d)}, not a dict`);
    (d as PickleDict).map.set(k as PickleKey, v);
  };
  const asInt = (v: PickleValue, what: string): number => {
    if (typeof v !== 'number' || !Number.isSafeInteger(v)) fail(`${what} is ${describe(v)}, expected an integer`);
    return v as number;
  };
  const intList = (v: PickleValue, what: string): number[] => {
    if (!Array.isArray(v)) fail(`${what} is ${describe(v)}, expected a tuple of integers`);
    return (v as PickleValue[]).map((x, i) => {
      const k = asInt(x, `${what}[${i}]`);
      if (k < 0) fail(`${what}[${i}] is negative (${k})`);
      return k;
    });
  };
  const call = (fn: PickleValue, args: PickleValue): PickleValue => {
    if (!(fn instanceof PickleGlobal)) fail(`REDUCE calls a ${describe(fn)}, not an allowlisted global`);
    if (!Array.isArray(args)) fail(`REDUCE arguments are ${describe(args)}, not a tuple`);
    const g = (fn as PickleGlobal).global;
    const a = args as PickleValue[];
    switch (g) {
      case 'collections.OrderedDict':
      case 'builtins.dict': {
        const d = new PickleDict(g === 'collections.OrderedDict');
        if (a.length > 0) {
          if (!Array.isArray(a[0])) fail(`${g} called with ${describe(a[0]!)}; only a list of pairs is accepted`);
          for (const pair of a[0] as PickleValue[]) {
            if (!Array.isArray(pair) || pair.length !== 2) fail(`${g} item is not a (key, value) pair`);
            d.map.set((pair as PickleValue[])[0] as PickleKey, (pair as PickleValue[])[1]!);
          }
        }
        return d;
      }
      case 'torch._utils._rebuild_tensor_v2': {
        if (a.length < 4) fail(`_rebuild_tensor_v2 takes (storage, offset, size, stride, ...), got ${a.length} arguments`);
        const storage = a[0];
        if (!(storage instanceof TorchStorageRef)) fail(`_rebuild_tensor_v2 storage is ${describe(storage!)}, expected a persistent storage`);
        const st = storage as TorchStorageRef;
        const offset = asInt(a[1]!, '_rebuild_tensor_v2 storage offset');
        if (offset < 0) fail(`_rebuild_tensor_v2 storage offset is negative (${offset})`);
        const shape = intList(a[2]!, '_rebuild_tensor_v2 size');
        const stride = intList(a[3]!, '_rebuild_tensor_v2 stride');
        if (shape.length !== stride.length) fail(`_rebuild_tensor_v2 size has ${shape.length} dims but stride has ${stride.length}`);
        if (shape.every((d) => d > 0)) {
          let last = offset;
          for (let i = 0; i < shape.length; i++) last += (shape[i]! - 1) * stride[i]!;
          if (!Number.isSafeInteger(last) || last >= st.numel) {
            fail(`tensor view (offset ${offset}, size [${shape.join(', ')}], stride [${stride.join(', ')}]) reaches element ${last} of storage '${st.key}' which has ${st.numel}`);
          }
        }
        return new TorchTensorRef(st, offset, shape, stride, a[4] === true);
      }
      case 'torch._utils._rebuild_parameter': {
        const t = a[0];
        if (!(t instanceof TorchTensorRef)) fail(`_rebuild_parameter data is ${describe(t!)}, expected a tensor`);
        (t as TorchTensorRef).parameter = true;
        return t as TorchTensorRef;
      }
      case 'torch.Size':
        if (a.length === 0) return [];
        return intList(a[0]!, 'torch.Size');
      case '_codecs.encode': {
        if (typeof a[0] !== 'string' || (a[1] !== 'latin1' && a[1] !== 'latin-1')) fail('_codecs.encode is only accepted as (str, "latin1") for bytes');
        const s = a[0] as string;
        const out = new Uint8Array(s.length);
        for (let i = 0; i < s.length; i++) {
          const c = s.charCodeAt(i);
          if (c > 255) fail('_codecs.encode string is not latin-1');
          out[i] = c;
        }
        return out;
      }
      default:
        if (extra.has(g)) return new PickleOpaque(g, a);
        // A storage class called directly (not through a persistent id) or anything unforeseen.
        return fail(`the global '${g}' cannot be called here`);
    }
  };

  for (;;) {
    if (pos >= n) fail('pickle ended without STOP (truncated?)');
    opAt = pos;
    op = bytes[pos++]!;
    switch (op) {
      case 0x80: // PROTO
        if (u8() > 5) fail('pickle protocol above 5');
        break;
      case 0x95: // FRAME
        u64();
        break;
      case 0x2e: // STOP
        return pop();
      case 0x28: // MARK
        metastack.push(stack);
        stack = [];
        break;
      case 0x7d: // EMPTY_DICT
        stack.push(new PickleDict(false));
        break;
      case 0x5d: // EMPTY_LIST
        stack.push([]);
        break;
      case 0x29: // EMPTY_TUPLE
        stack.push([]);
        break;
      case 0x8f: // EMPTY_SET
        stack.push([]);
        break;
      case 0x74: // TUPLE
      case 0x6c: // LIST
      case 0x91: { // FROZENSET
        const items = popMark();
        stack.push(items);
        break;
      }
      case 0x85: // TUPLE1
        stack.push([pop()]);
        break;
      case 0x86: { // TUPLE2
        const b = pop();
        const a = pop();
        stack.push([a, b]);
        break;
      }
      case 0x87: { // TUPLE3
        const c = pop();
        const b = pop();
        const a = pop();
        stack.push([a, b, c]);
        break;
      }
      case 0x64: { // DICT
        const items = popMark();
        if (items.length % 2) fail('DICT with an odd number of items');
        const d = new PickleDict(false);
        for (let i = 0; i < items.length; i += 2) d.map.set(items[i] as PickleKey, items[i + 1]!);
        stack.push(d);
        break;
      }
      case 0x61: { // APPEND
        const v = pop();
        const l = top();
        if (!Array.isArray(l)) fail(`APPEND to a ${describe(l)}, not a list`);
        (l as PickleValue[]).push(v);
        break;
      }
      case 0x65: // APPENDS
      case 0x90: { // ADDITEMS
        const items = popMark();
        const l = top();
        if (!Array.isArray(l)) fail(`APPENDS to a ${describe(l)}, not a list`);
        for (const it of items) (l as PickleValue[]).push(it);
        break;
      }
      case 0x73: { // SETITEM
        const v = pop();
        const k = pop();
        setItem(top(), k, v);
        break;
      }
      case 0x75: { // SETITEMS
        const items = popMark();
        if (items.length % 2) fail('SETITEMS with an odd number of items');
        const d = top();
        for (let i = 0; i < items.length; i += 2) setItem(d, items[i]!, items[i + 1]!);
        break;
      }
      case 0x4a: // BININT
        stack.push(i32());
        break;
      case 0x4b: // BININT1
        stack.push(u8());
        break;
      case 0x4d: // BININT2
        stack.push(u16());
        break;
      case 0x49: { // INT (text)
        const s = line().trim();
        if (s === '00') stack.push(false);
        else if (s === '01') stack.push(true);
        else if (/^[-+]?\d+$/.test(s)) stack.push(intOf(BigInt(s)));
        else fail(`INT opcode with text ${JSON.stringify(s)}`);
        break;
      }
      case 0x4c: { // LONG (text)
        const s = line().trim().replace(/L$/, '');
        if (!/^[-+]?\d+$/.test(s)) fail(`LONG opcode with text ${JSON.stringify(s)}`);
        stack.push(intOf(BigInt(s)));
        break;
      }
      case 0x8a: // LONG1
        stack.push(longLE(take(u8())));
        break;
      case 0x8b: { // LONG4
        const k = i32();
        if (k < 0) fail('LONG4 with a negative length');
        stack.push(longLE(take(k)));
        break;
      }
      case 0x47: // BINFLOAT (big-endian)
        need(8);
        stack.push(view.getFloat64(pos, false));
        pos += 8;
        break;
      case 0x46: { // FLOAT (text)
        const s = line().trim();
        const v = Number(s);
        if (Number.isNaN(v) && !/^[-+]?nan$/i.test(s)) fail(`FLOAT opcode with text ${JSON.stringify(s)}`);
        stack.push(v);
        break;
      }
      case 0x4e: // NONE
        stack.push(null);
        break;
      case 0x88: // NEWTRUE
        stack.push(true);
        break;
      case 0x89: // NEWFALSE
        stack.push(false);
        break;
      case 0x58: // BINUNICODE
        stack.push(str(take(u32())));
        break;
      case 0x8c: // SHORT_BINUNICODE
        stack.push(str(take(u8())));
        break;
      case 0x8d: // BINUNICODE8
        stack.push(str(take(u64())));
        break;
      case 0x56: // UNICODE (raw-unicode-escape)
        stack.push(line().replace(/\\u([0-9a-fA-F]{4})|\\U([0-9a-fA-F]{8})/g, (_m, a: string, b: string) => String.fromCodePoint(parseInt(a ?? b, 16))));
        break;
      case 0x53: { // STRING (quoted repr)
        const s = line();
        const q = s[0];
        if ((q !== "'" && q !== '"') || s[s.length - 1] !== q) fail('STRING opcode without quotes');
        stack.push(s.slice(1, -1));
        break;
      }
      case 0x54: { // BINSTRING
        const k = i32();
        stack.push(latin1.decode(take(k)));
        break;
      }
      case 0x55: // SHORT_BINSTRING
        stack.push(latin1.decode(take(u8())));
        break;
      case 0x42: // BINBYTES
        stack.push(take(u32()).slice());
        break;
      case 0x43: // SHORT_BINBYTES
        stack.push(take(u8()).slice());
        break;
      case 0x8e: // BINBYTES8
      case 0x96: // BYTEARRAY8
        stack.push(take(u64()).slice());
        break;
      case 0x71: // BINPUT
        memo.set(u8(), top());
        break;
      case 0x72: // LONG_BINPUT
        memo.set(u32(), top());
        break;
      case 0x70: { // PUT
        const k = Number(line());
        if (!Number.isSafeInteger(k)) fail('PUT with a bad index');
        memo.set(k, top());
        break;
      }
      case 0x94: // MEMOIZE
        memo.set(memo.size, top());
        break;
      case 0x68: // BINGET
      case 0x6a: // LONG_BINGET
      case 0x67: { // GET
        const k = op === 0x68 ? u8() : op === 0x6a ? u32() : Number(line());
        if (!memo.has(k)) fail(`memo key ${k} was never stored`);
        stack.push(memo.get(k)!);
        break;
      }
      case 0x63: { // GLOBAL
        const module = line();
        const name = line();
        global(module, name);
        break;
      }
      case 0x93: { // STACK_GLOBAL
        const name = pop();
        const module = pop();
        if (typeof module !== 'string' || typeof name !== 'string') fail('STACK_GLOBAL needs two strings');
        global(module as string, name as string);
        break;
      }
      case 0x52: { // REDUCE
        const args = pop();
        const fn = pop();
        stack.push(call(fn, args));
        break;
      }
      case 0x81: { // NEWOBJ  cls.__new__(cls, *args)
        const args = pop();
        const cls = pop();
        stack.push(call(cls, args));
        break;
      }
      case 0x92: { // NEWOBJ_EX
        pop(); // kwargs
        const args = pop();
        const cls = pop();
        stack.push(call(cls, args));
        break;
      }
      case 0x62: { // BUILD
        const state = pop();
        const obj = top();
        if (obj instanceof PickleDict || obj instanceof PickleOpaque) obj.state = state;
        else if (obj instanceof TorchTensorRef) {
          /* tensor python attributes: ignored */
        } else fail(`BUILD on a ${describe(obj)}`);
        break;
      }
      case 0x51: { // BINPERSID
        stack.push(persistent(pop()));
        break;
      }
      case 0x50: // PERSID (text ids are not used by torch)
        fail('PERSID (text persistent id) is not a torch storage reference');
        break;
      case 0x30: // POP
        if (stack.length === 0) fail('stack underflow');
        stack.pop();
        break;
      case 0x31: // POP_MARK
        popMark();
        break;
      case 0x32: // DUP
        stack.push(top());
        break;
      case 0x69: // INST
      case 0x6f: // OBJ
        fail(`opcode ${op === 0x69 ? 'INST' : 'OBJ'} (class instantiation) is refused`);
        break;
      case 0x82: // EXT1
      case 0x83: // EXT2
      case 0x84: // EXT4
        fail('extension-registry opcodes (EXT1/2/4) are refused');
        break;
      case 0x97: // NEXT_BUFFER
      case 0x98: // READONLY_BUFFER
        fail('out-of-band buffers are not supported');
        break;
      default:
        fail(`unknown pickle opcode 0x${op.toString(16).padStart(2, '0')}`);
    }
  }

  function persistent(pid: PickleValue): TorchStorageRef {
    if (!Array.isArray(pid) || pid[0] !== 'storage' || pid.length < 5) {
      return fail(`persistent id ${describe(pid)} is not a torch ('storage', type, key, location, numel) tuple`);
    }
    const [, type, key, location, numel] = pid as PickleValue[];
    if (!(type instanceof PickleGlobal) || !type.global.startsWith('torch.') || !(type.global.slice(6) in TORCH_STORAGE_DTYPES)) {
      return fail(`persistent storage type is ${describe(type!)}, expected one of torch.${Object.keys(TORCH_STORAGE_DTYPES).join(', torch.')}`);
    }
    if (typeof key !== 'string' || !/^[A-Za-z0-9_.-]+$/.test(key)) return fail(`persistent storage key ${describe(key!)} is not a plain name`);
    const cnt = asInt(numel!, `storage '${key}' element count`);
    if (cnt < 0) fail(`storage '${key}' element count is negative`);
    const name = (type as PickleGlobal).global.slice(6);
    return new TorchStorageRef(key as string, TORCH_STORAGE_DTYPES[name]!, name, typeof location === 'string' ? location : String(location), cnt);
  }
}

/** A short description of a value for error messages. */
export function describe(v: PickleValue | undefined): string {
  if (v === undefined) return 'nothing';
  if (v === null) return 'None';
  if (typeof v === 'string') return JSON.stringify(v.length > 40 ? `${v.slice(0, 40)}…` : v);
  if (typeof v === 'number' || typeof v === 'boolean' || typeof v === 'bigint') return String(v);
  if (v instanceof Uint8Array) return `bytes(${v.length})`;
  if (Array.isArray(v)) return `tuple/list of ${v.length}`;
  if (v instanceof PickleDict) return `dict of ${v.map.size}`;
  if (v instanceof TorchTensorRef) return `tensor [${v.shape.join(', ')}] ${v.dtype}`;
  if (v instanceof TorchStorageRef) return `storage ${v.storageType}`;
  if (v instanceof PickleGlobal) return `global ${v.global}`;
  if (v instanceof PickleOpaque) return `${v.global} object`;
  return typeof v;
}

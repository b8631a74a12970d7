/**
 * `vrepa convert` and `vrepa inspect` as library calls: convert any checkpoint (.pth, safetensors, sharded
 * index) into one safetensors file, and describe a checkpoint's tensors, metadata and structure.
 */
import path from 'node:path';
import { PthFile, collectTensors } from './pth.js';
import {
  detectCheckpointFormat,
  findStateDict,
  openCheckpoint,
  stateDictCandidates,
  summarizeTree,
  type CheckpointFormat,
  type OpenCheckpointOptions,
} from './checkpoint.js';
import { DTYPE_BYTES, hostToStreamEntry, writeSafetensorsStream, type SafetensorsDtype, type SafetensorsStreamEntry } from './safetensors.js';

export interface ConvertOptions extends Pick<OpenCheckpointOptions, 'key' | 'stripPrefix' | 'allowGlobals'> {
  /** float tensors are written as this (default f32); integer and bool tensors keep their dtype */
  dtype?: 'f32' | 'f16' | 'bf16';
  /** extra `__metadata__` entries for the output */
  metadata?: Record<string, string>;
}

export interface ConvertResult {
  inPath: string;
  outPath: string;
  format: CheckpointFormat;
  tensors: number;
  /** bytes of tensor data written */
  bytes: number;
}

const FLOATS = new Set<SafetensorsDtype>(['F32', 'F64', 'F16', 'BF16']);

/**
 * Convert a checkpoint into ONE safetensors file, one tensor in memory at a time. The input is opened
 * and validated before anything is written; the output is written to a temporary file and renamed, so a
 * refused or failing input leaves no (partial) `outPath`.
 */
export function convertCheckpoint(inPath: string, outPath: string, opts: ConvertOptions = {}): ConvertResult {
  const dtype = ({ f32: 'F32', f16: 'F16', bf16: 'BF16' } as const)[opts.dtype ?? 'f32'];
  if (!dtype) throw new Error(`convertCheckpoint: dtype must be f32, f16 or bf16, got ${JSON.stringify(opts.dtype)}`);
  if (path.resolve(inPath) === path.resolve(outPath)) throw new Error(`convertCheckpoint: output ${outPath} is the input file`);
  const ckpt = openCheckpoint(inPath, opts);
  try {
    let bytes = 0;
    const entries: SafetensorsStreamEntry[] = [...ckpt.tensors.values()].map((t) => {
      const out = FLOATS.has(t.dtype) ? dtype : t.dtype;
      bytes += t.shape.reduce((a, b) => a * b, 1) * DTYPE_BYTES[out];
      return {
        name: t.name,
        dtype: out,
        shape: t.shape,
        bytes: () => hostToStreamEntry(t.name, t.read(), dtype).bytes(),
      };
    });
    const metadata: Record<string, string> = { format: 'pt', ...ckpt.metadata, ...opts.metadata };
    writeSafetensorsStream(outPath, entries, { metadata });
    return { inPath, outPath, format: ckpt.format, tensors: entries.length, bytes };
  } finally {
    ckpt.close();
  }
}

export interface InspectRow {
  name: string;
  dtype: SafetensorsDtype;
  shape: number[];
  bytes: number;
}

export interface InspectResult {
  path: string;
  format: CheckpointFormat;
  metadata: Record<string, string>;
  rows: InspectRow[];
  totalBytes: number;
  /** .pth only: the structure summary (see `summarizeTree`) */
  tree?: unknown;
  /** .pth only: dicts that hold tensors (dotted key, count) and the one `findStateDict` would pick */
  stateDicts?: { key: string; tensors: number }[];
  suggestedKey?: string;
}

/**
 * Describe a checkpoint. Without `key`/`stripPrefix`, a .pth lists EVERY tensor in the file under its full
 * dotted path (so nested layouts are visible) plus the structure and the likely state-dict key; with them,
 * the rows are what `openCheckpoint` would give.
 */
export function inspectCheckpoint(p: string, opts: OpenCheckpointOptions = {}): InspectResult {
  const { format, file } = detectCheckpointFormat(p);
  const selecting = opts.key !== undefined || !!opts.stripPrefix;
  if (format === 'pytorch' && !selecting) {
    const pth = PthFile.open(file, { allowGlobals: opts.allowGlobals });
    try {
      const rows = [...collectTensors(pth.root)].map(([name, t]) => ({
        name,
        dtype: t.dtype,
        shape: [...t.shape],
        bytes: t.numel * DTYPE_BYTES[t.dtype],
      }));
      const tree = summarizeTree(pth.root);
      const stateDicts = stateDictCandidates(tree);
      return {
        path: file,
        format,
        metadata: {},
        rows,
        totalBytes: rows.reduce((a, r) => a + r.bytes, 0),
        tree,
        stateDicts,
        suggestedKey: stateDicts.length ? findStateDict(tree) : undefined,
      };
    } finally {
      pth.close();
    }
  }
  const ckpt = openCheckpoint(p, opts);
  try {
    const rows = [...ckpt.tensors.values()].map((t) => ({ name: t.name, dtype: t.dtype, shape: [...t.shape], bytes: t.byteLength }));
    return { path: ckpt.path, format: ckpt.format, metadata: ckpt.metadata, rows, totalBytes: rows.reduce((a, r) => a + r.bytes, 0), tree: ckpt.tree };
  } finally {
    ckpt.close();
  }
}

/** `vrepa inspect <file>`: tensors, dtypes, shapes, bytes and metadata of a checkpoint. */
import { inspectCheckpoint, type InspectResult, type VrepaCommand } from '@vrepa/core';
import { keyOption } from './key-option.js';
import { expectPositionals, parseCommandArgs } from '@vrepa/core';
import { EXIT, formatBytes, padEnd, padStart, processIO, type CliIO } from '../io.js';

export const inspectUsage = `Usage: vrepa inspect <file> [--key PATH] [--strip-prefix P] [--filter TEXT] [--json]

List the tensors of a checkpoint (name, dtype, shape, bytes), its metadata and totals. <file> is a
.safetensors file, a sharded checkpoint's *.safetensors.index.json, or a PyTorch .pth/.pt/.bin (zip
format); nothing is loaded beyond the headers. A .pth whose state dict is nested shows its structure:
pick the state dict with --key.

Options:
  --key PATH          where the state dict sits in a .pth (dotted for nesting: module, model, state_dict);
                      'auto' picks the dict holding the most tensors (core's findStateDict)
  --strip-prefix P    remove P from every tensor name (e.g. 'module.')
  --filter TEXT       only tensors whose name contains TEXT
  --json              print JSON {path, format, metadata, tensors: [{name, dtype, shape, bytes}], ...}
  -h, --help          this help

Examples:
  vrepa inspect model.safetensors
  vrepa inspect transformer/diffusion_pytorch_model.safetensors.index.json --filter norm
  vrepa inspect vit_b_k710_dl_from_giant.pth --key module --strip-prefix module.
`;

interface InspectFlags {
  key?: string;
  'strip-prefix'?: string;
  filter?: string;
  json?: boolean;
}

export interface InspectRow {
  name: string;
  dtype: string;
  shape: number[];
  bytes: number;
}

/** The rows of an inspection, optionally only names containing `filter`. */
export function tensorRows(result: InspectResult, filter?: string): InspectRow[] {
  return result.rows.filter((r) => !filter || r.name.includes(filter)).map((r) => ({ ...r, shape: [...r.shape] }));
}

const isTensorLeaf = (v: unknown) => typeof v === 'string' && v.startsWith('tensor ');

/**
 * A nested structure summary, one key per line; a dict's tensors are folded into one line (they are
 * listed in the table below), so the layout (where the state dict sits, what else the file holds) shows.
 */
export function printTree(tree: unknown, io: CliIO, indent = '  ', depth = 0): void {
  if (depth > 8) {
    io.out(`${indent}…\n`);
    return;
  }
  if (tree && typeof tree === 'object') {
    const entries = Array.isArray(tree) ? tree.map((v, i) => [String(i), v] as const) : Object.entries(tree as Record<string, unknown>);
    const tensors = entries.filter(([, v]) => isTensorLeaf(v));
    const others = entries.filter(([, v]) => !isTensorLeaf(v));
    if (tensors.length > 3) {
      io.out(`${indent}${tensors.length} tensors: ${tensors[0]![0]}, ${tensors[1]![0]}, …, ${tensors[tensors.length - 1]![0]}\n`);
    } else for (const [k, v] of tensors) io.out(`${indent}${k}: ${String(v)}\n`);
    const shown = others.slice(0, 40);
    for (const [k, v] of shown) {
      if (v && typeof v === 'object') {
        io.out(`${indent}${k}:\n`);
        printTree(v, io, `${indent}  `, depth + 1);
      } else io.out(`${indent}${k}: ${String(v)}\n`);
    }
    if (others.length > shown.length) io.out(`${indent}… ${others.length - shown.length} more entries\n`);
  } else io.out(`${indent}${String(tree)}\n`);
}

export async function runInspectCommand(argv: readonly string[], ctx: { io?: CliIO } = {}): Promise<number> {
  const io = ctx.io ?? processIO;
  const { values, positionals, help } = parseCommandArgs<InspectFlags>('inspect', argv, {
    key: { type: 'string' },
    'strip-prefix': { type: 'string' },
    filter: { type: 'string' },
    json: { type: 'boolean' },
  });
  if (help) {
    io.out(inspectUsage);
    return EXIT.ok;
  }
  const [file] = expectPositionals('inspect', positionals, ['file']);
  const ck = inspectCheckpoint(file!, { key: keyOption(values.key), stripPrefix: values['strip-prefix'] });
  const rows = tensorRows(ck, values.filter);
  const totalBytes = rows.reduce((a, r) => a + r.bytes, 0);
  const totalParams = rows.reduce((a, r) => a + r.shape.reduce((x, y) => x * y, 1), 0);
  if (values.json) {
    const out: Record<string, unknown> = {
      path: ck.path,
      format: ck.format,
      metadata: ck.metadata,
      tensors: rows,
      total_tensors: rows.length,
      total_params: totalParams,
      total_bytes: totalBytes,
    };
    if (ck.tree !== undefined) out.tree = ck.tree;
    if (ck.stateDicts !== undefined) out.state_dicts = ck.stateDicts;
    if (ck.suggestedKey !== undefined) out.suggested_key = ck.suggestedKey;
    io.out(`${JSON.stringify(out, null, 2)}\n`);
    return EXIT.ok;
  }
  io.out(`${ck.path}\n`);
  io.out(`format: ${ck.format} · ${rows.length} tensor${rows.length === 1 ? '' : 's'}${values.filter ? ` matching '${values.filter}'` : ''} · ${totalParams.toLocaleString('en-US')} values · ${formatBytes(totalBytes)}\n`);
  const meta = Object.entries(ck.metadata ?? {});
  if (meta.length) {
    io.out('metadata:\n');
    for (const [k, v] of meta) io.out(`  ${k} = ${v.length > 200 ? `${v.slice(0, 200)}…` : v}\n`);
  }
  if (ck.tree !== undefined) {
    io.out('structure:\n');
    printTree(ck.tree, io);
  }
  if (ck.stateDicts?.length) {
    io.out(`state dicts: ${ck.stateDicts.map((d) => `${d.key || '(top level)'} (${d.tensors} tensors)`).join(', ')}\n`);
    if (ck.suggestedKey !== undefined) {
      io.out(`to load one: --key ${ck.suggestedKey || "''"} (names below are full dotted paths; add --strip-prefix to drop a prefix)\n`);
    }
  }
  if (rows.length) {
    const nameW = Math.max(4, ...rows.map((r) => r.name.length));
    const shapes = rows.map((r) => `[${r.shape.join(', ')}]`);
    const shapeW = Math.max(5, ...shapes.map((s) => s.length));
    const bytes = rows.map((r) => String(r.bytes));
    const bytesW = Math.max(5, ...bytes.map((s) => s.length));
    io.out(`${padEnd('name', nameW)}  dtype  ${padEnd('shape', shapeW)}  ${padStart('bytes', bytesW)}\n`);
    rows.forEach((r, i) => io.out(`${padEnd(r.name, nameW)}  ${padEnd(r.dtype, 5)}  ${padEnd(shapes[i]!, shapeW)}  ${padStart(bytes[i]!, bytesW)}\n`));
  }
  return EXIT.ok;
}

export const inspectCommand: VrepaCommand = {
  name: 'inspect',
  summary: 'list the tensors (dtype, shape, bytes) and metadata of a safetensors / sharded index / .pth file',
  usage: inspectUsage,
  run: (argv) => runInspectCommand(argv),
};

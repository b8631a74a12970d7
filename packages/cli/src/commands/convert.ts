/** `vrepa convert IN OUT`: a .pth / safetensors / sharded checkpoint to one safetensors file. */
import fs from 'node:fs';
import path from 'node:path';
import { convertCheckpoint, type VrepaCommand } from '@vrepa/core';
import { keyOption } from './key-option.js';
import { expectPositionals, parseCommandArgs } from '@vrepa/core';
import { EXIT, formatBytes, processIO, UsageError, type CliIO } from '../io.js';

export const convertUsage = `Usage: vrepa convert <in> <out.safetensors> [--key PATH] [--strip-prefix P] [--dtype f32|f16|bf16]

Convert a checkpoint to one safetensors file. <in> is a PyTorch .pth/.pt/.bin (zip format, read with
a restricted unpickler that executes nothing), a .safetensors file, or a sharded *.safetensors.index.json.
Floating tensors are written as float32 unless --dtype says otherwise. A refused input exits non-zero
and writes nothing: <out> is written to a temporary file and renamed only when complete.

Options:
  --key PATH          where the state dict sits in a .pth (dotted for nesting: module, model, state_dict);
                      'auto' picks the dict holding the most tensors (core's findStateDict)
  --strip-prefix P    remove P from every tensor name (e.g. 'module.' or 'encoder.')
  --dtype D           f32 (default), f16 or bf16 for the floating tensors
  -h, --help          this help

Examples:
  vrepa convert vit_b_k710_dl_from_giant.pth videomaev2-b.safetensors --key module --strip-prefix module.
  vrepa convert pretrain.pth encoder.safetensors --key model --strip-prefix encoder.
  vrepa convert transformer/diffusion_pytorch_model.safetensors.index.json transformer.safetensors --dtype bf16
`;

interface ConvertFlags {
  key?: string;
  'strip-prefix'?: string;
  dtype?: string;
}

type OutDtype = 'f32' | 'f16' | 'bf16';
const DTYPES: readonly OutDtype[] = ['f32', 'f16', 'bf16'];

export async function runConvertCommand(argv: readonly string[], ctx: { io?: CliIO } = {}): Promise<number> {
  const io = ctx.io ?? processIO;
  const { values, positionals, help } = parseCommandArgs<ConvertFlags>('convert', argv, {
    key: { type: 'string' },
    'strip-prefix': { type: 'string' },
    dtype: { type: 'string' },
  });
  if (help) {
    io.out(convertUsage);
    return EXIT.ok;
  }
  const [input, output] = expectPositionals('convert', positionals, ['in', 'out']);
  const dtype = values.dtype?.toLowerCase();
  if (dtype !== undefined && !(DTYPES as readonly string[]).includes(dtype)) {
    throw new UsageError(`vrepa convert: --dtype ${values.dtype} is not supported; expected one of ${DTYPES.join(', ')}`);
  }
  if (!output!.endsWith('.safetensors')) {
    throw new UsageError(`vrepa convert: <out> must be a .safetensors file, got '${output}'`);
  }
  const outDir = path.dirname(path.resolve(output!));
  if (!fs.existsSync(outDir)) throw new Error(`output folder ${outDir} does not exist`);
  // convertCheckpoint validates the whole input before writing, then writes a temp file and renames it:
  // a refused input leaves no (partial) output.
  const r = convertCheckpoint(input!, output!, { key: keyOption(values.key), stripPrefix: values['strip-prefix'], dtype: dtype as OutDtype | undefined });
  io.out(`wrote ${output}: ${r.tensors} tensor${r.tensors === 1 ? '' : 's'} from ${r.format} ${input}, ${formatBytes(r.bytes)} of ${dtype ?? 'f32'} data\n`);
  return EXIT.ok;
}

export const convertCommand: VrepaCommand = {
  name: 'convert',
  summary: 'convert a .pth / safetensors / sharded checkpoint to one safetensors file (--key, --strip-prefix, --dtype)',
  usage: convertUsage,
  run: (argv) => runConvertCommand(argv),
};

/** `vrepa export --for-inference`: the transformer without its training-only align parts. */
import { commandArgs, type VrepaCommand } from '@vrepa/core';
import { exportForInference } from './export-inference.js';

const USAGE = `vrepa export --for-inference <transformer-dir> --out <dir> [options]

Write the transformer of a VideoREPA run (the full export <run>/final/transformer, or an official
VideoREPA checkpoint folder) without the training-only align parts: config.json without align_layer,
align_dims, projector_dim; weights without projectors.* and downsampler_cogvideo_output.*. Stock
diffusers (CogVideoXTransformer3DModel.from_pretrained) loads the result without warnings. Everything
else is copied unchanged, tensor by tensor; the input is not modified.

  --for-inference <dir>  the diffusers transformer folder to export (config.json + safetensors, single or sharded)
  --out <dir>            output folder (must be empty or absent unless --overwrite)
  --variant <name>       weight variant of the input and the output file names (e.g. fp16)
  --dtype <f32|f16|bf16> stored dtype of the output (default: as stored in the input)
  --max-shard-gb <n>     shard the output above this size (default 5)
  --overwrite            replace a non-empty output folder
  -h, --help             this text`;

export const exportCommand: VrepaCommand = {
  name: 'export',
  summary: 'export a trained transformer for inference (no align parts: stock diffusers loads it without warnings)',
  usage: USAGE,
  async run(argv: string[]): Promise<number> {
    const a = commandArgs<Record<string, string | boolean | undefined>>(
      'export',
      argv,
      {
        'for-inference': { type: 'string' },
        out: { type: 'string' },
        variant: { type: 'string' },
        dtype: { type: 'string' },
        'max-shard-gb': { type: 'string' },
        overwrite: { type: 'boolean' },
      },
      USAGE,
      { required: ['for-inference', 'out'], positionals: false },
    );
    if (typeof a === 'number') return a;
    const values = a.values;
    const dtypes: Record<string, 'F32' | 'F16' | 'BF16'> = { f32: 'F32', f16: 'F16', bf16: 'BF16' };
    const dtype = values.dtype === undefined ? undefined : dtypes[String(values.dtype).toLowerCase()];
    if (values.dtype !== undefined && !dtype) {
      process.stderr.write(`vrepa export: --dtype must be f32, f16 or bf16, got '${String(values.dtype)}'\n${USAGE}\n`);
      return 2;
    }
    const gb = values['max-shard-gb'] === undefined ? 5 : Number(values['max-shard-gb']);
    if (!(gb > 0)) {
      process.stderr.write(`vrepa export: --max-shard-gb must be > 0, got '${String(values['max-shard-gb'])}'\n${USAGE}\n`);
      return 2;
    }
    try {
      const r = exportForInference(String(values['for-inference']), String(values.out), {
        variant: values.variant as string | undefined,
        dtype,
        maxShardBytes: gb * 1e9,
        overwrite: !!values.overwrite,
      });
      const dropped = [...r.dropped.config.map((k) => `config ${k}`), `${r.dropped.weights.length} align weights`];
      process.stdout.write(`wrote ${r.files.join(', ')} (${r.tensors} tensors; left out ${dropped.join(', ')})\n`);
      return 0;
    } catch (e) {
      process.stderr.write(`vrepa export: ${(e as Error).message}\n`);
      return 1;
    }
  },
};

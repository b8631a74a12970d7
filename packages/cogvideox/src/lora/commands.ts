/**
 * `vrepa lora bake`: the same adapter with α/r inside lora_B, for loaders that ignore the metadata.
 * `vrepa lora merge`: fold a LoRA file (diffusers/PEFT format) into a transformer checkpoint and write
 * the merged transformer as a diffusers folder — what a LoRA-trained VideoREPA model needs to be used
 * as a plain CogVideoX transformer.
 */
import fs from 'node:fs';
import path from 'node:path';
import { commandArgs, type VrepaCommand } from '@vrepa/core';
import { fromPretrained } from '../transformer/load.js';
import { savePretrained } from '../transformer/save.js';
import { bakeLoraFile, loadLora, mergeLora } from './lora.js';

const USAGE = `vrepa lora merge --transformer <dir> --lora <file> --out <dir> [options]

Fold a LoRA adapter into a CogVideoX transformer and save the merged transformer.

  --transformer <dir>   diffusers transformer folder (config.json + safetensors, single or sharded)
  --lora <file>         LoRA safetensors (pytorch_lora_weights.safetensors, keys transformer.….lora_A/B.weight)
  --out <dir>           output folder (config.json + diffusion_pytorch_model*.safetensors)
  --alpha <n>           lora_alpha when the file has no adapter metadata (default: metadata, else rank)
  --dtype <f32|f16|bf16> stored dtype of the output (default f32)
  --max-shard-gb <n>    shard the output above this size (default 5)
  -h, --help            this text`;

export const loraMergeCommand: VrepaCommand = {
  name: 'lora merge',
  summary: 'fold a LoRA adapter into a CogVideoX transformer checkpoint',
  usage: USAGE,
  async run(argv: string[]): Promise<number> {
    const a = commandArgs<Record<string, string | undefined>>(
      'lora merge',
      argv,
      {
        transformer: { type: 'string' },
        lora: { type: 'string' },
        out: { type: 'string' },
        alpha: { type: 'string' },
        dtype: { type: 'string' },
        'max-shard-gb': { type: 'string' },
      },
      USAGE,
      { required: ['transformer', 'lora', 'out'], positionals: false },
    );
    if (typeof a === 'number') return a;
    const values = a.values;
    const dtypes: Record<string, 'F32' | 'F16' | 'BF16'> = { f32: 'F32', f16: 'F16', bf16: 'BF16' };
    const dtype = dtypes[String(values.dtype ?? 'f32').toLowerCase()];
    if (!dtype) {
      process.stderr.write(`vrepa lora merge: --dtype must be f32, f16 or bf16, got ${String(values.dtype)}\n`);
      return 2;
    }
    const alpha = values.alpha === undefined ? undefined : Number(values.alpha);
    if (alpha !== undefined && !(alpha > 0)) {
      process.stderr.write(`vrepa lora merge: --alpha must be a positive number, got ${String(values.alpha)}\n`);
      return 2;
    }
    const gb = values['max-shard-gb'] === undefined ? 5 : Number(values['max-shard-gb']);
    if (!(gb > 0)) {
      process.stderr.write(`vrepa lora merge: --max-shard-gb must be > 0, got ${String(values['max-shard-gb'])}\n`);
      return 2;
    }
    try {
      const { model } = fromPretrained(String(values.transformer));
      try {
        const info = loadLora(model, String(values.lora), { alpha });
        mergeLora(model);
        const files = savePretrained(model, String(values.out), { dtype, maxShardBytes: gb * 1e9 });
        process.stdout.write(`merged ${info.modules.length} adapted linears (rank ${info.rank}, alpha ${info.alpha}) → ${files.join(', ')}\n`);
      } finally {
        model.dispose();
      }
      return 0;
    } catch (e) {
      process.stderr.write(`vrepa lora merge: ${(e as Error).message}\n`);
      return 1;
    }
  },
};

const BAKE_USAGE = `vrepa lora bake --lora <file> --out <file.safetensors> [--alpha <n>] [--overwrite]

Write a copy of a LoRA file with the scale α/r baked into every lora_B and lora_alpha = r in its metadata,
for loaders that ignore lora_adapter_metadata (older diffusers, the official inference script): they run an
adapter at scale 1 (α = r), which for the official r 128, α 64 is 2× too strong. The baked file gives the same
merged weights everywhere, with no lora_scale to pass.

  --lora <file>     LoRA safetensors (diffusers/PEFT format, as vrepa train writes it)
  --out <file>      output .safetensors
  --alpha <n>       lora_alpha when the file has no adapter metadata (the metadata's α wins)
  --overwrite       replace an existing output file
  -h, --help        this text`;

export const loraBakeCommand: VrepaCommand = {
  name: 'lora bake',
  summary: 'bake α/r into a LoRA file (for loaders that ignore lora_adapter_metadata)',
  usage: BAKE_USAGE,
  async run(argv: string[]): Promise<number> {
    const a = commandArgs<Record<string, string | boolean | undefined>>(
      'lora bake',
      argv,
      { lora: { type: 'string' }, out: { type: 'string' }, alpha: { type: 'string' }, overwrite: { type: 'boolean' } },
      BAKE_USAGE,
      { required: ['lora', 'out'], positionals: false },
    );
    if (typeof a === 'number') return a;
    const values = a.values;
    const out = String(values.out);
    const alpha = values.alpha === undefined ? undefined : Number(values.alpha);
    if (alpha !== undefined && !(alpha > 0)) {
      process.stderr.write(`vrepa lora bake: --alpha must be a positive number, got '${String(values.alpha)}'\n${BAKE_USAGE}\n`);
      return 2;
    }
    if (!out.endsWith('.safetensors')) {
      process.stderr.write(`vrepa lora bake: --out must end in .safetensors, got '${out}'\n${BAKE_USAGE}\n`);
      return 2;
    }
    if (fs.existsSync(out) && !values.overwrite) {
      process.stderr.write(`vrepa lora bake: ${out} exists (pass --overwrite to replace it)\n`);
      return 2;
    }
    if (path.resolve(out) === path.resolve(String(values.lora))) {
      process.stderr.write(`vrepa lora bake: --out is the input file; write the baked copy elsewhere\n`);
      return 2;
    }
    try {
      const r = bakeLoraFile(String(values.lora), out, { alpha });
      process.stdout.write(`wrote ${out}: ${r.scaled} lora_B × α/r = ${r.alpha}/${r.rank}; lora_alpha = ${r.rank} (load it at lora_scale 1)\n`);
      return 0;
    } catch (e) {
      process.stderr.write(`vrepa lora bake: ${(e as Error).message}\n`);
      return 1;
    }
  },
};

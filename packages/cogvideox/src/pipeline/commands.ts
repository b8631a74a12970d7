/** `vrepa generate` and `vrepa init-model`. */
import fs from 'node:fs';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { commandArgs, initBackend, type VrepaCommand } from '@vrepa/core';
import { CogVideoXPipeline, videoToRgbBytes, type StepInfo } from './pipeline.js';
import { initModel, type ModelPreset } from './init-model.js';
import { contactSheet, encodePng, findFfmpeg, writeVideo } from './video.js';

const GENERATE_USAGE = `vrepa generate --model <dir> --prompt "<text>" --out <video.mp4|video.gif> [options]

Text-to-video with a CogVideoX pipeline folder (diffusers layout; vrepa init-model writes one).

  --model <dir>            pipeline folder (model_index.json, transformer/, vae/, text_encoder/, tokenizer/, scheduler/)
  --prompt <text>          the prompt
  --negative-prompt <text> negative prompt (default '')
  --out <file>             output video, .mp4 (H.264) or .gif; its contact sheet <file>.png is written next to
                           it (v.mp4 → v.mp4.png, v.gif → v.gif.png: outputs of different formats never collide)
  --lora <file>            LoRA adapter to apply to the transformer (diffusers/PEFT safetensors)
  --lora-alpha <n>         LoRA alpha when the file has no adapter metadata
  --steps <n>              inference steps (default 50)
  --guidance <g>           classifier-free guidance scale (default 6; ≤ 1 turns CFG off)
  --dynamic-cfg            the official dynamic CFG schedule
  --seed <n>               seed of the initial noise (default 42)
  --height <px> --width <px> --frames <n>   sizes (default: the transformer's sample size; frames 4k+1)
  --fps <n>                frames per second of the output (default 8)
  --tiling                 VAE spatial tiling (large sizes on little memory)
  --variant <name>         weight variant (e.g. fp16)
  --overwrite              replace an existing output file
  -h, --help               this text`;

function fail(cmd: string, msg: string, usage?: string): number {
  process.stderr.write(`vrepa ${cmd}: ${msg}\n${usage ? usage + '\n' : ''}`);
  return 2;
}

function num(cmd: string, name: string, v: string | undefined, def: number, int = true): number {
  if (v === undefined) return def;
  const n = Number(v);
  if (!Number.isFinite(n) || (int && !Number.isInteger(n))) throw new Error(`vrepa ${cmd}: --${name} must be ${int ? 'an integer' : 'a number'}, got '${v}'`);
  return n;
}

/**
 * The contact sheet written beside a generated video: the output's full name plus `.png`
 * (`v.mp4` → `v.mp4.png`), so that `v.mp4` and `v.gif` each own their sheet and neither run blocks the other.
 */
export function contactSheetPath(videoFile: string): string {
  return `${videoFile}.png`;
}

/** A one-line progress bar with ETA for stderr. */
export function progressLine(info: StepInfo, width = 24): string {
  const done = info.step + 1;
  const filled = Math.round((done / info.total) * width);
  const per = info.elapsedMs / done;
  const eta = (info.total - done) * per;
  return `step ${String(done).padStart(String(info.total).length)}/${info.total} [${'#'.repeat(filled)}${'-'.repeat(width - filled)}] t=${info.timestep} ${(info.elapsedMs / 1000).toFixed(1)}s elapsed, ETA ${(eta / 1000).toFixed(1)}s`;
}

export const generateCommand: VrepaCommand = {
  name: 'generate',
  summary: 'text-to-video with a CogVideoX pipeline folder (mp4/gif + contact sheet)',
  usage: GENERATE_USAGE,
  async run(argv: string[]): Promise<number> {
    const parsed = commandArgs('generate', argv, {
      model: { type: 'string' },
      prompt: { type: 'string' },
      'negative-prompt': { type: 'string' },
      out: { type: 'string' },
      lora: { type: 'string' },
      'lora-alpha': { type: 'string' },
      steps: { type: 'string' },
      guidance: { type: 'string' },
      'dynamic-cfg': { type: 'boolean' },
      seed: { type: 'string' },
      height: { type: 'string' },
      width: { type: 'string' },
      frames: { type: 'string' },
      fps: { type: 'string' },
      tiling: { type: 'boolean' },
      variant: { type: 'string' },
      overwrite: { type: 'boolean' },
    }, GENERATE_USAGE, { required: ['model', 'prompt', 'out'], positionals: false });
    if (typeof parsed === 'number') return parsed;
    const values = parsed.values as Record<string, string | boolean | undefined>;
    const out = String(values.out);
    const ext = path.extname(out).toLowerCase();
    if (ext !== '.mp4' && ext !== '.gif') return fail('generate', `--out must end in .mp4 or .gif, got '${out}'`);
    const sheet = contactSheetPath(out);
    for (const f of [out, sheet]) if (fs.existsSync(f) && !values.overwrite) return fail('generate', `${f} exists (pass --overwrite to replace it)`);
    let ffmpeg: string;
    let steps: number, guidance: number, seed: number, fps: number;
    let height: number | undefined, width: number | undefined, frames: number | undefined, loraAlpha: number | undefined;
    try {
      ffmpeg = findFfmpeg();
      steps = num('generate', 'steps', values.steps as string | undefined, 50);
      guidance = num('generate', 'guidance', values.guidance as string | undefined, 6, false);
      seed = num('generate', 'seed', values.seed as string | undefined, 42);
      fps = num('generate', 'fps', values.fps as string | undefined, 8);
      height = values.height === undefined ? undefined : num('generate', 'height', values.height as string, 0);
      width = values.width === undefined ? undefined : num('generate', 'width', values.width as string, 0);
      frames = values.frames === undefined ? undefined : num('generate', 'frames', values.frames as string, 0);
      loraAlpha = values['lora-alpha'] === undefined ? undefined : num('generate', 'lora-alpha', values['lora-alpha'] as string, 0, false);
      if (steps < 1) throw new Error(`vrepa generate: --steps must be ≥ 1, got ${steps}`);
      if (fps < 1) throw new Error(`vrepa generate: --fps must be ≥ 1, got ${fps}`);
    } catch (e) {
      return fail('generate', (e as Error).message.replace(/^vrepa generate: /, ''));
    }
    await initBackend();
    let pipe: CogVideoXPipeline | null = null;
    try {
      pipe = CogVideoXPipeline.fromPretrained(String(values.model), { lora: values.lora as string | undefined, loraAlpha, variant: values.variant as string | undefined });
      const sizes = pipe.resolveSizes({ height, width, numFrames: frames, numInferenceSteps: steps });
      process.stderr.write(`generating ${sizes.numFrames} frames ${sizes.height}×${sizes.width}, ${steps} steps, guidance ${guidance}, seed ${seed} (backend ${tf.getBackend()})\n`);
      const tty = process.stderr.isTTY;
      const res = await pipe.generate({
        prompt: String(values.prompt),
        negativePrompt: (values['negative-prompt'] as string | undefined) ?? '',
        numInferenceSteps: steps,
        guidanceScale: guidance,
        useDynamicCfg: !!values['dynamic-cfg'],
        seed,
        height,
        width,
        numFrames: frames,
        tiling: values.tiling ? true : undefined,
        onStep: (info) => process.stderr.write(tty ? `\r${progressLine(info)}` : `${progressLine(info)}\n`),
        onWarning: (w) => process.stderr.write(`\nwarning: ${w}\n`),
      });
      if (tty) process.stderr.write('\n');
      const v = videoToRgbBytes(res.video!);
      tf.dispose([res.video!, res.latents]);
      await writeVideo(out, v.rgb, v, { fps, ffmpeg, overwrite: !!values.overwrite });
      const cs = contactSheet(v.rgb, v);
      const tmpSheet = `${sheet}.tmp-${process.pid}`;
      fs.writeFileSync(tmpSheet, encodePng(cs.rgb, cs.width, cs.height));
      fs.renameSync(tmpSheet, sheet);
      process.stdout.write(`wrote ${out} (${v.frames} frames ${v.width}×${v.height}, ${fps} fps) and ${sheet}\n`);
      return 0;
    } catch (e) {
      process.stderr.write(`\nvrepa generate: ${(e as Error).message}\n`);
      return 1;
    } finally {
      pipe?.dispose();
    }
  },
};

const INIT_USAGE = `vrepa init-model --preset <tiny|cogvideox-2b|cogvideox-5b> --out <dir> [options]

Write a CogVideoX pipeline folder (diffusers layout: model_index.json, transformer/, vae/, text_encoder/,
tokenizer/, scheduler/) with configs shaped like the official ones and random weights.
'tiny' generates a 9-frame 32×32 clip in seconds on a CPU; the full-size presets write ~13 GB (2b) /
~20 GB (5b) of bf16 weights and take minutes.

  --preset <name>        tiny | cogvideox-2b | cogvideox-5b
  --out <dir>            output folder (must be empty or absent unless --overwrite)
  --seed <n>             seed of the random weights (default 0)
  --dtype <f32|f16|bf16> stored dtype (default f32 for tiny, bf16 otherwise)
  --overwrite            write into a non-empty folder
  -h, --help             this text`;

export const initModelCommand: VrepaCommand = {
  name: 'init-model',
  summary: 'write a random-weight CogVideoX pipeline folder (tiny, cogvideox-2b, cogvideox-5b)',
  usage: INIT_USAGE,
  async run(argv: string[]): Promise<number> {
    const parsed = commandArgs('init-model', argv, {
      preset: { type: 'string' },
      out: { type: 'string' },
      seed: { type: 'string' },
      dtype: { type: 'string' },
      overwrite: { type: 'boolean' },
    }, INIT_USAGE, { required: ['preset', 'out'], positionals: false });
    if (typeof parsed === 'number') return parsed;
    const values = parsed.values as Record<string, string | boolean | undefined>;
    const preset = String(values.preset);
    if (!['tiny', 'cogvideox-2b', 'cogvideox-5b'].includes(preset)) return fail('init-model', `--preset must be tiny, cogvideox-2b or cogvideox-5b, got '${preset}'`);
    const dtypes: Record<string, 'F32' | 'F16' | 'BF16'> = { f32: 'F32', f16: 'F16', bf16: 'BF16' };
    const dtype = values.dtype === undefined ? undefined : dtypes[String(values.dtype).toLowerCase()];
    if (values.dtype !== undefined && !dtype) return fail('init-model', `--dtype must be f32, f16 or bf16, got '${values.dtype}'`);
    let seed: number;
    try {
      seed = num('init-model', 'seed', values.seed as string | undefined, 0);
    } catch (e) {
      return fail('init-model', (e as Error).message.replace(/^vrepa init-model: /, ''));
    }
    await initBackend();
    try {
      const files = initModel(preset as ModelPreset, String(values.out), { seed, dtype, overwrite: !!values.overwrite, log: (l) => process.stderr.write(l + '\n') });
      process.stdout.write(`wrote ${files.length} files to ${values.out}\n`);
      return 0;
    } catch (e) {
      process.stderr.write(`vrepa init-model: ${(e as Error).message}\n`);
      return 1;
    }
  },
};

/** `vrepa train`, `vrepa prepare` and `vrepa teacher probe`. */
import fs from 'node:fs';
import path from 'node:path';
import { commandArgs, initBackend, type VrepaCommand } from '@vrepa/core';
import { ConfigError, loadConfigFile, oneDnnFor, presetConfig, PRESETS, type TrainConfig } from './config.js';
import { Trainer } from './trainer.js';
import { prepareCaches } from './prepare.js';
import { formatProbeReport, probeTeacher } from './teacher-probe.js';

const TRAIN_USAGE = `vrepa train (--config <file.json> | --preset <name>) --out <dir> [options]

VideoREPA finetuning: CogVideoX + projector/downsampler, loss = L_diff (v-prediction, weight 1/(1−ᾱ_t)) + λ·TRD,
AdamW, warmup + schedule, clipping, accumulation, NaN/Inf guard. Writes
  <dir>/checkpoints/step-<n>/   trainable weights (safetensors), optimizer moments, state, manifest with hashes
  <dir>/log.jsonl               one line per step: step, loss, loss_diff, loss_align, lr, grad_norm, timings
  <dir>/tensorboard/            TensorBoard event files
  <dir>/loss.png                the loss curves
  <dir>/final/                  the LoRA (diffusers format) or the full transformer (diffusers folder)
  <dir>/final/inference/        with --export-for-inference: the transformer without the align parts, or the
                                LoRA with α/r baked into lora_B (for loaders that ignore its metadata)

  --config <file>          training config (JSON; unknown keys are errors); may name a "preset" to start from
  --preset <name>          use a preset as the config (${Object.keys(PRESETS).join(', ')})
  --out <dir>              output folder
  --resume                 continue from the newest valid checkpoint in <dir>/checkpoints (exact resume)
  --max-steps <n>          stop after n optimizer steps (overrides train.max_steps)
  --checkpoint-every <n>   checkpoint every n steps (overrides train.checkpointing_steps)
  --export-for-inference   also write <dir>/final/inference/ (overrides train.export_for_inference)
  --no-progress            no progress bar
  -h, --help               this text`;

const PREPARE_USAGE = `vrepa prepare (--config <file.json> | --preset <name>)

Fill the training caches (latents, text embeddings, teacher features per sample) in data.cache_dir, with a
progress bar, so that training never re-encodes. Already cached samples are kept.

  --config <file>          training config
  --preset <name>          a preset
  --cache-dir <dir>        overrides data.cache_dir
  -h, --help               this text`;

function posInt(cmd: string, name: string, v: string | undefined): number | undefined {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1) throw new ConfigError(`vrepa ${cmd}: --${name} must be a positive integer, got '${v}'`);
  return n;
}

function readConfig(cmd: string, values: { config?: string; preset?: string }): TrainConfig {
  if (values.config && values.preset) throw new ConfigError(`vrepa ${cmd}: give --config or --preset, not both (a config file may name its "preset")`);
  if (values.config) return loadConfigFile(values.config);
  if (values.preset) return presetConfig(values.preset);
  throw new ConfigError(`vrepa ${cmd}: --config <file> or --preset <name> is required`);
}

export const trainCommand: VrepaCommand = {
  name: 'train',
  summary: 'VideoREPA finetuning (TRD alignment), with checkpoints, exact resume, logs and plots',
  usage: TRAIN_USAGE,
  async run(argv: string[]): Promise<number> {
    const a = commandArgs<Record<string, string | boolean | undefined>>(
      'train',
      argv,
      {
        config: { type: 'string' },
        preset: { type: 'string' },
        out: { type: 'string' },
        resume: { type: 'boolean' },
        'max-steps': { type: 'string' },
        'checkpoint-every': { type: 'string' },
        'no-progress': { type: 'boolean' },
        'export-for-inference': { type: 'boolean' },
      },
      TRAIN_USAGE,
      { required: ['out'], positionals: false },
    );
    if (typeof a === 'number') return a;
    const values = a.values;
    let trainer: Trainer | undefined;
    try {
      const config = readConfig('train', values as { config?: string; preset?: string });
      const maxSteps = posInt('train', 'max-steps', values['max-steps'] as string | undefined);
      const checkpointEvery = posInt('train', 'checkpoint-every', values['checkpoint-every'] as string | undefined);
      const backend = await initBackend({ quiet: true, oneDnn: oneDnnFor(config) });
      process.stderr.write(`vrepa train: backend ${backend.name}${backend.oneDnn === undefined ? '' : `, oneDNN ${backend.oneDnn ? 'on' : 'off'}`}
`);
      trainer = new Trainer(config, { out: path.resolve(String(values.out)), resume: !!values.resume, maxSteps, checkpointEvery, progress: !values['no-progress'], exportForInference: values['export-for-inference'] ? true : undefined });
      process.stderr.write(`vrepa train: ${trainer.dataset.describe()}\n`);
      process.stderr.write(`vrepa train: ${config.model.training_type} finetune, ${[...trainer.params.values()].reduce((a, v) => a + v.size, 0).toLocaleString('en')} trainable parameters, ${trainer.maxSteps} steps\n`);
      const r = await trainer.run();
      process.stderr.write(
        `vrepa train: ${r.stepsRun} steps in ${r.seconds.toFixed(1)} s (${r.stepsPerSecond.toFixed(2)} steps/s on ${backend.name})${r.resumedFrom !== null ? `, resumed from step ${r.resumedFrom}` : ''}${r.skippedSteps ? `, ${r.skippedSteps} non-finite steps skipped` : ''}\n` +
          `vrepa train: log ${r.logFile}${r.plot ? `, plot ${r.plot}` : ''}, final weights ${r.final}\n`,
      );
      return 0;
    } catch (e) {
      process.stderr.write(`vrepa train: ${(e as Error).message}\n`);
      return e instanceof ConfigError ? 2 : 1;
    } finally {
      trainer?.dispose();
    }
  },
};

export const prepareCommand: VrepaCommand = {
  name: 'prepare',
  summary: 'fill the training caches (latents, text embeddings, teacher features) with a progress bar',
  usage: PREPARE_USAGE,
  async run(argv: string[]): Promise<number> {
    const a = commandArgs<Record<string, string | boolean | undefined>>(
      'prepare',
      argv,
      { config: { type: 'string' }, preset: { type: 'string' }, 'cache-dir': { type: 'string' } },
      PREPARE_USAGE,
      { positionals: false },
    );
    if (typeof a === 'number') return a;
    const values = a.values;
    try {
      const config = readConfig('prepare', values as { config?: string; preset?: string });
      if (typeof values['cache-dir'] === 'string') config.data.cache_dir = path.resolve(values['cache-dir']);
      if (!config.data.cache_dir) throw new ConfigError('vrepa prepare: data.cache_dir (or --cache-dir) is required');
      const backend = await initBackend({ quiet: true });
      process.stderr.write(`vrepa prepare: backend ${backend.name}\n`);
      const r = await prepareCaches(config, { progress: true });
      process.stderr.write(`vrepa prepare: ${r.written} samples encoded, ${r.cached} already cached, ${r.skipped.length} skipped${r.skipped.length ? ':\n  ' + r.skipped.join('\n  ') : ''}\n`);
      return 0;
    } catch (e) {
      process.stderr.write(`vrepa prepare: ${(e as Error).message}\n`);
      return e instanceof ConfigError ? 2 : 1;
    }
  },
};

const TEACHER_PROBE_USAGE = `vrepa teacher probe --checkpoint CK --scenes DIR [--json F] [--folds K] [--seed S] [--random-init SEED]

A teacher's physics understanding in one command: the encoder of a pre-training checkpoint (CK: a .pth /
.safetensors, or a 'vrepa teacher pretrain' output folder) on the labelled scenes of 'vrepa physics generate'
(DIR), Physion OCP protocol (the first context frames, 3 temporal slices of the token grid, every spatial token),
then the linear probe of 'vrepa probe' (stratified k-fold, mean ± std over folds) — next to the raw-pixel probe
of the same clips (each token's mean colour) and, with --random-init, the same architecture untrained.

  --folds K           outer folds (default 5)
  --seed S            fold seed (default 0)
  --random-init SEED  also probe the untrained model (initialised with SEED)
  --json F            write the numbers as JSON
`;

export const teacherProbeCommand: VrepaCommand = {
  name: 'teacher probe',
  summary: 'OCP linear probe of a pre-trained teacher on labelled scenes, next to the raw-pixel probe',
  usage: TEACHER_PROBE_USAGE,
  async run(argv: string[]): Promise<number> {
    const a = commandArgs<Record<string, string | boolean | undefined>>(
      'teacher probe',
      argv,
      { checkpoint: { type: 'string' }, scenes: { type: 'string' }, json: { type: 'string' }, folds: { type: 'string' }, seed: { type: 'string' }, 'random-init': { type: 'string' } },
      TEACHER_PROBE_USAGE,
      { required: ['checkpoint', 'scenes'], positionals: false },
    );
    if (typeof a === 'number') return a;
    const v = a.values;
    const int = (k: string, min: number): number | undefined => {
      if (v[k] === undefined) return undefined;
      const n = Number(v[k]);
      if (!Number.isInteger(n) || n < min) throw new ConfigError(`vrepa teacher probe: --${k} must be an integer ≥ ${min}, got '${v[k]}'`);
      return n;
    };
    try {
      const folds = int('folds', 2);
      const seed = int('seed', 0);
      const randomInit = int('random-init', 0);
      const backend = await initBackend({ quiet: true });
      process.stderr.write(`vrepa teacher probe: backend ${backend.name}\n`);
      const r = await probeTeacher({ checkpoint: String(v.checkpoint), scenes: String(v.scenes), folds, seed, randomInit: randomInit ?? null });
      process.stdout.write(formatProbeReport(r) + '\n');
      if (typeof v.json === 'string') {
        fs.mkdirSync(path.dirname(path.resolve(v.json)), { recursive: true });
        fs.writeFileSync(v.json, JSON.stringify(r, null, 2) + '\n');
      }
      return 0;
    } catch (e) {
      process.stderr.write(`vrepa teacher probe: ${(e as Error).message}\n`);
      return e instanceof ConfigError ? 2 : 1;
    }
  },
};

export const commands: VrepaCommand[] = [trainCommand, prepareCommand, teacherProbeCommand];

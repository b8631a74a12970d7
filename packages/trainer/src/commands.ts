/** `vrepa train`, `vrepa prepare`, `vrepa launch` and `vrepa teacher probe`. */
import fs from 'node:fs';
import path from 'node:path';
import { DistributedError, TfConfigError, commandArgs, initBackend, initDistributed, launchWorkers, type VrepaCommand } from '@vrepa/core';
import { ConfigError, loadConfigFile, oneDnnFor, presetConfig, PRESETS, type TrainConfig } from './config.js';
import { Trainer } from './trainer.js';
import { prepareCaches, verifyCaches } from './prepare.js';
import { parseShard } from './folder.js';
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
  -h, --help               this text

Data parallel: when the TF_CONFIG environment variable names several tasks (TensorFlow's format,
{"cluster": {"worker": ["host:port", ...]}, "task": {"type": "worker", "index": i}}), every task runs this same
command; optim.batch_size is per task (global batch = batch_size × tasks), gradients are averaged across tasks
before clipping and AdamW, rank 0 writes <dir>. On one machine: vrepa launch --workers N -- train ...`;

const LAUNCH_USAGE = `vrepa launch --workers <n> [--port-base <p>] [--grace <s>] -- <vrepa command and its options>

Start n local tasks of a vrepa command (e.g. \`train --config c.json --out runs/a\`) with TensorFlow's TF_CONFIG,
on free loopback ports (or port-base … port-base+n−1), as torchrun does for PyTorch. Output lines are forwarded
with a [rank i] prefix. When a task fails, the others stop (they see the broken collective within about a second;
whatever still runs after --grace seconds is terminated) and launch exits non-zero naming the task.
For several machines, set TF_CONFIG on each yourself (Slurm, Kubernetes, TF's tooling) and run vrepa train there.

  --workers <n>            number of tasks (≥ 1)
  --port-base <p>          first port (default: free ports chosen by the OS)
  --grace <s>              seconds the others may take to stop after one fails (default 20)
  -h, --help               this text`;

const PREPARE_USAGE = `vrepa prepare (--config <file.json> | --preset <name>)

Fill the training caches (latents, text embeddings, teacher features per sample) in data.cache_dir, with a
progress bar, so that training never re-encodes. Already cached samples are kept.

  --config <file>          training config
  --preset <name>          a preset
  --cache-dir <dir>        overrides data.cache_dir
  --shard <i/n>            only samples i, i+n, i+2n, … (0 ≤ i < n): n array jobs fill one shared cache in
                           parallel; the next unsharded prepare or vrepa train merges their indexes
  --verify                 check the cache instead: every sample cached and readable, or skipped with a reason;
                           lists missing and corrupt entries and exits 1 when there are any
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
      const dist = initDistributed();
      process.stderr.write(`vrepa train: backend ${backend.name}${backend.oneDnn === undefined ? '' : `, oneDNN ${backend.oneDnn ? 'on' : 'off'}`}${dist.worldSize > 1 ? `; data parallel, rank ${dist.rank} of ${dist.worldSize} (${dist.cluster!.task.name}), global batch ${config.optim.batch_size * dist.worldSize}` : ''}\n`);
      trainer = new Trainer(config, { out: path.resolve(String(values.out)), resume: !!values.resume, maxSteps, checkpointEvery, progress: !values['no-progress'], distributed: dist, exportForInference: values['export-for-inference'] ? true : undefined });
      process.stderr.write(`vrepa train: ${trainer.dataset.describe()}\n`);
      process.stderr.write(`vrepa train: ${config.model.training_type} finetune, ${[...trainer.params.values()].reduce((a, v) => a + v.size, 0).toLocaleString('en')} trainable parameters, ${trainer.maxSteps} steps\n`);
      const r = await trainer.run();
      if (!dist.isChief) {
        process.stderr.write(`vrepa train: rank ${dist.rank}: ${r.stepsRun} steps in ${r.seconds.toFixed(1)} s; rank 0 wrote the log and weights\n`);
        dist.shutdown();
        return 0;
      }
      process.stderr.write(
        `vrepa train: ${r.stepsRun} steps in ${r.seconds.toFixed(1)} s (${r.stepsPerSecond.toFixed(2)} steps/s on ${backend.name})${r.resumedFrom !== null ? `, resumed from step ${r.resumedFrom}` : ''}${r.skippedSteps ? `, ${r.skippedSteps} non-finite steps skipped` : ''}\n` +
          `vrepa train: log ${r.logFile}${r.plot ? `, plot ${r.plot}` : ''}, final weights ${r.final}\n`,
      );
      dist.shutdown();
      return 0;
    } catch (e) {
      process.stderr.write(`vrepa train: ${(e as Error).message}\n`);
      return e instanceof ConfigError || e instanceof TfConfigError ? 2 : e instanceof DistributedError ? 3 : 1;
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
      { config: { type: 'string' }, preset: { type: 'string' }, 'cache-dir': { type: 'string' }, shard: { type: 'string' }, verify: { type: 'boolean' } },
      PREPARE_USAGE,
      { positionals: false },
    );
    if (typeof a === 'number') return a;
    const values = a.values;
    try {
      const config = readConfig('prepare', values as { config?: string; preset?: string });
      if (typeof values['cache-dir'] === 'string') config.data.cache_dir = path.resolve(values['cache-dir']);
      if (!config.data.cache_dir) throw new ConfigError('vrepa prepare: data.cache_dir (or --cache-dir) is required');
      let shard;
      try {
        shard = typeof values.shard === 'string' ? parseShard(values.shard) : undefined;
      } catch (e) {
        throw new ConfigError((e as Error).message);
      }
      if (shard && values.verify) throw new ConfigError('vrepa prepare: --verify checks the whole cache; give it without --shard');
      await initBackend({ quiet: true });
      if (values.verify) {
        const v = verifyCaches(config);
        const bad = v.missing.length + v.corrupt.length;
        process.stderr.write(
          `vrepa prepare --verify: ${v.rows} samples: ${v.ok} cached and readable, ${v.skipped.length} skipped, ${v.missing.length} missing, ${v.corrupt.length} corrupt\n` +
            (v.missing.length ? `  missing: samples ${v.missing.join(', ')} (run vrepa prepare, or the shard that holds them, again)\n` : '') +
            v.corrupt.map((x) => `  corrupt: sample ${x.row} ${x.file}: ${x.reason} (delete it and run vrepa prepare again)\n`).join(''),
        );
        return bad ? 1 : 0;
      }
      const r = await prepareCaches(config, { progress: true, shard });
      process.stderr.write(`vrepa prepare${shard ? ` (shard ${shard.index}/${shard.count})` : ''}: ${r.written} samples encoded, ${r.cached} already cached, ${r.skipped.length} skipped${r.skipped.length ? ':\n  ' + r.skipped.join('\n  ') : ''}\n`);
      return 0;
    } catch (e) {
      process.stderr.write(`vrepa prepare: ${(e as Error).message}\n`);
      return e instanceof ConfigError ? 2 : 1;
    }
  },
};

export const launchCommand: VrepaCommand = {
  name: 'launch',
  summary: 'start N local data-parallel tasks of a vrepa command with TF_CONFIG (like torchrun)',
  usage: LAUNCH_USAGE,
  async run(argv: string[]): Promise<number> {
    const dash = argv.indexOf('--');
    const own = dash >= 0 ? argv.slice(0, dash) : argv;
    const rest = dash >= 0 ? argv.slice(dash + 1) : [];
    const a = commandArgs<Record<string, string | boolean | undefined>>(
      'launch',
      own,
      { workers: { type: 'string' }, 'port-base': { type: 'string' }, grace: { type: 'string' } },
      LAUNCH_USAGE,
      { required: ['workers'], positionals: false },
    );
    if (typeof a === 'number') return a;
    try {
      const workers = posInt('launch', 'workers', a.values.workers as string)!;
      const portBase = posInt('launch', 'port-base', a.values['port-base'] as string | undefined);
      const grace = posInt('launch', 'grace', a.values.grace as string | undefined) ?? 20;
      if (rest.length === 0) throw new ConfigError('vrepa launch: give the command to run after --, e.g. `vrepa launch --workers 2 -- train --config c.json --out runs/a`');
      if (rest[0] === 'launch') throw new ConfigError('vrepa launch: the command after -- cannot be launch itself');
      if (process.env.TF_CONFIG) process.stderr.write('vrepa launch: note: replacing the TF_CONFIG of this shell with a local cluster\n');
      // The same vrepa entry point this process runs, with the same node options.
      const entry = process.argv[1]!;
      const r = await launchWorkers({
        workers,
        command: process.execPath,
        args: [...process.execArgv, entry, ...rest],
        ports: portBase ? Array.from({ length: workers }, (_, i) => portBase + i) : undefined,
        graceMs: grace * 1000,
      });
      process.stderr.write(`vrepa ${r.message}\n`);
      return r.ok ? 0 : 1;
    } catch (e) {
      process.stderr.write(`vrepa launch: ${(e as Error).message}\n`);
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

export const commands: VrepaCommand[] = [trainCommand, prepareCommand, launchCommand, teacherProbeCommand];

/** (Node only.) `vrepa teacher pretrain`: masked video pre-training of a teacher (see pretrain.node.ts). */
import fs from 'node:fs';
import path from 'node:path';
import { commandArgs, initBackend, type VrepaCommand } from '@vrepa/core';
import { PRETRAIN_PRESETS, pretrainPreset, pretrainTeacher } from './pretrain.node.js';

export const TEACHER_PRETRAIN_USAGE = `vrepa teacher pretrain (--config FILE | --preset NAME --data DIR) --out DIR [--resume] [--max-steps N]

Pre-train a VideoMAE-style teacher by masked video modelling (tube masking, encoder on the visible tokens,
per-patch normalised pixel targets; AdamW with the official recipe: lr = base_lr·batch/256, cosine with
warm-up, weight decay 0.05 except biases/norms/tokens, betas 0.9/0.95) on a folder of videos — e.g. the
scenes of 'vrepa physics generate'.

  --config FILE   JSON config (keys: preset, model, model_overrides, init_seed, mask, normalize_target, data,
                  optim, train; missing keys come from the preset, default '${Object.keys(PRETRAIN_PRESETS)[0]}')
  --preset NAME   a preset without a config file (${Object.keys(PRETRAIN_PRESETS).join(', ')}); needs --data
  --data DIR      the folder of videos (overrides data.dir)
  --out DIR       output: log.jsonl, loss.png, reconstruction.png, tensorboard/, checkpoints/, teacher.pth
  --resume        continue from the newest valid checkpoint in --out (exact: same result as one run)
  --max-steps N   stop after step N (the schedule still spans train.steps); a checkpoint is written there
  --no-progress   no progress line

teacher.pth is an official pre-training checkpoint (state dict under 'model'); VideoMAEv2.fromCheckpoint reads
its encoder as a teacher, and 'vrepa teacher probe --checkpoint OUT/teacher.pth --scenes DIR' probes it.
`;

export const teacherPretrainCommand: VrepaCommand = {
  name: 'teacher pretrain',
  summary: 'pre-train a VideoMAE-style teacher (masked video modelling) with checkpoints, exact resume, loss and reconstruction PNGs',
  usage: TEACHER_PRETRAIN_USAGE,
  async run(argv: string[]): Promise<number> {
    const a = commandArgs<Record<string, string | boolean | undefined>>(
      'teacher pretrain',
      argv,
      { config: { type: 'string' }, preset: { type: 'string' }, data: { type: 'string' }, out: { type: 'string' }, resume: { type: 'boolean' }, 'max-steps': { type: 'string' }, 'no-progress': { type: 'boolean' } },
      TEACHER_PRETRAIN_USAGE,
      { required: ['out'], positionals: false },
    );
    if (typeof a === 'number') return a;
    const v = a.values;
    const fail = (msg: string, code = 2) => {
      process.stderr.write(`vrepa teacher pretrain: ${msg}\n`);
      return code;
    };
    if (!v.config && !v.preset) return fail('--config FILE or --preset NAME is required');
    if (v.config && v.preset) return fail('give either --config or --preset, not both');
    let maxSteps: number | undefined;
    if (v['max-steps'] !== undefined) {
      maxSteps = Number(v['max-steps']);
      if (!Number.isInteger(maxSteps) || maxSteps < 1) return fail(`--max-steps must be a positive integer, got '${v['max-steps']}'`);
    }
    let config: Parameters<typeof pretrainTeacher>[0];
    let baseDir = process.cwd();
    try {
      if (v.config) {
        const file = String(v.config);
        if (!fs.existsSync(file)) return fail(`config file ${file} does not exist`);
        const raw = JSON.parse(fs.readFileSync(file, 'utf8')) as Record<string, unknown>;
        baseDir = path.dirname(path.resolve(file));
        if (v.data) raw.data = { ...((raw.data as object) ?? {}), dir: path.resolve(String(v.data)) };
        config = raw as never;
      } else {
        if (!v.data) return fail('--preset needs --data DIR (a folder of videos)');
        config = pretrainPreset(String(v.preset), { data: { dir: path.resolve(String(v.data)) } });
      }
    } catch (e) {
      return fail((e as Error).message);
    }
    try {
      const backend = await initBackend({ quiet: true });
      process.stderr.write(`vrepa teacher pretrain: backend ${backend.name}\n`);
      const r = await pretrainTeacher(config, { out: path.resolve(String(v.out)), resume: !!v.resume, maxSteps, baseDir, progress: !v['no-progress'] });
      const f = (x: number | null) => (x === null ? 'n/a' : x.toFixed(4));
      process.stderr.write(
        `vrepa teacher pretrain: ${r.stepsRun} steps in ${r.seconds.toFixed(1)} s${r.resumedFrom !== null ? ` (resumed from step ${r.resumedFrom})` : ''}; loss ${f(r.lossStart)} → ${f(r.lossEnd)} (first/last 10% of steps); ${r.clips} clips${r.skipped.length ? `, ${r.skipped.length} skipped` : ''}\n` +
          `vrepa teacher pretrain: teacher ${r.teacher}, log ${r.logFile}${r.lossPlot ? `, ${r.lossPlot}` : ''}, ${r.reconstruction}\n`,
      );
      return 0;
    } catch (e) {
      process.stderr.write(`vrepa teacher pretrain: ${(e as Error).message}\n`);
      return /config|--max-steps/.test((e as Error).message) ? 2 : 1;
    }
  },
};

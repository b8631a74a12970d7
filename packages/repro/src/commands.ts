/** `vrepa repro`. */
import path from 'node:path';
import fs from 'node:fs';
import { commandArgs, initBackend, UsageError, type VrepaCommand } from '@vrepa/core';
import type { Subset } from '@vrepa/eval';
import { PRESET_NAMES, reproPreset } from './presets.js';
import { runStudy } from './study.js';
import { writeReport } from './report.js';

const USAGE = `vrepa repro --preset ${PRESET_NAMES.join('|')} --out <dir> [options]

VideoREPA's claim reproduced at toy scale: physics scenes (train/val/test splits, captions) → teacher →
a small CogVideoX pretrained with diffusion only → finetuning arms (diffusion only, +REPA, +TRD, TRD
spatial only, TRD temporal only) × seeds → OCP probes, generated-clip physics, held-out diffusion loss and
TRD, all on the test split → <dir>/report.md and a self-contained <dir>/report.html.

Every stage is cached in <dir>/stages/<name>-<hash of its config>/: a re-run (or --resume after a crash)
reuses every finished stage, and a changed setting reruns only the stages it affects.

  --preset <name>       toy (≤ 30 min on 2 CPU cores) or smoke (< 3 min; checks the pipeline, not the science)
  --out <dir>           output folder
  --seeds <n>           seeds 1..n for the diffusion / REPA / TRD arms (toy: 3)
  --data-seed <s>       scene seed of the whole dataset (other data, same study)
  --subsets <list>      comma-separated scene subsets (roll,contain,collide,drop,dominoes,support)
  --sweep               also run the validation sweep (teacher recipes vs raw pixels; TRD λ, margin, align
                        layer, steps vs diffusion only), judged on the validation split only, and the preset's
                        follow-up (the sweep's choice, confirmed once on the test split), into the report
  --sweep-only          run only the stages the sweep needs and the sweep (no report); e.g. beside a running
                        study in the same --out, then '--resume --sweep' writes the report from the caches
  --resume              continue in a folder that already holds stages (without it such a folder is refused)
  -h, --help            this text`;

export const reproCommand: VrepaCommand = {
  name: 'repro',
  summary: "reproduce VideoREPA's claim at toy scale on a CPU (cached stages, report with intervals)",
  usage: USAGE,
  async run(argv: string[]): Promise<number> {
    const a = commandArgs<Record<string, string | boolean | undefined>>(
      'repro',
      argv,
      { preset: { type: 'string' }, out: { type: 'string' }, seeds: { type: 'string' }, 'data-seed': { type: 'string' }, subsets: { type: 'string' }, resume: { type: 'boolean' }, sweep: { type: 'boolean' }, 'sweep-only': { type: 'boolean' } },
      USAGE,
      { required: ['preset', 'out'], positionals: false },
    );
    if (typeof a === 'number') return a;
    const v = a.values;
    const int = (name: string) => {
      const s = v[name] as string | undefined;
      if (s === undefined) return undefined;
      if (!/^\d+$/.test(s)) throw new UsageError(`vrepa repro: --${name} must be a non-negative integer, got '${s}'`);
      return Number(s);
    };
    try {
      let config: ReturnType<typeof reproPreset>;
      try {
        config = reproPreset(String(v.preset), {
          seeds: int('seeds'),
          dataSeed: int('data-seed'),
          subsets: typeof v.subsets === 'string' ? (v.subsets.split(',').map((s) => s.trim()).filter(Boolean) as Subset[]) : undefined,
        });
      } catch (e) {
        throw e instanceof UsageError ? e : new UsageError((e as Error).message);
      }
      const out = path.resolve(String(v.out));
      if (!v.resume && fs.existsSync(path.join(out, 'stages')) && fs.readdirSync(path.join(out, 'stages')).length > 0)
        throw new UsageError(`vrepa repro: ${out} already holds stages; pass --resume to reuse them, or choose another --out`);
      const backend = await initBackend({ quiet: true });
      process.stderr.write(`vrepa repro: preset ${config.preset}, backend ${backend.name}, out ${out}\n`);
      if (v['sweep-only']) {
        const s = await runStudy(config, { out, sweepOnly: true });
        process.stderr.write(`vrepa repro: sweep done in ${s.seconds.toFixed(1)} s (${s.sweep.length} variants); '--resume --sweep' writes the report\n`);
        return 0;
      }
      const r = await runStudy(config, { out, sweep: !!v.sweep });
      const files = await writeReport(r, out);
      process.stderr.write(`vrepa repro: done in ${r.seconds.toFixed(1)} s; report ${files.md} and ${files.html}\n`);
      return 0;
    } catch (e) {
      process.stderr.write(`vrepa repro: ${(e as Error).message}\n`);
      return e instanceof UsageError ? 2 : 1;
    }
  },
};

export const commands: VrepaCommand[] = [reproCommand];

import fs from 'node:fs';
import path from 'node:path';
import { parseCommandArgs, UsageError, type VrepaCommand } from '@vrepa/core';
import { numberOption, runCommand } from './args.js';
import { vegaLiteToPng } from './chart.js';
import { parseVideoPhyRatings, scoreVideoPhy, videoPhyChartSpec, videoPhyCsv, videoPhyMarkdown, type VideoPhyScale } from './videophy.js';

const usage = `vrepa videophy score RATINGS.csv [options]

Score rated videos the VideoPhy / VideoPhy2 way: binarise semantic adherence (sa) and physical commonsense (pc)
(VideoPhy: score ≥ 0.5 of [0, 1]; VideoPhy2: ≥ 4 of 1–5), then per model the % of videos with SA, PC and SA∧PC
per category and overall, with bootstrap percentile intervals. Prints the Markdown table (paper Table 1 layout).

Input columns: model, caption, sa, pc, and states_of_matter (solid_solid | solid_fluid | fluid_fluid; required
for VideoPhy). VideoPhy2 uses a 'category' (else 'states_of_matter') column if present.

Options:
  --scale videophy|videophy2   score scale and threshold (default videophy)
  --json FILE                  write {"<model>": {"<category>|overall": {"sa", "pc", "sa_pc", "n", "*_ci"}}} (percent)
  --csv FILE                   write the long-format table (one row per model and category)
  --md FILE                    write the Markdown table
  --png FILE                   write a grouped bar chart (SA, PC, SA∧PC panels)
  --bootstrap N                bootstrap resamples (default 1000; 0 = no intervals)
  --level P                    interval level (default 0.95)
  --seed N                     bootstrap seed (default 0)
  --ci                         show the intervals in the printed table
`;

export const videophyScoreCommand: VrepaCommand = {
  name: 'videophy score',
  summary: 'VideoPhy / VideoPhy2 SA, PC and SA∧PC tables (Markdown, CSV, JSON, PNG) with bootstrap intervals',
  usage,
  run: (argv) =>
    runCommand(usage, argv, async () => {
      const cmd = 'videophy score';
      const a = parseCommandArgs(cmd, argv, {
        scale: { type: 'string' },
        json: { type: 'string' },
        csv: { type: 'string' },
        md: { type: 'string' },
        png: { type: 'string' },
        bootstrap: { type: 'string' },
        level: { type: 'string' },
        seed: { type: 'string' },
        ci: { type: 'boolean' },
      });
      if (a.positionals.length !== 1) throw new UsageError(`vrepa ${cmd}: expected one ratings CSV file, got ${a.positionals.length} arguments.`);
      const file = a.positionals[0]!;
      const scale = (a.str('scale') ?? 'videophy') as VideoPhyScale;
      if (scale !== 'videophy' && scale !== 'videophy2') throw new UsageError(`vrepa ${cmd}: --scale must be videophy or videophy2, got '${a.str('scale')}'.`);
      if (!fs.existsSync(file)) throw new Error(`vrepa ${cmd}: ratings file '${file}' does not exist.`);
      const ratings = parseVideoPhyRatings(fs.readFileSync(file, 'utf8'), scale, file);
      const table = scoreVideoPhy(ratings, {
        scale,
        bootstrap: numberOption(cmd, 'bootstrap', a.str('bootstrap'), 1000, { integer: true, min: 0 }),
        level: numberOption(cmd, 'level', a.str('level'), 0.95, { min: 0.5, max: 0.999 }),
        seed: numberOption(cmd, 'seed', a.str('seed'), 0, { integer: true }),
      });
      const md = videoPhyMarkdown(table, { withCi: a.flag('ci') });
      process.stdout.write(md);
      const write = (f: string | undefined, data: string | Buffer) => {
        if (!f) return;
        fs.mkdirSync(path.dirname(path.resolve(f)), { recursive: true });
        fs.writeFileSync(f, data);
      };
      write(a.str('json'), JSON.stringify(table, null, 2) + '\n');
      write(a.str('csv'), videoPhyCsv(table));
      write(a.str('md'), a.flag('ci') ? md : videoPhyMarkdown(table));
      if (a.str('png')) write(a.str('png'), await vegaLiteToPng(videoPhyChartSpec(table, scale === 'videophy' ? 'VideoPhy' : 'VideoPhy2')));
      return 0;
    }),
};

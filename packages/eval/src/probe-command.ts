import fs from 'node:fs';
import path from 'node:path';
import { parseCommandArgs, UsageError, type VrepaCommand } from '@vrepa/core';
import { numberOption, runCommand } from './args.js';
import { progressBar } from './physion.js';
import { readFeatureFile } from './feature-file.js';
import { DEFAULT_RELATIVE_LAMBDAS, LinearProbe, ProbeInputError, trainProbe } from './probe.js';

const usage = `vrepa probe --features FEATS.safetensors [options]

Linear probe (Physion OCP protocol): standardised features, L2-regularised logistic regression with the
regularisation chosen by inner cross-validation, stratified k-fold held-out accuracy (mean ± std over folds) and
per-subset accuracy; then fits the final probe on all rows and saves it.

FEATS.safetensors: 'features' [N, D] float, 'labels' [N] (0/1, any integer or float dtype), optional 'groups' [N]
(subset ids; metadata 'group_names' = JSON list of names).

Options:
  --folds K            outer stratified folds (default 5)
  --inner-folds K      inner folds for choosing the regularisation (default 3)
  --lambdas a,b,...    regularisation grid, relative to the mean squared norm of a standardised row
                       (default ${DEFAULT_RELATIVE_LAMBDAS.join(',')})
  --seed N             fold shuffling seed (default 0)
  --save FILE          where to save the fitted probe (default: FEATS with .probe.safetensors)
  --no-save            do not fit/save the final probe
  --json FILE          write {"accuracy", "std", "folds", "n", "d", "fold_accuracies", "per_group", ...}
  --apply PROBE        instead: apply a saved probe to FEATS and report its accuracy (labels required)
`;

export const probeCommand: VrepaCommand = {
  name: 'probe',
  summary: 'Linear probe with stratified k-fold CV (inner CV for L2), per-subset accuracy; saves the probe',
  usage,
  run: (argv) =>
    runCommand(usage, argv, async () => {
      const cmd = 'probe';
      const a = parseCommandArgs(cmd, argv, {
        features: { type: 'string' },
        folds: { type: 'string' },
        'inner-folds': { type: 'string' },
        lambdas: { type: 'string' },
        seed: { type: 'string' },
        save: { type: 'string' },
        'no-save': { type: 'boolean' },
        json: { type: 'string' },
        apply: { type: 'string' },
      });
      const featsPath = a.str('features') ?? a.positionals[0];
      if (!featsPath) throw new UsageError(`vrepa ${cmd}: --features FILE is required.`);
      if (a.positionals.length > (a.str('features') ? 0 : 1)) throw new UsageError(`vrepa ${cmd}: unexpected argument '${a.positionals.at(-1)}'.`);
      const ds = readFeatureFile(featsPath);
      const writeJson = (obj: unknown) => {
        const f = a.str('json');
        if (!f) return;
        fs.mkdirSync(path.dirname(path.resolve(f)), { recursive: true });
        fs.writeFileSync(f, JSON.stringify(obj, null, 2) + '\n');
      };
      const applyPath = a.str('apply');
      if (applyPath) {
        if (!fs.existsSync(applyPath)) throw new ProbeInputError(`probe file '${applyPath}' does not exist.`);
        const probe = LinearProbe.load(applyPath);
        const p = probe.predictProba(ds.features);
        let correct = 0;
        p.forEach((v, i) => (correct += (v >= 0.5 ? 1 : 0) === ds.labels[i] ? 1 : 0));
        const acc = correct / ds.features.n;
        process.stdout.write(`probe ${applyPath} on ${featsPath}: accuracy ${(100 * acc).toFixed(1)}% (n = ${ds.features.n})\n`);
        writeJson({ accuracy: acc, n: ds.features.n, d: ds.features.d, probe: applyPath });
        return 0;
      }
      let rel: number[] | undefined;
      if (a.str('lambdas') !== undefined) {
        rel = a
          .str('lambdas')!
          .split(',')
          .map((s) => numberOption(cmd, 'lambdas', s, 0, { min: Number.MIN_VALUE }));
      }
      const folds = numberOption(cmd, 'folds', a.str('folds'), 5, { integer: true, min: 2 });
      const tty = process.stderr.isTTY;
      const bars: Record<string, (d: number, t: number) => void> = {};
      const t0 = performance.now();
      const { cv, probe, relativeLambda } = await trainProbe(ds, {
        folds,
        innerFolds: numberOption(cmd, 'inner-folds', a.str('inner-folds'), 3, { integer: true, min: 2 }),
        seed: numberOption(cmd, 'seed', a.str('seed'), 0, { integer: true }),
        relativeLambdas: rel,
        onProgress: tty ? (stage, done, total) => (bars[stage] ??= progressBar(stage === 'gram' ? 'gram matrix' : 'cross-validation'))(done, total) : undefined,
      });
      const secs = (performance.now() - t0) / 1000;
      const pct = (x: number) => (100 * x).toFixed(1);
      const out: string[] = [];
      out.push(`probe: ${featsPath}: N = ${cv.n}, D = ${cv.d}, ${cv.folds}-fold stratified CV → accuracy ${pct(cv.accuracy)}% ± ${pct(cv.std)} (${secs.toFixed(1)} s)`);
      out.push('', '| fold | accuracy % | λ (relative) |', '| ---: | ---: | ---: |');
      cv.foldAccuracies.forEach((acc, f) => out.push(`| ${f + 1} | ${pct(acc)} | ${cv.foldLambdas[f]} |`));
      if (cv.perGroup.length > 0) {
        out.push('', '| subset | n | accuracy % | std over folds |', '| --- | ---: | ---: | ---: |');
        for (const g of cv.perGroup) out.push(`| ${g.name} | ${g.n} | ${pct(g.accuracy)} | ${pct(g.std)} |`);
      }
      let saved: string | undefined;
      if (!a.flag('no-save')) {
        saved = a.str('save') ?? featsPath.replace(/(\.safetensors)?$/, '.probe.safetensors');
        fs.mkdirSync(path.dirname(path.resolve(saved)), { recursive: true });
        probe.save(saved);
        out.push('', `final probe (λ relative ${relativeLambda}, fitted on all ${cv.n} rows) saved to ${saved}`);
      }
      process.stdout.write(out.join('\n') + '\n');
      writeJson({
        accuracy: cv.accuracy,
        std: cv.std,
        folds: cv.folds,
        n: cv.n,
        d: cv.d,
        fold_accuracies: cv.foldAccuracies,
        fold_relative_lambdas: cv.foldLambdas,
        per_group: Object.fromEntries(cv.perGroup.map((g) => [g.name, { n: g.n, accuracy: g.accuracy, std: g.std }])),
        relative_lambda: relativeLambda,
        probe: saved ?? null,
        seconds: secs,
      });
      return 0;
    }),
};

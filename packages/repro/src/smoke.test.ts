/**
 * The pipeline end to end at the smoke preset (CI): every stage runs, the report holds the table, the
 * computed conclusions and inlined figures, and a re-run reuses every stage. It checks the pipeline, not the
 * science.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { reproPreset } from './presets.js';
import { runStudy } from './study.js';
import { writeReport } from './report.js';
import { reproCommand } from './commands.js';

const out = fs.mkdtempSync(path.join(os.tmpdir(), 'repro-smoke-'));
afterAll(() => fs.rmSync(out, { recursive: true, force: true }));

describe('vrepa repro --preset smoke', () => {
  it('runs every stage and writes the report; a second run is fully cached', async () => {
    const config = reproPreset('smoke');
    const r = await runStudy(config, { out, log: () => {}, sweep: true });
    const names = r.stages.map((s) => s.name);
    expect(names.slice(0, 4)).toEqual(['data', 'latents', 'teacher', 'pretrain']);
    // (a)–(c) with every seed, (d), (e) with the first
    expect(names.filter((n) => n.startsWith('arm-')).sort()).toEqual(['arm-diffusion-s1', 'arm-diffusion-s2', 'arm-repa-s1', 'arm-repa-s2', 'arm-trd-s1', 'arm-trd-s2', 'arm-trd-spatial-s1', 'arm-trd-temporal-s1']);
    expect(r.evals).toHaveLength(9);
    for (const e of r.evals) {
      expect(e.probe.accuracy).toBeGreaterThanOrEqual(0);
      expect(e.probe.accuracy).toBeLessThanOrEqual(1);
      expect(Number.isFinite(e.diffusionLoss)).toBe(true);
      expect(e.continuations).toHaveLength(config.eval.continuations);
    }
    const files = await writeReport(r, out);
    const md = fs.readFileSync(files.md, 'utf8');
    expect(md).toMatch(/\*\*TRD vs diffusion only, OCP probe accuracy \(test\):\*\* [+-]\d+\.\d points/);
    expect(md).toContain('| +TRD (official) | 2 |');
    expect(md).toContain('## Stage times');
    expect(r.sweep.map((v) => v.name)).toEqual(config.sweep.variants.map((v) => v.name));
    expect(md).toMatch(/\*\*Sweep result \(computed\):\*\* the best TRD variant on validation is trd-/);
    // the teacher part: the study's own teacher (its cached val tokens) and each other recipe, against pixels on the same folds
    expect(r.teacherSweep!.teachers.map((t) => [t.name, t.chosen])).toEqual([['study teacher', true], ...config.sweep.teachers.map((t) => [t.name, false])]);
    expect(names).toContain('sweep-teacher-future1');
    for (const t of r.teacherSweep!.teachers) expect(t.probe.foldAccuracies).toHaveLength(r.teacherSweep!.pixels.foldAccuracies.length);
    expect(md).toMatch(/## Teacher choice \(validation split only\)[\s\S]*\| future1 \| 3 \| 0\.75 \| 1 \|/);
    expect(md).toMatch(/\*\*Teacher choice \(computed\):\*\* the best recipe on validation is /);
    // the sweep's choice on test: variant and reference with every seed, one paired conclusion
    expect(r.followUp!.runs.map((x) => [x.seed, x.variant.arm, x.reference.arm])).toEqual(config.seeds.map((s) => [s, 'trd-margin0', 'diffusion']));
    expect(names).toContain('followup-eval-trd-margin0-s2');
    expect(md).toMatch(/\*\*The validation sweep's choice on the test split \(trd-margin0: λ 0\.5, margin 0, layer 1, 3 steps, vs diffusion\), OCP probe accuracy:\*\* [+-]\d+\.\d points/);
    expect(md).toContain("## The sweep's choice, confirmed on the test split (trd-margin0)");
    const html = fs.readFileSync(files.html, 'utf8');
    expect(html).toContain('data:image/png;base64,');
    expect(html).not.toMatch(/<img[^>]+src="(?!data:)/);
    expect(fs.statSync(files.figure).size).toBeGreaterThan(1000);

    const again = await runStudy(config, { out, log: () => {}, sweep: true });
    expect(again.stages.every((s) => s.cached)).toBe(true);
    expect(again.evals.map((e) => e.probe.accuracy)).toEqual(r.evals.map((e) => e.probe.accuracy));
  }, 600_000);

  it('refuses a folder with stages unless --resume, and bad options with a usage error', async () => {
    const used = fs.mkdtempSync(path.join(os.tmpdir(), 'repro-used-'));
    fs.mkdirSync(path.join(used, 'stages', 'data-0123456789ab'), { recursive: true });
    const err: string[] = [];
    const write = process.stderr.write.bind(process.stderr);
    process.stderr.write = ((s: string) => (err.push(String(s)), true)) as typeof process.stderr.write;
    try {
      expect(await reproCommand.run(['--preset', 'smoke', '--out', used])).toBe(2);
      expect(err.join('')).toMatch(/already holds stages; pass --resume/);
      expect(await reproCommand.run(['--preset', 'huge', '--out', out, '--resume'])).toBe(2);
      expect(err.join('')).toMatch(/unknown preset 'huge'/);
      expect(await reproCommand.run(['--preset', 'smoke', '--out', out, '--subsets', 'roll,nope', '--resume'])).toBe(2);
      expect(err.join('')).toMatch(/unknown subset\(s\) nope/);
    } finally {
      process.stderr.write = write;
      fs.rmSync(used, { recursive: true, force: true });
    }
  });
});

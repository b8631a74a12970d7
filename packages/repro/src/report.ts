/**
 * The report: summaries with 95% intervals computed from the study's numbers, the conclusion sentences
 * computed from those intervals (never typed), plots (vega-lite → PNG), `report.md` with the PNGs beside it
 * and a self-contained `report.html` with the PNGs inlined as data URIs.
 */
import fs from 'node:fs';
import path from 'node:path';
import { vegaLiteToPng } from '@vrepa/eval';
import type { ClipScore } from './measures.js';
import type { ArmName } from './presets.js';
import { describeDifference, mean, pairedDifference, tInterval, type Interval } from './stats.js';
import { writeFileAtomic } from './stages.js';
import type { ModelEval, StudyResult } from './study.js';

export interface ArmSummary {
  arm: string;
  label: string;
  seeds: number[];
  /** per seed */
  probe: number[];
  /** std over folds and seeds together */
  probeFoldSeedStd: number;
  probeCi: Interval;
  diffusionLoss: Interval;
  trdProjected: Interval;
  trdRaw: Interval;
  positionError: Interval;
  contactAccuracy: Interval;
  captionJumps: Interval;
  captionMissing: Interval;
  captionInterpenetration: Interval;
  captionGravity: Interval;
}

const finiteMean = (xs: number[]) => {
  const f = xs.filter(Number.isFinite);
  return f.length ? mean(f) : NaN;
};

function contactAccuracy(s: ClipScore[]): number {
  const judged = s.filter((x) => x.predictedContact !== null);
  return judged.length ? judged.filter((x) => x.predictedContact === x.label).length / judged.length : NaN;
}

export function summarise(r: StudyResult): ArmSummary[] {
  const groups: { arm: string; label: string; evals: ModelEval[] }[] = [{ arm: 'pretrained', label: 'pretrained (before finetuning)', evals: r.evals.filter((e) => e.arm === 'pretrained') }];
  for (const a of r.config.arms) groups.push({ arm: a.name, label: a.label, evals: r.evals.filter((e) => e.arm === a.name) });
  return groups
    .filter((g) => g.evals.length)
    .map((g) => {
      const folds = g.evals.flatMap((e) => e.probe.foldAccuracies);
      const per = (f: (e: ModelEval) => number) => g.evals.map(f);
      return {
        arm: g.arm,
        label: g.label,
        seeds: g.evals.map((e) => e.seed ?? 0),
        probe: per((e) => e.probe.accuracy),
        probeFoldSeedStd: Math.sqrt(folds.reduce((a, x) => a + (x - mean(folds)) ** 2, 0) / folds.length),
        probeCi: tInterval(per((e) => e.probe.accuracy)),
        diffusionLoss: tInterval(per((e) => e.diffusionLoss)),
        trdProjected: tInterval(per((e) => e.trdProjected ?? NaN)),
        trdRaw: tInterval(per((e) => e.trdRaw)),
        positionError: tInterval(per((e) => finiteMean(e.continuations.map((s) => s.positionErrorPx)))),
        contactAccuracy: tInterval(per((e) => contactAccuracy(e.continuations))),
        captionJumps: tInterval(per((e) => finiteMean(e.captionOnly.map((s) => s.jumpFrames)))),
        captionMissing: tInterval(per((e) => finiteMean(e.captionOnly.map((s) => s.missingFrames)))),
        captionInterpenetration: tInterval(per((e) => finiteMean(e.captionOnly.map((s) => s.interpenetrationFrames)))),
        captionGravity: tInterval(per((e) => finiteMean(e.captionOnly.map((s) => s.gravityViolationRate)))),
      };
    });
}

/** Paired (same seed) difference of a per-seed measure between two arms. */
export function armDifference(r: StudyResult, a: ArmName, b: ArmName, f: (e: ModelEval) => number): Interval | null {
  const ea = r.evals.filter((e) => e.arm === a);
  const eb = r.evals.filter((e) => e.arm === b);
  const seeds = ea.map((e) => e.seed).filter((s) => eb.some((x) => x.seed === s));
  if (!seeds.length) return null;
  return pairedDifference(
    seeds.map((s) => f(ea.find((e) => e.seed === s)!)),
    seeds.map((s) => f(eb.find((e) => e.seed === s)!)),
  );
}

/** The conclusion, computed from the intervals. */
export function conclusions(r: StudyResult): string[] {
  const out: string[] = [];
  const probe = (e: ModelEval) => e.probe.accuracy;
  const verdict = (d: ReturnType<typeof describeDifference>, better: string, worse: string) => (!d.hasInterval ? 'one value, no interval: no conclusion (run more seeds)' : d.significant ? (d.sign > 0 ? better : worse) : 'no difference the interval can resolve (it includes 0)');
  for (const [a, b, what] of [
    ['trd', 'diffusion', 'TRD vs diffusion only'],
    ['repa', 'diffusion', 'REPA vs diffusion only'],
    ['trd', 'repa', 'TRD vs REPA'],
    ['trd-spatial', 'diffusion', 'TRD spatial only vs diffusion only'],
    ['trd-temporal', 'diffusion', 'TRD temporal only vs diffusion only'],
  ] as [ArmName, ArmName, string][]) {
    const d = armDifference(r, a, b, probe);
    if (!d) continue;
    const t = describeDifference(d);
    out.push(`**${what}, OCP probe accuracy (test):** ${t.text} over ${d.n} paired seed(s) — ${verdict(t, `${a} is higher`, `${a} is lower`)}.`);
  }
  const pix = r.baselines.pixels.accuracy;
  const teach = r.baselines.teacher.accuracy;
  const tp = describeDifference(pairedDifference(r.baselines.teacher.foldAccuracies, r.baselines.pixels.foldAccuracies));
  out.push(`**Teacher vs raw pixels (OCP probe from the context frames, test):** ${(100 * teach).toFixed(1)}% vs ${(100 * pix).toFixed(1)}%, ${tp.text} paired over the same folds — ${tp.significant ? (tp.sign > 0 ? 'the teacher is above the pixels' : 'the teacher is below the pixels') : 'the teacher is NOT resolvably above the pixels'}.`);
  const tr0 = describeDifference(pairedDifference(r.baselines.teacher.foldAccuracies, r.baselines.randomTeacher.foldAccuracies));
  out.push(`**Pretrained vs random-init teacher (same probe):** ${tr0.text} — ${tr0.significant ? (tr0.sign > 0 ? 'pretraining helped the probe' : 'pretraining hurt the probe') : 'no resolvable effect of pretraining on the probe'}.`);
  const fu = followUpDifference(r);
  if (fu) {
    const t = describeDifference(fu.d);
    out.push(`**The validation sweep's choice on the test split (${fu.what}), OCP probe accuracy:** ${t.text} over ${fu.d.n} paired seed(s) — ${verdict(t, 'the chosen variant is higher', 'the chosen variant is lower')}.`);
  }
  const dl = armDifference(r, 'trd', 'diffusion', (e) => e.diffusionLoss);
  if (dl) {
    const t = describeDifference(dl, 1, '', 4);
    out.push(`**TRD vs diffusion only, held-out diffusion loss:** ${t.text} — ${verdict(t, 'TRD traded some diffusion quality away', 'TRD fits held-out clips better')}.`);
  }
  const pe = armDifference(r, 'trd', 'diffusion', (e) => finiteMean(e.continuations.map((s) => s.positionErrorPx)));
  if (pe) {
    const t = describeDifference(pe, 1, 'px', 2);
    out.push(`**TRD vs diffusion only, continuation position error after the context:** ${t.text} — ${verdict(t, 'TRD continuations are further from the simulator', 'TRD continuations are closer to the simulator')}.`);
  }
  const tr = armDifference(r, 'trd', 'diffusion', (e) => e.trdRaw);
  if (tr) {
    const t = describeDifference(tr, 1, '', 4);
    out.push(`**TRD to the teacher on unseen clips (raw align-layer tokens), TRD vs diffusion only:** ${t.text} — ${verdict(t, 'the TRD arm is further from the teacher', 'the alignment transferred to held-out clips')}.`);
  }
  return out;
}

const pct = (x: number) => (Number.isFinite(x) ? (100 * x).toFixed(1) : '—');
const num = (x: number, d = 3) => (Number.isFinite(x) ? x.toFixed(d) : '—');
const ci = (i: Interval, f: (x: number) => string) => (i.n === 0 ? '—' : i.n === 1 ? `${f(i.mean)} (1 seed)` : `${f(i.mean)} [${f(i.lo)}, ${f(i.hi)}]`);

async function plots(r: StudyResult, s: ArmSummary[], dir: string): Promise<Record<string, string>> {
  const files: Record<string, string> = {};
  const bars = [
    { name: 'raw pixels', mean: r.baselines.pixels.accuracy * 100, lo: (r.baselines.pixels.accuracy - r.baselines.pixels.std) * 100, hi: (r.baselines.pixels.accuracy + r.baselines.pixels.std) * 100, kind: 'baseline' },
    { name: 'teacher (random init)', mean: r.baselines.randomTeacher.accuracy * 100, lo: (r.baselines.randomTeacher.accuracy - r.baselines.randomTeacher.std) * 100, hi: (r.baselines.randomTeacher.accuracy + r.baselines.randomTeacher.std) * 100, kind: 'baseline' },
    { name: 'teacher', mean: r.baselines.teacher.accuracy * 100, lo: (r.baselines.teacher.accuracy - r.baselines.teacher.std) * 100, hi: (r.baselines.teacher.accuracy + r.baselines.teacher.std) * 100, kind: 'baseline' },
    ...s.map((a) => {
      const m = mean(a.probe) * 100;
      const e = a.probeFoldSeedStd * 100;
      return { name: a.label, mean: m, lo: m - e, hi: m + e, kind: a.arm === 'pretrained' ? 'pretrained' : 'arm' };
    }),
  ];
  const order = bars.map((b) => b.name);
  files.probe = 'probe.png';
  fs.writeFileSync(
    path.join(dir, files.probe),
    await vegaLiteToPng({
      $schema: 'https://vega.github.io/schema/vega-lite/v5.json',
      title: 'OCP probe accuracy on the test split (mean ± std over folds and seeds)',
      width: 460,
      height: 22 * bars.length,
      data: { values: bars },
      layer: [
        { mark: { type: 'bar', clip: true }, encoding: { y: { field: 'name', type: 'nominal', sort: order, title: null, axis: { labelLimit: 260 } }, x: { field: 'mean', type: 'quantitative', title: 'accuracy (%)', scale: { domain: [40, 80], clamp: true } }, color: { field: 'kind', type: 'nominal', title: null } } },
        { mark: { type: 'rule', strokeWidth: 2, clip: true }, encoding: { y: { field: 'name', type: 'nominal', sort: order }, x: { field: 'lo', type: 'quantitative' }, x2: { field: 'hi' } } },
        { mark: { type: 'text', align: 'left', dx: 4, fontSize: 10 }, encoding: { y: { field: 'name', type: 'nominal', sort: order }, x: { field: 'hi', type: 'quantitative' }, text: { field: 'mean', type: 'quantitative', format: '.1f' } } },
        { mark: { type: 'rule', strokeDash: [4, 4], color: 'gray' }, encoding: { x: { datum: 50 } } },
      ],
    }),
  );
  // per-step losses are noisy (one batch, random timesteps): a trailing mean over 10 steps
  const smooth = (xs: { step: number; v: number }[]) => xs.map((x, i) => ({ step: x.step, v: mean(xs.slice(Math.max(0, i - 9), i + 1).map((y) => y.v)) }));
  const pts: { run: string; step: number; loss: number; panel: string }[] = [];
  for (const c of r.curves) {
    const pre = c.id === 'pretrained';
    const d = smooth(c.log.filter((l) => l.loss_diff !== null).map((l) => ({ step: l.step, v: l.loss_diff! })));
    const a = smooth(c.log.filter((l) => l.loss_align !== null).map((l) => ({ step: l.step, v: l.loss_align! })));
    for (const x of d) pts.push({ run: c.id, step: x.step, loss: x.v, panel: pre ? '1. pretraining: diffusion loss' : '2. arms: diffusion loss' });
    for (const x of a) pts.push({ run: c.id, step: x.step, loss: x.v, panel: '3. arms: alignment loss (TRD / REPA)' });
  }
  files.curves = 'curves.png';
  fs.writeFileSync(
    path.join(dir, files.curves),
    await vegaLiteToPng({
      $schema: 'https://vega.github.io/schema/vega-lite/v5.json',
      title: 'Training curves (trailing mean over 10 steps)',
      data: { values: pts },
      facet: { column: { field: 'panel', type: 'nominal', title: null } },
      spec: { width: 260, height: 200, mark: { type: 'line', strokeWidth: 1 }, encoding: { x: { field: 'step', type: 'quantitative' }, y: { field: 'loss', type: 'quantitative', scale: { zero: false } }, color: { field: 'run', type: 'nominal' } } },
      resolve: { scale: { y: 'independent', x: 'independent' } },
    }),
  );
  if (r.teacherCurve.length) {
    files.teacher = 'teacher-curve.png';
    fs.writeFileSync(
      path.join(dir, files.teacher),
      await vegaLiteToPng({ $schema: 'https://vega.github.io/schema/vega-lite/v5.json', title: 'Teacher pretraining loss', width: 300, height: 160, data: { values: r.teacherCurve }, mark: 'line', encoding: { x: { field: 'step', type: 'quantitative' }, y: { field: 'loss', type: 'quantitative' } } }),
    );
  }
  return files;
}

export interface ReportFiles {
  md: string;
  html: string;
  figure: string;
}

/** Write OUT/report.md, OUT/report.html and the PNGs; returns the paths. */
export async function writeReport(r: StudyResult, out: string): Promise<ReportFiles> {
  const s = summarise(r);
  const files = await plots(r, s, out);
  // every arm's generations for the same prompts and seeds
  const sheets: { title: string; file: string }[] = [];
  for (const e of r.evals) {
    if (e.seed !== null && e.seed !== r.config.seeds[0]) continue;
    for (const [kind, src] of [
      ['continuations', e.sheet],
      ['captions', e.captionSheet],
    ] as const) {
      if (!fs.existsSync(src)) continue;
      const name = `sheet-${e.id}-${kind}.png`;
      fs.copyFileSync(src, path.join(out, name));
      sheets.push({ title: `${e.id}: ${kind === 'continuations' ? 'continuations (each pair of rows: simulator, then model; frames 0, last context, middle, last)' : 'from captions alone (rows: the caption scene\u2019s simulator clip, then the model)'}`, file: name });
    }
  }
  const c = r.config;
  const concl = conclusions(r);
  const md: string[] = [];
  md.push(`# vrepa repro — preset \`${c.preset}\``, '');
  md.push(`VideoREPA's claim at toy scale: does aligning a video diffusion model's middle block to a video teacher with TRD raise the physics understanding of its features (OCP probe) and the physics of its videos? Everything below is measured on the **test split** (${r.evals[0]?.probe.n ?? 0} clips), never used for any choice.`, '');
  md.push('## Conclusion (computed from the numbers)', '', ...concl.map((x) => `- ${x}`), '');
  md.push(`![OCP probe accuracy](${files.probe})`, '');
  md.push('## Numbers (mean over seeds, 95% t interval over seeds in brackets)', '');
  md.push('| model | seeds | OCP probe acc. % | ± std folds×seeds | held-out diffusion loss | TRD to teacher (own projector) | TRD to teacher (raw tokens) | continuation pos. error px | contact acc. % (continuations) | caption-only jump frames | missing frames | interpenetration frames | gravity violations % |');
  md.push('|---|---|---|---|---|---|---|---|---|---|---|---|---|');
  for (const a of s)
    md.push(
      `| ${a.label} | ${a.seeds.length} | ${ci(a.probeCi, pct)} | ${pct(a.probeFoldSeedStd)} | ${ci(a.diffusionLoss, (x) => num(x, 4))} | ${ci(a.trdProjected, (x) => num(x, 4))} | ${ci(a.trdRaw, (x) => num(x, 4))} | ${ci(a.positionError, (x) => num(x, 2))} | ${ci(a.contactAccuracy, pct)} | ${ci(a.captionJumps, (x) => num(x, 2))} | ${ci(a.captionMissing, (x) => num(x, 2))} | ${ci(a.captionInterpenetration, (x) => num(x, 2))} | ${ci(a.captionGravity, pct)} |`,
    );
  const b = r.baselines;
  const gt = b.groundTruth;
  md.push('', '| baseline (same folds) | OCP probe acc. % | ± std over folds |', '|---|---|---|');
  md.push(`| raw pixels (context frames) | ${pct(b.pixels.accuracy)} | ${pct(b.pixels.std)} |`);
  md.push(`| teacher | ${pct(b.teacher.accuracy)} | ${pct(b.teacher.std)} |`);
  md.push(`| teacher architecture, random init | ${pct(b.randomTeacher.accuracy)} | ${pct(b.randomTeacher.std)} |`);
  md.push(`| *diagnostic:* teacher on the whole clip (contact visible) | ${pct(b.teacherFullClip.accuracy)} | ${pct(b.teacherFullClip.std)} |`);
  md.push(`| *diagnostic:* raw pixels of the whole clip | ${pct(b.pixelsFullClip.accuracy)} | ${pct(b.pixelsFullClip.std)} |`);
  md.push('', `Scorer check on the simulator's own clips (the same ${gt.length} scenes the continuations use): position error ${num(finiteMean(gt.map((x) => x.positionErrorPx)), 2)} px, contact accuracy ${pct(contactAccuracy(gt))}%, jump frames ${num(finiteMean(gt.map((x) => x.jumpFrames)), 2)}, gravity violations ${pct(finiteMean(gt.map((x) => x.gravityViolationRate)))}%.`, '');
  md.push('Per seed (probe accuracy %): ' + s.map((a) => `${a.arm} ${a.probe.map((p) => pct(p)).join(' / ')}`).join('; '), '');
  md.push('## Training curves', '', `![training curves](${files.curves})`, '');
  if (files.teacher) md.push(`![teacher pretraining](${files.teacher})`, '');
  md.push('## Generations (first seed of every arm; same prompts, context and noise seeds)', '');
  for (const sh of sheets) md.push(`**${sh.title}**`, '', `![${sh.title}](${sh.file})`, '');
  if (r.teacherSweep) {
    const ts = r.teacherSweep;
    md.push('## Teacher choice (validation split only)', '');
    md.push(`Each teacher recipe pretrained on the train split; its context-frame tokens probed on the validation split (${ts.pixels.n} clips, ${ts.pixels.foldAccuracies.length}-fold) next to raw pixels on the same folds (paired 95% t interval over folds). The study's teacher is the preset's recipe; the test split plays no part here.`, '');
    md.push('| teacher recipe | steps | tube mask | future slots | final pretrain loss | val probe acc. % | ± fold std | vs raw pixels |', '|---|---|---|---|---|---|---|---|');
    md.push(`| raw pixels (context frames) | — | — | — | — | ${pct(ts.pixels.accuracy)} | ${pct(ts.pixels.std)} | — |`);
    for (const t of ts.teachers) md.push(`| ${t.chosen ? `**${t.name}** (the study's)` : t.name} | ${t.pretrain.steps} | ${t.pretrain.maskRatio} | ${t.pretrain.futureSlots ?? 0} | ${t.lossEnd === null ? '—' : num(t.lossEnd, 4)} | ${pct(t.probe.accuracy)} | ${pct(t.probe.std)} | ${describeDifference(pairedDifference(t.probe.foldAccuracies, ts.pixels.foldAccuracies)).text} |`);
    const best = [...ts.teachers].sort((a, b) => b.probe.accuracy - a.probe.accuracy)[0];
    const own = ts.teachers.find((t) => t.chosen);
    if (best && own) md.push('', `**Teacher choice (computed):** the best recipe on validation is ${best.name} (${pct(best.probe.accuracy)}%); the study's teacher${best === own ? ' is that recipe' : ` (${pct(own.probe.accuracy)}%) is not — change the preset to it`}.`);
    md.push('');
  }
  if (r.sweep.length) {
    md.push('## Validation sweep (judged on the validation split only; seed ' + c.sweep.seed + ')', '');
    md.push('Each TRD variant against diffusion only with the same steps and align layer; differences are paired over the same probe folds (95% t interval over folds). The test split plays no part here.', '');
    md.push('| variant | λ | margin | layer | steps | val probe acc. % | ± fold std | vs diffusion (same steps, layer) | held-out diffusion loss (val) |', '|---|---|---|---|---|---|---|---|---|');
    for (const line of sweepLines(r)) md.push(line);
    const best = sweepBest(r);
    if (best) md.push('', `**Sweep result (computed):** ${best}`, '');
    md.push('');
  }
  if (r.followUp) {
    const f = r.followUp;
    md.push(`## The sweep's choice, confirmed on the test split (${f.variant.name})`, '');
    md.push(`Chosen on the validation sweep before this table was computed (the preset's \`followUp\`); ${f.variant.name} and its diffusion-only reference ${f.reference.name} (same ${f.variant.steps} steps and align layer ${f.variant.alignLayer}), each with seeds ${f.runs.map((x) => x.seed).join(', ')} from the pretrained model, probed on the test split as the arms are (no generations).`, '');
    md.push('| seed | ' + f.variant.name + ' probe % | ' + f.reference.name + ' probe % | difference | held-out diffusion loss (variant / reference) | TRD to teacher, raw (variant / reference) |', '|---|---|---|---|---|---|');
    for (const x of f.runs) md.push(`| ${x.seed} | ${pct(x.variant.probe.accuracy)} | ${pct(x.reference.probe.accuracy)} | ${((x.variant.probe.accuracy - x.reference.probe.accuracy) * 100 >= 0 ? '+' : '') + ((x.variant.probe.accuracy - x.reference.probe.accuracy) * 100).toFixed(1)} | ${num(x.variant.diffusionLoss, 4)} / ${num(x.reference.diffusionLoss, 4)} | ${num(x.variant.trdRaw, 4)} / ${num(x.reference.trdRaw, 4)} |`);
    const fu = followUpDifference(r);
    if (fu) md.push('', `**Computed:** ${describeDifference(fu.d).text} over ${fu.d.n} paired seeds.`);
    md.push('');
  }
  md.push('## Limits of this configuration (computed from the config and the numbers)', '');
  const width = c.student.heads * c.student.headDim;
  const perToken = 2 * 2 * c.latent.temporal * c.latent.spatial ** 2 * 3;
  if (width < perToken)
    md.push(
      `- The student is ${width} wide but predicts ${perToken} latent values per token (patch 2×2 × ${perToken / 4} channels): its output projection has rank ≤ ${width}, so the denoiser cannot remove the noise outside a ${width}-dimensional subspace of each token's output. Generated clips therefore stay noisy (see the contact sheets), and the generation measures (position error, contact from continuations, caption-only metrics) mostly measure that noise, not physics. A student at least as wide as a token's latent (or a latent with fewer values per token) is the next step for those measures; the probe, held-out loss and TRD measures are not affected by this.`,
    );
  const genErr = finiteMean(r.evals.flatMap((e) => e.continuations.map((x) => x.positionErrorPx)));
  const gtErr = finiteMean(r.baselines.groundTruth.map((x) => x.positionErrorPx));
  md.push(`- Continuation position error: ${num(genErr, 1)} px over every model's generations vs ${num(gtErr, 2)} px for the simulator's own clips through the same scorer (frames ${r.config.data.width}×${r.config.data.height}).`);
  md.push(`- Probe set: ${r.evals[0]?.probe.n ?? 0} test clips, ${c.eval.probeFolds}-fold; one fold's accuracy moves by ${pct(1 / Math.max(1, Math.round((r.evals[0]?.probe.n ?? 1) / c.eval.probeFolds)))} points per clip, and the fold std of every row is in the table: differences smaller than that are not resolvable at this size.`, '');
  md.push('## Setup', '');
  const d = c.data;
  md.push(
    `- **Data**: \`vrepa physics generate\` scenes, subsets ${d.subsets.join(', ')}; ${d.perSubset.train}/${d.perSubset.val}/${d.perSubset.test} clips per subset in train/val/test (contact labels balanced per subset and split); ${d.frames} frames of ${d.width}×${d.height} at ${d.fps} fps; context ${d.context} frames (no contact before it). Split scene seeds derive from (data seed ${d.seed}, split) and are checked disjoint. Captions come from the initial scene parameters only (never the outcome).`,
    `- **Latent space**: a fixed invertible space-to-depth map with CogVideoX's VAE geometry (time ÷${c.latent.temporal} with frame 0 alone, space ÷${c.latent.spatial}) → ${c.latent.temporal * c.latent.spatial ** 2 * 3} channels, shifted by ${num(r.latentSpace.shift, 4)} and scaled by ${num(r.latentSpace.scale, 4)} (train-split pixel mean / 1/std). Chosen over a VAE trained here: exact, free, no reconstruction error inside the physics metrics, and the official latent-frame layout (so the official grid matching applies as is).`,
    `- **Text**: caption words → fixed seeded random vectors (${c.text.dim}-d, ${c.text.length} tokens; an untrained embedding table); the transformer's own text projection learns from them.`,
    `- **Teacher**: VideoMAEv2-style ViT (dim ${c.teacher.embedDim}, depth ${c.teacher.depth}, heads ${c.teacher.numHeads}, patch ${c.teacher.patchSize}, tubelet ${c.teacher.tubeletSize}) on frames 1..${d.frames - 1} at full resolution; pretrained with \`vrepa teacher pretrain\` (@vrepa/teachers pretrainTeacher: VideoMAE masked video modelling, official recipe) on the train split only (${c.teacher.pretrain.steps} steps, batch ${c.teacher.pretrain.batch}, tube mask ${c.teacher.pretrain.maskRatio}${c.teacher.pretrain.futureSlots ? `, and future masking: the last ${c.teacher.pretrain.futureSlots} temporal token slots hidden from the encoder, an extension of the official recipe chosen on the validation split` : ''}); the same architecture at its random init is the control.`,
    `- **Student**: CogVideoX transformer (2B style: sincos positions), ${c.student.layers} blocks, ${c.student.heads}×${c.student.headDim} heads, align layer ${c.student.alignLayer} (middle), projector width ${c.student.projectorDim}; pretrained with diffusion only for ${c.pretrain.steps} steps (lr ${c.pretrain.lr}, batch ${c.pretrain.batch}).`,
    `- **Arms** (all from that checkpoint; ${c.finetune.steps} steps, lr ${c.finetune.lr}, batch ${c.finetune.batch}; seed s fixes data order, noise and timesteps, identical across arms): ${c.arms.map((a) => `${a.label} (λ ${a.lambda}${a.loss.startsWith('trd') && a.lambda > 0 ? `, margin ${a.margin}` : ''}; seeds ${(a.allSeeds ? c.seeds : c.seeds.slice(0, 1)).join(', ')})`).join('; ')}. Grid matching: drop latent frame 0, ×2 in time (official), space: ${c.finetune.gridMatch} (student and teacher grids agree in space at this size).`,
    `- **Measures**: probe = @vrepa/eval's kernel logistic probe (λ by inner CV), ${c.eval.probeFolds}-fold stratified CV, 3 temporal slices × all spatial tokens of the align-layer hidden state on the context clip at t = ${c.eval.probeTimestep}; diffusion loss at t ∈ {${c.eval.lossTimesteps.join(', ')}} on ${c.eval.lossClips} test clips; continuations of ${c.eval.continuations} test scenes from their context latents (replacement method, ${c.eval.sampleSteps} DDIM steps, no guidance); ${c.eval.captionClips} caption-only clips; scored by @vrepa/eval's trajectory metrics (contact predicted = tracked centroids within the objects' equivalent radii + 1 px after the context; gravity violations = share of visible frame triples accelerating downward faster than 1.5·g + 1 px/frame², @vrepa/eval gravityConsistency).`,
    '',
  );
  md.push('## Stage times', '', 'Wall seconds when the stage was built, and the CPU seconds of the process (all threads; independent of what else runs on the machine: on 2 idle cores the wall time is roughly CPU / 1.5–2).', '', '| stage | wall s | CPU s | reused from cache in this run |', '|---|---|---|---|');
  for (const st of r.stages) md.push(`| ${st.name}-${st.hash} | ${st.seconds.toFixed(1)} | ${st.cpuSeconds === null ? '—' : st.cpuSeconds.toFixed(1)} | ${st.cached ? 'yes' : 'no'} |`);
  for (const [what, list] of [
    ['the study', r.stages.filter((st) => !isSweepStage(st.name))],
    ['the validation sweep and its test follow-up', r.stages.filter((st) => isSweepStage(st.name))],
  ] as const) {
    if (!list.length) continue;
    const wall = list.reduce((a, st) => a + st.seconds, 0);
    const cpuKnown = list.filter((st) => st.cpuSeconds !== null);
    md.push(`| **sum over ${what}'s stages** | ${wall.toFixed(1)} (${(wall / 60).toFixed(1)} min) | ${cpuKnown.reduce((a, st) => a + st.cpuSeconds!, 0).toFixed(1)}${cpuKnown.length < list.length ? ` (${cpuKnown.length} of ${list.length} stages recorded CPU time)` : ''} | |`);
  }
  md.push(`| **this invocation** | ${r.seconds.toFixed(1)} | | |`, '');
  md.push('## Environment', '', ...Object.entries(r.env).map(([k, v]) => `- ${k}: ${v}`), '', 'The machine is shared: wall times depend on the load average above.', '');
  md.push('## Config', '', '```json', JSON.stringify(c, null, 2), '```', '');
  const mdText = md.join('\n');
  const mdFile = path.join(out, 'report.md');
  writeFileAtomic(mdFile, mdText);
  const htmlFile = path.join(out, 'report.html');
  writeFileAtomic(htmlFile, markdownToHtml(mdText, out));
  writeFileAtomic(path.join(out, 'results.json'), JSON.stringify({ summary: s, conclusions: concl, baselines: r.baselines, stages: r.stages.map(({ config: _c, ...x }) => x), env: r.env, seconds: r.seconds }, null, 2) + '\n');
  return { md: mdFile, html: htmlFile, figure: path.join(out, files.probe) };
}

/** The follow-up's paired (per seed) probe difference, variant − reference, on the test split. */
export function followUpDifference(r: StudyResult): { d: ReturnType<typeof pairedDifference>; what: string } | null {
  const f = r.followUp;
  if (!f || !f.runs.length) return null;
  const v = f.variant;
  return {
    d: pairedDifference(f.runs.map((x) => x.variant.probe.accuracy), f.runs.map((x) => x.reference.probe.accuracy)),
    what: `${v.name}: λ ${v.lambda}, margin ${v.margin}, layer ${v.alignLayer}, ${v.steps} steps, vs ${f.reference.name}`,
  };
}

/** Stages that only `--sweep` runs (the validation sweep and the follow-up on test). */
const isSweepStage = (name: string) => name.startsWith('sweep') || name.startsWith('followup');

function sweepReference(r: StudyResult, v: StudyResult['sweep'][number]) {
  return r.sweep.find((x) => x.variant.lambda === 0 && x.variant.steps === v.variant.steps && x.variant.alignLayer === v.variant.alignLayer);
}

function sweepLines(r: StudyResult): string[] {
  return r.sweep.map((v) => {
    const ref = sweepReference(r, v);
    const d = ref && v.variant.lambda > 0 ? describeDifference(pairedDifference(v.probe.foldAccuracies, ref.probe.foldAccuracies)).text : '—';
    return `| ${v.name} | ${v.variant.lambda} | ${v.variant.lambda > 0 ? v.variant.margin : '—'} | ${v.variant.alignLayer} | ${v.variant.steps} | ${pct(v.probe.accuracy)} | ${pct(v.probe.std)} | ${d} | ${num(v.diffusionLoss, 4)} |`;
  });
}

/** The best TRD variant on validation and its difference to its diffusion-only reference (computed). */
export function sweepBest(r: StudyResult): string | null {
  const trd = r.sweep.filter((v) => v.variant.lambda > 0 && sweepReference(r, v));
  if (!trd.length) return null;
  const scored = trd.map((v) => ({ v, d: pairedDifference(v.probe.foldAccuracies, sweepReference(r, v)!.probe.foldAccuracies) }));
  scored.sort((a, b) => b.d.mean - a.d.mean);
  const top = scored[0]!;
  const t = describeDifference(top.d);
  const any = scored.filter((x) => describeDifference(x.d).sign > 0).map((x) => x.v.name);
  return `the best TRD variant on validation is ${top.v.name} (${t.text} vs diffusion only with the same steps and layer); variants whose interval excludes 0 upward: ${any.length ? any.join(', ') : 'none'}.`;
}

const esc = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');

function inline(s: string): string {
  return esc(s)
    .replace(/\*\*([^*]+)\*\*/g, '<b>$1</b>')
    .replace(/`([^`]+)`/g, '<code>$1</code>');
}

/** A small markdown → HTML for the report's own subset (headings, lists, tables, images, code blocks). */
export function markdownToHtml(md: string, dir: string): string {
  const lines = md.split('\n');
  const out: string[] = [];
  let i = 0;
  while (i < lines.length) {
    const l = lines[i]!;
    if (l.startsWith('```')) {
      const body: string[] = [];
      for (i++; i < lines.length && !lines[i]!.startsWith('```'); i++) body.push(lines[i]!);
      out.push(`<pre>${esc(body.join('\n'))}</pre>`);
      i++;
      continue;
    }
    const h = /^(#+) (.*)$/.exec(l);
    if (h) out.push(`<h${h[1]!.length}>${inline(h[2]!)}</h${h[1]!.length}>`);
    else if (l.startsWith('|')) {
      const rows: string[][] = [];
      for (; i < lines.length && lines[i]!.startsWith('|'); i++) rows.push(lines[i]!.slice(1, -1).split('|').map((x) => x.trim()));
      const [head, , ...body] = rows;
      out.push(`<table><tr>${head!.map((x) => `<th>${inline(x)}</th>`).join('')}</tr>${body.map((r) => `<tr>${r.map((x) => `<td>${inline(x)}</td>`).join('')}</tr>`).join('')}</table>`);
      continue;
    } else if (l.startsWith('- ')) {
      const items: string[] = [];
      for (; i < lines.length && lines[i]!.startsWith('- '); i++) items.push(`<li>${inline(lines[i]!.slice(2))}</li>`);
      out.push(`<ul>${items.join('')}</ul>`);
      continue;
    } else {
      const img = /^!\[([^\]]*)\]\(([^)]+)\)$/.exec(l);
      if (img) {
        const data = fs.readFileSync(path.join(dir, img[2]!)).toString('base64');
        out.push(`<p><img alt="${esc(img[1]!)}" src="data:image/png;base64,${data}" style="max-width:100%"></p>`);
      } else if (l.trim()) out.push(`<p>${inline(l)}</p>`);
    }
    i++;
  }
  return `<!doctype html><html><head><meta charset="utf-8"><title>vrepa repro report</title><style>body{font-family:sans-serif;max-width:1100px;margin:2em auto;padding:0 1em}table{border-collapse:collapse;font-size:12px}td,th{border:1px solid #ccc;padding:3px 6px}pre{background:#f6f6f6;padding:1em;overflow:auto;font-size:11px}</style></head><body>${out.join('\n')}</body></html>\n`;
}



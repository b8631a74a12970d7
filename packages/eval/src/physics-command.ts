import { parseCommandArgs, UsageError, type VrepaCommand } from '@vrepa/core';
import { numberOption, runCommand } from './args.js';
import { generateDataset } from './dataset.js';
import { progressBar } from './physion.js';
import { DEFAULT_CONTEXT, DEFAULT_VIDEO, SUBSETS, type Subset } from './scenes.js';

const usage = `vrepa physics generate --subset SUBSETS --n N --seed S --out DIR [options]

Generate synthetic physics clips (an offline Physion-OCP analogue): 2D side-view rigid-body scenes simulated with
Rapier (deterministic build), a red agent and a yellow patient among distractors, rendered anti-aliased and
written as mp4, with labels.csv (clip, subset, seed, contact, first_contact_frame, params) and per-clip
ground-truth states (<clip>.states.json). Labels are balanced per subset. The OCP question: given the first
--context frames (no contact happens before them), will agent and patient touch later?

Options:
  --subset LIST    comma-separated subsets of ${SUBSETS.join(', ')}, or all (default all)
  --n N            clips per subset (default 100)
  --seed S         dataset seed (default 1)
  --out DIR        output folder (required)
  --size WxH       frame size (default ${DEFAULT_VIDEO.width}x${DEFAULT_VIDEO.height}; even numbers for mp4)
  --frames F       frames per clip (default ${DEFAULT_VIDEO.frames})
  --fps R          frames per second (default ${DEFAULT_VIDEO.fps})
  --context K      context frames without contact (default ${DEFAULT_CONTEXT})
  --no-video       skip the mp4 files (labels and states only; no ffmpeg needed)
  --preview        also write a 5-frame contact sheet PNG per clip

ffmpeg: the FFMPEG environment variable, else ffmpeg on PATH, else the npm package @ffmpeg-installer/ffmpeg.
`;

export const physicsGenerateCommand: VrepaCommand = {
  name: 'physics generate',
  summary: 'Generate labelled synthetic physics clips (roll, contain, collide, drop, dominoes, support): mp4, labels.csv, states',
  usage,
  run: (argv) =>
    runCommand(usage, argv, async () => {
      const cmd = 'physics generate';
      const a = parseCommandArgs(cmd, argv, {
        subset: { type: 'string' },
        n: { type: 'string' },
        seed: { type: 'string' },
        out: { type: 'string' },
        size: { type: 'string' },
        frames: { type: 'string' },
        fps: { type: 'string' },
        context: { type: 'string' },
        'no-video': { type: 'boolean' },
        preview: { type: 'boolean' },
      });
      if (a.positionals.length) throw new UsageError(`vrepa ${cmd}: unexpected argument '${a.positionals[0]}'.`);
      const out = a.str('out');
      if (!out) throw new UsageError(`vrepa ${cmd}: --out DIR is required.`);
      const raw = (a.str('subset') ?? 'all').split(',').map((s) => s.trim()).filter(Boolean);
      const subsets = (raw.includes('all') ? [...SUBSETS] : raw) as Subset[];
      for (const s of subsets)
        if (!(SUBSETS as readonly string[]).includes(s)) throw new UsageError(`vrepa ${cmd}: unknown subset '${s}' (known: ${SUBSETS.join(', ')}, all).`);
      let width = DEFAULT_VIDEO.width;
      let height = DEFAULT_VIDEO.height;
      if (a.str('size') !== undefined) {
        const m = /^(\d+)x(\d+)$/.exec(a.str('size')!);
        if (!m || Number(m[1]) < 16 || Number(m[2]) < 16) throw new UsageError(`vrepa ${cmd}: --size must be WxH with both ≥ 16, got '${a.str('size')}'.`);
        width = Number(m[1]);
        height = Number(m[2]);
      }
      const frames = numberOption(cmd, 'frames', a.str('frames'), DEFAULT_VIDEO.frames, { integer: true, min: 2 });
      const n = numberOption(cmd, 'n', a.str('n'), 100, { integer: true, min: 1 });
      const bar = process.stderr.isTTY ? progressBar('clips') : undefined;
      const t0 = performance.now();
      const rows = await generateDataset({
        subsets,
        n,
        seed: numberOption(cmd, 'seed', a.str('seed'), 1, { integer: true }),
        out,
        width,
        height,
        frames,
        fps: numberOption(cmd, 'fps', a.str('fps'), DEFAULT_VIDEO.fps, { min: 1 }),
        context: numberOption(cmd, 'context', a.str('context'), DEFAULT_CONTEXT, { integer: true, min: 1, max: frames - 1 }),
        video: !a.flag('no-video'),
        preview: a.flag('preview'),
        onClip: bar,
      });
      const secs = (performance.now() - t0) / 1000;
      const lines = [`wrote ${rows.length} clips to ${out} in ${secs.toFixed(1)} s (${(rows.length / secs).toFixed(2)} clips/s)`, '', '| subset | clips | contact = 1 |', '| --- | ---: | ---: |'];
      for (const s of subsets) {
        const r = rows.filter((x) => x.subset === s);
        lines.push(`| ${s} | ${r.length} | ${r.filter((x) => x.contact).length} |`);
      }
      process.stdout.write(lines.join('\n') + '\n');
      return 0;
    }),
};

// The main job: `vrepa repro` — physics scenes → pretrained teacher → small CogVideoX pretrained with
// diffusion only → arms (diffusion only, +REPA, +TRD, TRD spatial / temporal only) × seeds → OCP probes and
// physics of generated clips on the test split → work/<preset>/report.md and report.html.
//   pnpm --filter @vrepa/example-repro start                  # --preset smoke (< 3 min: checks the pipeline)
//   pnpm --filter @vrepa/example-repro start -- --preset toy  # the study (≤ 30 min on 2 idle cores)
// Every stage is cached in work/<preset>/stages: run it again and it resumes where it stopped.
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { reproCommand } from '@vrepa/repro';

const here = path.dirname(fileURLToPath(import.meta.url));
const args = process.argv.slice(2).filter((a) => a !== '--');
const at = args.indexOf('--preset');
const preset = at >= 0 ? args[at + 1] : 'smoke';
const rest = at >= 0 ? [...args.slice(0, at), ...args.slice(at + 2)] : args;
const out = path.join(here, 'work', preset);
const argv = ['--preset', preset, '--out', out, '--resume', ...rest];
console.log(`$ vrepa repro ${argv.join(' ')}`);
const code = await reproCommand.run(argv);
if (code === 0) console.log(`report: ${path.join(out, 'report.md')} and ${path.join(out, 'report.html')}`);
process.exit(code);

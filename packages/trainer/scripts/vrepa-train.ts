// Runs `vrepa train` / `vrepa prepare` from this package's sources (used by the kill-and-resume test:
// `tsx --tsconfig tsconfig.sources.json scripts/vrepa-train.ts train ...`).
import { commands } from '../src/commands.js';

const [name, ...rest] = process.argv.slice(2);
const cmd = commands.find((c) => c.name === name);
if (!cmd) {
  process.stderr.write(`usage: vrepa-train.ts (${commands.map((c) => c.name).join('|')}) [args]\n`);
  process.exit(2);
}
process.exitCode = await cmd.run(rest);

#!/usr/bin/env node
// The `vrepa` binary. Everything lives in main.ts (loaded lazily, so `--version` needs no package).
import { version } from '../package.json';

// `vrepa inspect big.safetensors | head`: a closed pipe ends the command quietly.
for (const stream of [process.stdout, process.stderr]) {
  stream.on('error', (e: NodeJS.ErrnoException) => {
    if (e.code === 'EPIPE') process.exit(process.exitCode ?? 0);
    throw e;
  });
}

const argv = process.argv.slice(2);
if (argv[0] === '--version' || argv[0] === '-V') {
  process.stdout.write(`${version}\n`);
} else {
  import('./main.js')
    .then(({ runCli }) => runCli(argv))
    .then(
      (code) => {
        process.exitCode = code;
      },
      (e: unknown) => {
        process.stderr.write(`vrepa: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`);
        process.exitCode = 1;
      },
    );
}

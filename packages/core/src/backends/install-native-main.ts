/**
 * `tsx packages/core/src/backends/install-native-main.ts [--gpu] [--force]`: the same installer as
 * `vrepa backend install-native`, runnable from a clean clone before anything is built (the root script
 * `pnpm backend:install-native` and CI use it). Exit code 0 when the native backend works, 1 otherwise;
 * a failure is not fatal for the workspace: the wasm backend keeps working.
 */
import { installNative } from './native.js';

const argv = process.argv.slice(2);
if (argv.includes('--help') || argv.includes('-h')) {
  process.stdout.write('usage: install-native [--gpu] [--force]\n');
  process.exit(0);
}
const unknown = argv.filter((a) => a !== '--gpu' && a !== '--force');
if (unknown.length) {
  process.stderr.write(`install-native: unknown argument ${unknown.join(' ')}; expected --gpu and/or --force\n`);
  process.exit(2);
}
const res = await installNative({ gpu: argv.includes('--gpu'), force: argv.includes('--force') });
process.stdout.write(`${res.ok ? 'ok' : 'not installed'}: ${res.message} (${res.seconds.toFixed(1)} s)\n`);
process.exit(res.ok ? 0 : 1);

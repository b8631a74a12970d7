/**
 * `vrepa backend`: which compute backends load here (versions, why not) and a short matmul speed check of
 * each, every backend in its own child process. `vrepa backend install-native [--gpu]`: build the native
 * TensorFlow backend for this machine from a TensorFlow pip wheel (see @vrepa/core installNative).
 */
import { installNative, PROBED_BACKENDS, probeBackends, machineSummary, type BackendProbe, type ProbedBackend, type VrepaCommand } from '@vrepa/core';
import { parseCommandArgs } from '@vrepa/core';
import { EXIT, padEnd, processIO, UsageError, type CliIO } from '../io.js';

export const backendUsage = `Usage: vrepa backend [--seconds S] [--backend NAME] [--check-only] [--json]

Lists the compute backends (tensorflow-gpu, tensorflow, wasm, cpu): whether each loads here, its versions
or why it does not, a small exactness check, and a matmul speed check (1024×1024×1024, 256³ on cpu) of
about S seconds. Each backend runs in its own child process. The default backend (VREPA_BACKEND unset)
is the first that loads, in that order.

Options:
  --seconds S     length of each speed check (default 5; 0 skips it)
  --backend NAME  probe only NAME (tensorflow-gpu, tensorflow, wasm, cpu)
  --check-only    no speed check; exit 0 when the backend VREPA_BACKEND (or --backend) names loads and
                  computes correctly, 1 otherwise (without either: the default backend)
  --json          print the probe results as JSON
  -h, --help      this help

Environment:
  VREPA_BACKEND        backend initBackend uses (auto when unset)
  VREPA_WASM_THREADS   wasm threads (default 1; 2 enables the experimental threaded wasm build)

See also: vrepa backend install-native --help
`;

export const installNativeUsage = `Usage: vrepa backend install-native [--gpu] [--force]

Builds the native TensorFlow backend (@tensorflow/tfjs-node) for this machine without the package's own
download: fetches the tensorflow-cpu 2.21.0 wheel with pip (cached in ~/.cache/vrepa/wheels), extracts the
TensorFlow C library and headers into the package's deps/, compiles the binding with node-pre-gyp, and
verifies it with a smoke test in a child process. About 25-40 s the first time, under a second when the
binding is already built. Needs linux-x64, Python 3 with pip, a C++ compiler and make, and
@tensorflow/tfjs-node@4.22.0 installed without its install script (pnpm: allowBuilds
'@tensorflow/tfjs-node': false; npm: --ignore-scripts). When anything is missing it says what to do and
exits 1; the wasm backend keeps working.

Options:
  --gpu       build @tensorflow/tfjs-node-gpu against the CUDA 'tensorflow' wheel instead (UNTESTED: no GPU
              on the machines vrepa is developed on; needs the CUDA 12 runtime libraries at run time)
  --force     rebuild even when a working binding is present
  -h, --help  this help
`;

const fmt = (v: number | undefined, digits = 3) => (v === undefined ? '' : v >= 100 ? v.toFixed(0) : v.toPrecision(digits));

function table(rows: BackendProbe[]): string {
  const head = ['backend', 'loads', 'versions', 'threads', 'exact', 'matmul GFLOP/s', 'why not'];
  const body = rows.map((r) => [
    r.backend,
    r.loads ? 'yes' : 'no',
    r.versions ? Object.entries(r.versions).map(([k, v]) => `${k} ${v}`).join(', ') : '',
    r.threads !== undefined ? String(r.threads) : '',
    r.loads ? (r.correct ? 'ok' : 'WRONG') : '',
    r.matmul ? `${fmt(r.matmul.gflops)} (${r.matmul.n}³ ×${r.matmul.runs})` : '',
    r.why ?? '',
  ]);
  const w = head.map((h, i) => Math.max(h.length, ...body.map((b) => b[i]!.length)));
  const line = (cells: string[]) => cells.map((c, i) => padEnd(c, w[i]!)).join('  ').trimEnd();
  return [line(head), line(w.map((n) => '-'.repeat(n))), ...body.map(line)].join('\n') + '\n';
}

interface BackendFlags {
  seconds?: string;
  backend?: string;
  'check-only'?: boolean;
  json?: boolean;
}

export async function runBackendCommand(argv: string[], ctx: { io: CliIO } = { io: processIO }): Promise<number> {
  const { io } = ctx;
  const { values, positionals } = parseCommandArgs<BackendFlags>('backend', argv, {
    seconds: { type: 'string' },
    backend: { type: 'string' },
    'check-only': { type: 'boolean' },
    json: { type: 'boolean' },
  });
  if (positionals.length) throw new UsageError(`vrepa backend: unknown subcommand '${positionals[0]}' (expected install-native, or options only)`);
  const seconds = values['check-only'] ? 0 : values.seconds === undefined ? 5 : Number(values.seconds);
  if (!Number.isFinite(seconds) || seconds < 0 || seconds > 600) throw new UsageError(`vrepa backend: --seconds must be a number from 0 to 600, got '${values.seconds}'`);
  const named = values.backend ?? (values['check-only'] ? process.env.VREPA_BACKEND || undefined : undefined);
  if (named !== undefined && !(PROBED_BACKENDS as readonly string[]).includes(named) && named !== 'auto') {
    throw new UsageError(`vrepa backend: '${named}' is not a backend; expected one of ${PROBED_BACKENDS.join(', ')}`);
  }
  const only = named === undefined || named === 'auto' ? undefined : [named as ProbedBackend];

  if (values['check-only']) {
    const list = only ?? PROBED_BACKENDS;
    const probes = await probeBackends({ seconds: 0, backends: list });
    // Without a name: the default is the first that loads.
    const chosen = only ? probes[0]! : probes.find((p) => p.loads);
    if (values.json) io.out(`${JSON.stringify(probes, null, 2)}\n`);
    if (!chosen || !chosen.loads) {
      io.err(`vrepa backend: ${only ? `'${only[0]}' does not load: ${chosen?.why}` : 'no backend loads'}\n`);
      return EXIT.failed;
    }
    if (!chosen.correct) {
      io.err(`vrepa backend: '${chosen.backend}' loads but computes wrong results in the exactness check\n`);
      return EXIT.failed;
    }
    if (!values.json) io.out(`${chosen.backend}: ok (${chosen.tfjsBackend})\n`);
    return EXIT.ok;
  }

  if (!values.json) io.err(`probing ${only ? only.join(', ') : PROBED_BACKENDS.join(', ')} (${seconds} s matmul check each, one child process each) ...\n`);
  const probes = await probeBackends({ seconds, backends: only });
  if (values.json) {
    io.out(`${JSON.stringify({ machine: machineSummary(), probes }, null, 2)}\n`);
  } else {
    io.out(`${machineSummary()}\n\n${table(probes)}`);
    const def = probes.find((p) => p.loads);
    if (!only) io.out(`\ndefault backend (VREPA_BACKEND unset): ${def ? def.backend : 'none'}${process.env.VREPA_BACKEND ? `; VREPA_BACKEND=${process.env.VREPA_BACKEND} is set` : ''}\n`);
    if (!only && !probes.some((p) => p.backend === 'tensorflow' && p.loads)) {
      io.out(`the native backend is not built here: run \`vrepa backend install-native\` (linux-x64) to build it; wasm is used meanwhile\n`);
    }
  }
  return probes.some((p) => p.loads && !p.correct) ? EXIT.failed : EXIT.ok;
}

interface InstallFlags {
  gpu?: boolean;
  force?: boolean;
}

export async function runInstallNativeCommand(argv: string[], ctx: { io: CliIO } = { io: processIO }): Promise<number> {
  const { io } = ctx;
  const { values, positionals } = parseCommandArgs<InstallFlags>('backend install-native', argv, {
    gpu: { type: 'boolean' },
    force: { type: 'boolean' },
  });
  if (positionals.length) throw new UsageError(`vrepa backend install-native: unexpected argument '${positionals[0]}' (expected --gpu and/or --force)`);
  const res = await installNative({ gpu: values.gpu, force: values.force, log: (s) => io.err(`[vrepa] ${s}\n`) });
  if (res.ok) {
    io.out(`ok: ${res.message} (${res.seconds.toFixed(1)} s)\n`);
    return EXIT.ok;
  }
  io.err(`vrepa backend install-native: ${res.message}\n`);
  return EXIT.failed;
}

type WithIO = VrepaCommand & { runWith(argv: string[], ctx: { io: CliIO }): Promise<number> };

export const backendCommand: WithIO = {
  name: 'backend',
  summary: 'list the compute backends that load here, their versions and a matmul speed check',
  usage: backendUsage,
  run: (argv) => runBackendCommand(argv),
  runWith: (argv, ctx) => runBackendCommand(argv, ctx),
};

export const installNativeCommand: WithIO = {
  name: 'backend install-native',
  summary: 'build the native TensorFlow backend (tfjs-node) for this machine from a pip wheel',
  usage: installNativeUsage,
  run: (argv) => runInstallNativeCommand(argv),
  runWith: (argv, ctx) => runInstallNativeCommand(argv, ctx),
};

/** `vrepa backend` and `vrepa backend install-native`. */
export const backendCommands: WithIO[] = [backendCommand, installNativeCommand];

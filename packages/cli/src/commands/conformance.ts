/**
 * `vrepa conformance <dir>`: run every fixture case under `<dir>` through the handler its package
 * registers, print one row per sub-case as results come, optionally write a JSON report.
 */
import fs from 'node:fs';
import path from 'node:path';
import {
  BACKEND_CHOICES,
  findCases,
  initBackend,
  registerConformanceHandler,
  runConformance,
  type BackendChoice,
  type SubcaseResult,
  type VrepaCommand,
} from '@vrepa/core';
import { expectPositionals, parseCommandArgs } from '@vrepa/core';
import { EXIT, padEnd, padStart, processIO, UsageError, type CliIO } from '../io.js';
import { handlersFrom, loadPackages, type LoadedPackage } from '../packages.js';

export const conformanceUsage = `Usage: vrepa conformance <dir> [--case NAME]... [--json FILE] [--strict] [--backend NAME] [--verbose] [--list]

Run the conformance suite: every <case>/manifest.json under <dir> (or <dir> itself when it holds a
manifest.json), each sub-case through the handler its @vrepa package registers, every reference tensor
compared with the manifest's tolerance. One row per sub-case is printed as it finishes:
case, sub-case, tensors compared, worst error ÷ tolerance (≤ 1 passes), pass.

Options:
  --case NAME     only this case (repeatable); a named case that is missing or has no handler fails the run
  --json FILE     write {"results": [{"case", "subcase", "pass", "tensors", "worst_ratio", ...}]},
                  one entry per sub-case found, including failed and unhandled ones
  --strict        cases without a handler fail the run (otherwise they are listed, not failed)
  --backend NAME  compute backend: ${BACKEND_CHOICES.join(', ')} (default: VREPA_BACKEND, else auto)
  --verbose       also print every tensor comparison of each sub-case
  --list          list the cases found, their sub-case counts and the package handling each; run nothing
  -h, --help      this help

Exit status: 0 when every sub-case that ran passed (and, with --strict, every case had a handler);
1 when a sub-case failed, a --case is missing or unhandled, or a package failed to load; 2 on a usage error.

Examples:
  vrepa conformance ../shared/fixtures
  vrepa conformance ../shared/fixtures --case trd_loss --case interpolation --json report.json
  VREPA_BACKEND=cpu vrepa conformance ./my-fixtures --strict
`;

interface ConformanceFlags {
  case?: string[];
  json?: string;
  strict?: boolean;
  backend?: string;
  verbose?: boolean;
  list?: boolean;
}

export interface ConformanceRunOptions {
  io?: CliIO;
  /** The packages to take handlers from (default: every @vrepa package the CLI depends on). */
  packages?: readonly LoadedPackage[];
}

/** One JSON entry per sub-case. */
export interface ConformanceJsonEntry {
  case: string;
  subcase: string;
  pass: boolean;
  tensors: number;
  /** worst error ÷ tolerance over the sub-case's tensors; null when nothing was compared or a value is infinite. */
  worst_ratio: number | null;
  handled: boolean;
  worst_tensor?: string;
  error?: string;
  ms: number;
}

export function formatRatio(r: number | null | undefined): string {
  if (r === null || r === undefined) return '-';
  if (!Number.isFinite(r)) return 'inf';
  if (r === 0) return '0';
  if (r < 1e-3) return r.toExponential(1);
  if (r >= 1e4) return r.toExponential(2);
  return r.toPrecision(3);
}

export function toJsonEntry(r: SubcaseResult): ConformanceJsonEntry {
  const e: ConformanceJsonEntry = {
    case: r.case,
    subcase: r.subcase,
    pass: r.pass,
    tensors: r.tensors,
    worst_ratio: r.worst_ratio !== null && Number.isFinite(r.worst_ratio) ? r.worst_ratio : null,
    handled: r.handled,
    ms: Math.round(r.ms),
  };
  if (r.worst_tensor !== undefined) e.worst_tensor = r.worst_tensor;
  const failed = r.comparisons.filter((c) => !c.pass);
  const why = r.error ?? (failed.length ? failed.map((c) => `${c.tensor}: ${c.detail ?? `ratio ${formatRatio(c.ratio)}`}`).join('; ') : undefined);
  if (why !== undefined) e.error = why;
  return e;
}

/** Run the conformance command; returns the exit code. */
export async function runConformanceCommand(argv: readonly string[], opts: ConformanceRunOptions = {}): Promise<number> {
  const io = opts.io ?? processIO;
  const { values, positionals, help } = parseCommandArgs<ConformanceFlags>('conformance', argv, {
    case: { type: 'string', multiple: true },
    json: { type: 'string' },
    strict: { type: 'boolean' },
    backend: { type: 'string' },
    verbose: { type: 'boolean' },
    list: { type: 'boolean' },
  });
  if (help) {
    io.out(conformanceUsage);
    return EXIT.ok;
  }
  const [dir] = expectPositionals('conformance', positionals, ['dir']);
  const backend = values.backend;
  if (backend !== undefined && !(BACKEND_CHOICES as readonly string[]).includes(backend)) {
    throw new UsageError(`vrepa conformance: --backend ${backend} is not a backend; expected one of ${BACKEND_CHOICES.join(', ')}`);
  }
  let found: ReturnType<typeof findCases>;
  try {
    found = findCases(dir!);
  } catch (e) {
    throw new UsageError(`vrepa conformance: ${(e as Error).message}`);
  }

  if (values.list) {
    const packages = opts.packages ?? (await loadPackages());
    for (const p of packages.filter((x) => x.error)) io.err(`vrepa conformance: package ${p.name} failed to load: ${p.error}\n`);
    const { handlers } = handlersFrom(packages);
    const w = Math.max(4, ...found.map((f) => f.caseName.length));
    io.out(`${padEnd('case', w)}  sub-cases  handler\n`);
    for (const f of found) {
      if (values.case && !values.case.includes(f.caseName)) continue;
      io.out(`${padEnd(f.caseName, w)}  ${padStart(String(f.manifest.subcases.length), 9)}  ${handlers.get(f.caseName)?.package ?? 'no handler'}\n`);
    }
    return EXIT.ok;
  }

  const info = await initBackend({ backend: backend as BackendChoice | undefined, quiet: true });
  if (backend && backend !== 'auto' && info.requested !== backend) {
    io.err(`vrepa conformance: backend '${info.name}' was already initialised in this process; --backend ${backend} not applied\n`);
  }

  const packages = opts.packages ?? (await loadPackages());
  const loadErrors = packages.filter((p) => p.error);
  for (const p of loadErrors) io.err(`vrepa conformance: package ${p.name} failed to load: ${p.error}\n`);
  const { handlers, problems } = handlersFrom(packages);
  for (const p of problems) io.err(`vrepa conformance: ${p}\n`);
  for (const [caseName, { handler }] of handlers) registerConformanceHandler(caseName, handler);

  const wanted = values.case;
  const selected = found.filter((f) => !wanted || wanted.includes(f.caseName));
  const names = [...selected.map((f) => f.caseName), ...(wanted ?? []), 'case'];
  const caseW = Math.max(...names.map((n) => n.length));
  const subW = Math.max('sub-case'.length, ...selected.flatMap((f) => f.manifest.subcases.map((s: { name?: unknown }) => String(s.name).length)));
  const header = `${padEnd('case', caseW)}  ${padEnd('sub-case', subW)}  ${padStart('tensors', 7)}  ${padStart('worst err/tol', 13)}  pass`;
  io.out(`conformance: ${path.resolve(dir!)} · ${selected.length} case${selected.length === 1 ? '' : 's'} · backend ${info.name}\n`);
  io.out(`${header}\n${'-'.repeat(header.length + 2)}\n`);

  const t0 = performance.now();
  const report = await runConformance(dir!, {
    cases: wanted,
    strict: values.strict === true,
    onResult: (r) => {
      const pass = r.pass ? 'ok' : r.handled ? 'FAIL' : 'no handler';
      io.out(`${padEnd(r.case, caseW)}  ${padEnd(r.subcase, subW)}  ${padStart(String(r.tensors), 7)}  ${padStart(formatRatio(r.worst_ratio), 13)}  ${pass}\n`);
      if (r.handled && !r.pass) {
        if (r.error) io.out(`    ${r.error}\n`);
        for (const c of r.comparisons.filter((c) => !c.pass)) {
          io.out(`    ${c.tensor}: max error ${c.maxError.toPrecision(3)}, ratio ${formatRatio(c.ratio)}${c.detail ? ` (${c.detail})` : ''}\n`);
        }
      } else if (!r.handled && r.error && r.subcase === '-') {
        io.out(`    ${r.error}\n`);
      }
      if (values.verbose) {
        for (const c of r.comparisons) io.out(`    ${c.pass ? 'ok  ' : 'FAIL'} ${c.tensor}: max error ${c.maxError.toPrecision(3)}, ratio ${formatRatio(c.ratio)}\n`);
      }
    },
  });

  const handled = report.results.filter((r) => r.handled);
  const passed = handled.filter((r) => r.pass).length;
  const failed = handled.length - passed;
  const unhandledSub = report.results.length - handled.length;
  io.out(`\n${report.results.length} sub-case${report.results.length === 1 ? '' : 's'}: ${passed} passed, ${failed} failed, ${unhandledSub} without a handler (${((performance.now() - t0) / 1000).toFixed(1)} s)\n`);
  if (report.unhandledCases.length) {
    io.out(`cases without a handler${values.strict ? ' (fail under --strict)' : ''}: ${report.unhandledCases.join(', ')}\n`);
  }
  const wantedUnhandled = (wanted ?? []).filter((c) => report.results.some((r) => r.case === c && !r.handled));
  if (wantedUnhandled.length) io.out(`--case without a handler or not found: ${wantedUnhandled.join(', ')}\n`);

  const ok = report.ok && loadErrors.length === 0 && problems.length === 0;
  if (values.json) {
    const json = {
      dir: path.resolve(dir!),
      backend: info.name,
      strict: values.strict === true,
      ok,
      unhandled_cases: report.unhandledCases,
      results: report.results.map(toJsonEntry),
    };
    fs.mkdirSync(path.dirname(path.resolve(values.json)), { recursive: true });
    fs.writeFileSync(values.json, `${JSON.stringify(json, null, 2)}\n`);
    io.out(`wrote ${values.json}\n`);
  }
  io.out(ok ? 'conformance: PASS\n' : 'conformance: FAIL\n');
  return ok ? EXIT.ok : EXIT.failed;
}

export const conformanceCommand: VrepaCommand = {
  name: 'conformance',
  summary: 'run the conformance suite (every fixture case under a directory) and print a table',
  usage: conformanceUsage,
  run: (argv) => runConformanceCommand(argv),
};

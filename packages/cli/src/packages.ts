/**
 * The @vrepa packages the CLI collects commands and conformance handlers from. Each is imported on its
 * own and read defensively: a package without `commands` or `conformanceHandlers` contributes none, and
 * a package that fails to load is reported (never silently skipped).
 */
import type { ConformanceHandler, VrepaCommand } from '@vrepa/core';

export interface LoadedPackage {
  name: string;
  module?: Record<string, unknown>;
  /** Why the package could not be imported. */
  error?: string;
}

type Loader = readonly [name: string, load: () => Promise<unknown>];

/**
 * Literal specifiers, so bundlers and the test resolver see every package. The `as string` keeps the
 * type checker from requiring every package's declarations: the modules are read defensively anyway.
 */
export const PACKAGE_LOADERS: readonly Loader[] = [
  ['@vrepa/core', () => import('@vrepa/core' as string)],
  ['@vrepa/relations', () => import('@vrepa/relations' as string)],
  ['@vrepa/align-dims', () => import('@vrepa/align-dims' as string)],
  ['@vrepa/teachers', () => import('@vrepa/teachers' as string)],
  ['@vrepa/cogvideox', () => import('@vrepa/cogvideox' as string)],
  ['@vrepa/eval', () => import('@vrepa/eval' as string)],
  ['@vrepa/trainer', () => import('@vrepa/trainer' as string)],
  ['@vrepa/repro', () => import('@vrepa/repro' as string)],
];

let cache: Promise<LoadedPackage[]> | undefined;

/** Import every package once per process (failures are captured, not thrown). */
export function loadPackages(loaders: readonly Loader[] = PACKAGE_LOADERS): Promise<LoadedPackage[]> {
  const run = async () => {
    const out: LoadedPackage[] = [];
    for (const [name, load] of loaders) {
      try {
        out.push({ name, module: (await load()) as Record<string, unknown> });
      } catch (e) {
        out.push({ name, error: e instanceof Error ? e.message.split('\n')[0] : String(e) });
      }
    }
    return out;
  };
  if (loaders !== PACKAGE_LOADERS) return run();
  cache ??= run();
  return cache;
}

export function isCommand(x: unknown): x is VrepaCommand {
  const c = x as VrepaCommand;
  return (
    typeof c === 'object' && c !== null && typeof c.name === 'string' && c.name.trim() !== '' &&
    typeof c.run === 'function' && typeof c.summary === 'string' && typeof c.usage === 'string'
  );
}

/** Commands exported as `commands: VrepaCommand[]` by the packages; the first of a duplicated name wins. */
export function commandsFrom(
  packages: readonly LoadedPackage[],
  builtin: readonly VrepaCommand[] = [],
): { commands: VrepaCommand[]; warnings: string[] } {
  const warnings: string[] = [];
  const byName = new Map<string, { cmd: VrepaCommand; from: string }>();
  const add = (cmd: VrepaCommand, from: string) => {
    const name = normaliseName(cmd.name);
    const prev = byName.get(name);
    if (prev) {
      warnings.push(`command '${name}' from ${from} ignored: ${prev.from} already provides it`);
      return;
    }
    byName.set(name, { cmd: name === cmd.name ? cmd : { ...cmd, name }, from });
  };
  for (const c of builtin) add(c, '@vrepa/cli');
  for (const p of packages) {
    const list = p.module?.commands;
    if (list === undefined) continue;
    if (!Array.isArray(list)) {
      warnings.push(`${p.name}: export 'commands' is not an array of commands; ignored`);
      continue;
    }
    list.forEach((c, i) => {
      if (isCommand(c)) add(c, p.name);
      else warnings.push(`${p.name}: commands[${i}] is not a command (needs name, summary, usage, run); ignored`);
    });
  }
  return { commands: [...byName.values()].map((v) => v.cmd), warnings };
}

export interface HandlerEntry {
  handler: ConformanceHandler;
  package: string;
}

/**
 * Conformance handlers exported as `conformanceHandlers: Record<caseName, ConformanceHandler>`.
 * A case claimed by two packages is a problem (the run cannot know which is right).
 */
export function handlersFrom(packages: readonly LoadedPackage[]): { handlers: Map<string, HandlerEntry>; problems: string[] } {
  const handlers = new Map<string, HandlerEntry>();
  const problems: string[] = [];
  for (const p of packages) {
    const rec = p.module?.conformanceHandlers;
    // @vrepa/core exports a *function* of that name (its registry); only plain records count here.
    if (rec === undefined || typeof rec === 'function') continue;
    if (typeof rec !== 'object' || rec === null || Array.isArray(rec)) {
      problems.push(`${p.name}: export 'conformanceHandlers' is not a record of case name → handler`);
      continue;
    }
    for (const [caseName, h] of Object.entries(rec)) {
      if (typeof h !== 'function') {
        problems.push(`${p.name}: conformanceHandlers['${caseName}'] is not a function`);
        continue;
      }
      const prev = handlers.get(caseName);
      if (prev) {
        problems.push(`case '${caseName}' has handlers in both ${prev.package} and ${p.name}`);
        continue;
      }
      handlers.set(caseName, { handler: h as ConformanceHandler, package: p.name });
    }
  }
  return { handlers, problems };
}

/** 'backend   install-native' → 'backend install-native'. */
export function normaliseName(name: string): string {
  return name.trim().split(/\s+/).join(' ');
}

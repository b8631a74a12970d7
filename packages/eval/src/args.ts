/** Argument parsing shared by the eval commands (node:util parseArgs with readable errors). */
import { parseArgs, type ParseArgsConfig } from 'node:util';

export class UsageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'UsageError';
  }
}

export interface ParsedCommandArgs {
  /** A string option's value (undefined when absent). */
  str(name: string): string | undefined;
  /** A boolean option (false when absent). */
  flag(name: string): boolean;
  positionals: string[];
}

export function parseCommandArgs(command: string, argv: string[], options: NonNullable<ParseArgsConfig['options']>): ParsedCommandArgs {
  try {
    const r = parseArgs({ args: argv, options: { ...options, help: { type: 'boolean', short: 'h' } }, allowPositionals: true, strict: true });
    const values = r.values as Record<string, string | boolean | undefined>;
    return {
      str: (name) => {
        const v = values[name];
        return typeof v === 'string' ? v : undefined;
      },
      flag: (name) => values[name] === true,
      positionals: r.positionals,
    };
  } catch (e) {
    throw new UsageError(`vrepa ${command}: ${(e as Error).message}`);
  }
}

/** Parse a numeric option: integer or float, with bounds, naming the option on error. */
export function numberOption(command: string, name: string, raw: string | undefined, def: number, opts: { integer?: boolean; min?: number; max?: number } = {}): number {
  if (raw === undefined) return def;
  const v = Number(raw);
  const kind = opts.integer ? 'an integer' : 'a number';
  if (raw.trim() === '' || !Number.isFinite(v) || (opts.integer && !Number.isInteger(v)))
    throw new UsageError(`vrepa ${command}: --${name} must be ${kind}, got '${raw}'.`);
  if (opts.min !== undefined && v < opts.min) throw new UsageError(`vrepa ${command}: --${name} must be ≥ ${opts.min}, got ${v}.`);
  if (opts.max !== undefined && v > opts.max) throw new UsageError(`vrepa ${command}: --${name} must be ≤ ${opts.max}, got ${v}.`);
  return v;
}

/** Run a command body, printing known errors as one line on stderr with exit code 1 (2 for usage errors). */
export async function runCommand(usage: string, argv: string[], body: () => Promise<number>): Promise<number> {
  if (argv.includes('--help') || argv.includes('-h')) {
    process.stdout.write(usage.endsWith('\n') ? usage : usage + '\n');
    return 0;
  }
  try {
    return await body();
  } catch (e) {
    const err = e as Error;
    process.stderr.write(`${err.message}\n`);
    if (err instanceof UsageError) process.stderr.write(`Run with --help for usage.\n`);
    if (process.env.VREPA_DEBUG) process.stderr.write(`${err.stack}\n`);
    return err instanceof UsageError ? 2 : 1;
  }
}

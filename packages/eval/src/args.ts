/** Numeric options and the error-printing wrapper of the eval commands; parsing itself is @vrepa/core's. */
import { UsageError, wantsHelp } from '@vrepa/core';


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
  if (wantsHelp(argv)) {
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

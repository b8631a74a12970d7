/** Argument parsing on node:util parseArgs: unknown options and missing values become UsageErrors. */
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { UsageError } from './io.js';

export type OptionSpec = NonNullable<ParseArgsConfig['options']>;

export interface Parsed<V> {
  values: V;
  positionals: string[];
  help: boolean;
}

/** True when `argv` asks for help (`--help` / `-h` before any `--`). */
export function wantsHelp(argv: readonly string[]): boolean {
  for (const a of argv) {
    if (a === '--') return false;
    if (a === '--help' || a === '-h') return true;
  }
  return false;
}

/**
 * Parse `argv` for `command` with the given options (plus `--help`). Throws UsageError naming the
 * command and the offending argument.
 */
export function parseCommandArgs<V = Record<string, string | boolean | string[] | undefined>>(
  command: string,
  argv: readonly string[],
  options: OptionSpec,
): Parsed<V> {
  let parsed: ReturnType<typeof parseArgs>;
  try {
    parsed = parseArgs({
      args: [...argv],
      options: { ...options, help: { type: 'boolean', short: 'h' } },
      allowPositionals: true,
      strict: true,
    });
  } catch (e) {
    throw new UsageError(`vrepa ${command}: ${(e as Error).message.split('\n')[0]}`);
  }
  const { help, ...values } = parsed.values as Record<string, unknown>;
  return { values: values as V, positionals: parsed.positionals, help: help === true };
}

/** Exactly `names.length` positionals, else a UsageError that names what is missing or extra. */
export function expectPositionals(command: string, positionals: string[], names: string[]): string[] {
  if (positionals.length < names.length) {
    const missing = names.slice(positionals.length).map((n) => `<${n}>`).join(' ');
    throw new UsageError(`vrepa ${command}: missing ${missing} (expected ${names.map((n) => `<${n}>`).join(' ')}, got ${positionals.length} argument${positionals.length === 1 ? '' : 's'})`);
  }
  if (positionals.length > names.length) {
    throw new UsageError(`vrepa ${command}: unexpected extra argument '${positionals[names.length]}' (expected ${names.map((n) => `<${n}>`).join(' ')})`);
  }
  return positionals;
}

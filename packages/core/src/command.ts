import { parseArgs, type ParseArgsConfig } from 'node:util';

/**
 * A `vrepa` CLI command. Packages export their commands; the `vrepa` CLI (@vrepa/cli) collects them.
 * `run` gets the arguments after the command name and returns the exit code. `--help` must print `usage`.
 */
export interface VrepaCommand {
  /** Command path, e.g. 'inspect' or 'backend install-native'. */
  name: string;
  /** One line for the command list. */
  summary: string;
  /** Full help text printed by `vrepa <name> --help`. */
  usage: string;
  run(argv: string[]): Promise<number>;
}

/** A usage error: the command line itself is wrong (exit code 2). Every vrepa command throws this one class. */
export class UsageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'UsageError';
  }
}

/** Option declarations of node:util parseArgs (`{ name: { type: 'string' | 'boolean', short?, multiple? } }`). */
export type OptionSpec = NonNullable<ParseArgsConfig['options']>;

/** Parsed command line: the option values (without `help`), positionals, whether help was asked, typed getters. */
export interface ParsedCommandArgs<V = Record<string, string | boolean | string[] | undefined>> {
  values: V;
  positionals: string[];
  help: boolean;
  /** A string option's value (undefined when absent). */
  str(name: string): string | undefined;
  /** A boolean option (false when absent). */
  flag(name: string): boolean;
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
 * Parse `argv` of `vrepa <command>` with `options` (plus `--help`/`-h`), positionals allowed, unknown options
 * rejected. Throws a UsageError `vrepa <command>: <what is wrong>` (the first line of parseArgs' message).
 */
export function parseCommandArgs<V = Record<string, string | boolean | string[] | undefined>>(
  command: string,
  argv: readonly string[],
  options: OptionSpec,
): ParsedCommandArgs<V> {
  let parsed: ReturnType<typeof parseArgs>;
  try {
    parsed = parseArgs({ args: [...argv], options: { ...options, help: { type: 'boolean', short: 'h' } }, allowPositionals: true, strict: true });
  } catch (e) {
    throw new UsageError(`vrepa ${command}: ${(e as Error).message.split('\n')[0]}`);
  }
  const { help, ...values } = parsed.values as Record<string, unknown>;
  return {
    values: values as V,
    positionals: parsed.positionals,
    help: help === true,
    str: (name) => (typeof values[name] === 'string' ? (values[name] as string) : undefined),
    flag: (name) => values[name] === true,
  };
}

/** Exactly `names.length` positionals, else a UsageError that names what is missing or extra. */
export function expectPositionals(command: string, positionals: string[], names: string[]): string[] {
  const expected = names.map((n) => `<${n}>`).join(' ');
  if (positionals.length < names.length) {
    const missing = names.slice(positionals.length).map((n) => `<${n}>`).join(' ');
    throw new UsageError(`vrepa ${command}: missing ${missing} (expected ${expected}, got ${positionals.length} argument${positionals.length === 1 ? '' : 's'})`);
  }
  if (positionals.length > names.length) throw new UsageError(`vrepa ${command}: unexpected extra argument '${positionals[names.length]}' (expected ${expected})`);
  return positionals;
}

/** Where a command writes its help and errors (raw text; add the newlines yourself). */
export interface CommandOutput {
  out(text: string): void;
  err(text: string): void;
}

/** The process streams. */
export const processOutput: CommandOutput = {
  out: (text) => void process.stdout.write(text),
  err: (text) => void process.stderr.write(text),
};

/**
 * The parse / --help / usage-error step every command starts with: parses like parseCommandArgs, and
 * returns an exit code instead of the values when the command is done: 0 after printing `usage` to stdout
 * for `--help`; 2 after printing `vrepa <command>: <error>` and `usage` to stderr for a bad command line.
 * `required` names options that must be given and `positionals: false` rejects positionals (both usage errors).
 *
 *     const a = commandArgs('lora merge', argv, options, USAGE, { required: ['out'] });
 *     if (typeof a === 'number') return a;
 */
export function commandArgs<V = Record<string, string | boolean | string[] | undefined>>(
  command: string,
  argv: readonly string[],
  options: OptionSpec,
  usage: string,
  opts: { required?: string[]; positionals?: boolean; output?: CommandOutput } = {},
): ParsedCommandArgs<V> | number {
  const io = opts.output ?? processOutput;
  const text = usage.endsWith('\n') ? usage : usage + '\n';
  try {
    const parsed = parseCommandArgs<V>(command, argv, options);
    if (parsed.help) {
      io.out(text);
      return 0;
    }
    const values = parsed.values as Record<string, unknown>;
    for (const k of opts.required ?? []) if (values[k] === undefined) throw new UsageError(`vrepa ${command}: --${k} is required`);
    if (opts.positionals === false && parsed.positionals.length) throw new UsageError(`vrepa ${command}: unexpected argument '${parsed.positionals[0]}'`);
    return parsed;
  } catch (e) {
    if (!(e instanceof UsageError)) throw e;
    io.err(`${e.message}\n${text}`);
    return 2;
  }
}

/**
 * The `vrepa` dispatcher: collects the CLI's own commands and those every @vrepa package exports
 * (`commands: VrepaCommand[]`), matches the longest command name (commands may be several words,
 * e.g. `backend install-native`), handles `--help` for every command, and maps errors to exit codes.
 */
import type { VrepaCommand } from '@vrepa/core';
import { version } from '../package.json';
import { wantsHelp } from '@vrepa/core';
import { backendCommands } from './commands/backend.js';
import { conformanceCommand, runConformanceCommand } from './commands/conformance.js';
import { convertCommand, runConvertCommand } from './commands/convert.js';
import { inspectCommand, runInspectCommand } from './commands/inspect.js';
import { EXIT, padEnd, processIO, UsageError, type CliIO } from './io.js';
import { commandsFrom, loadPackages, type LoadedPackage } from './packages.js';

export const VERSION: string = version;

/** What the CLI's own commands get besides their arguments. */
export interface CliContext {
  io: CliIO;
  packages?: readonly LoadedPackage[];
}

/** A command that can also run against a given IO (the CLI's own commands). */
export interface CliCommand extends VrepaCommand {
  runWith?(argv: string[], ctx: CliContext): Promise<number>;
}

/** The commands this package implements itself. */
export const builtinCommands: CliCommand[] = [
  { ...inspectCommand, runWith: (argv, ctx) => runInspectCommand(argv, ctx) },
  { ...convertCommand, runWith: (argv, ctx) => runConvertCommand(argv, ctx) },
  { ...conformanceCommand, runWith: (argv, ctx) => runConformanceCommand(argv, ctx) },
  ...backendCommands,
];

export interface RunCliOptions {
  io?: CliIO;
  /** Packages to collect commands / handlers from (default: every @vrepa package the CLI depends on). */
  packages?: readonly LoadedPackage[];
  /** Replace the built-in command list (tests). */
  builtin?: readonly CliCommand[];
}

/** Every command the CLI knows: its own, then each package's, sorted by name. */
export async function collectCommands(opts: Pick<RunCliOptions, 'packages' | 'builtin'> = {}): Promise<{
  commands: CliCommand[];
  warnings: string[];
}> {
  const packages = opts.packages ?? (await loadPackages());
  const { commands, warnings } = commandsFrom(packages, opts.builtin ?? builtinCommands);
  for (const p of packages) if (p.error) warnings.push(`package ${p.name} failed to load (its commands are missing): ${p.error}`);
  return { commands: commands.sort((a, b) => a.name.localeCompare(b.name)), warnings };
}

/** The text of `vrepa --help`. */
export function helpText(commands: readonly VrepaCommand[]): string {
  const w = Math.max(8, ...commands.map((c) => c.name.length));
  const lines = commands.map((c) => `  ${padEnd(c.name, w)}  ${c.summary}`);
  return `vrepa ${VERSION}: VideoREPA on TensorFlow.js

Usage: vrepa <command> [arguments] [--help]

Commands:
${lines.join('\n')}

Options:
  -h, --help     show help (also after any command: vrepa <command> --help)
  -V, --version  print the version

Environment:
  VREPA_BACKEND  compute backend: auto (default), tensorflow-gpu, tensorflow, wasm, cpu
`;
}

function commandList(commands: readonly VrepaCommand[]): string {
  return commands.map((c) => c.name).join(', ');
}

/** Match the longest command name that `argv` starts with (words before any option). */
export function matchCommand<C extends VrepaCommand>(commands: readonly C[], argv: readonly string[]): { command: C; rest: string[] } | undefined {
  const words: string[] = [];
  for (const a of argv) {
    if (a.startsWith('-')) break;
    words.push(a);
  }
  for (let k = words.length; k > 0; k--) {
    const name = words.slice(0, k).join(' ');
    const command = commands.find((c) => c.name === name);
    if (command) return { command, rest: argv.slice(k) };
  }
  return undefined;
}

/** Run the CLI with `argv` (the arguments after `vrepa`); resolves to the exit code. */
export async function runCli(argv: readonly string[], opts: RunCliOptions = {}): Promise<number> {
  const io = opts.io ?? processIO;
  const first = argv[0];
  if (first === '--version' || first === '-V') {
    io.out(`${VERSION}\n`);
    return EXIT.ok;
  }
  // The CLI's own commands run without importing every package (start-up); their names are reserved.
  const builtin = opts.builtin ?? builtinCommands;
  const direct = first !== undefined && !first.startsWith('-') && first !== 'help' ? matchCommand(builtin, argv) : undefined;
  if (direct) return runMatched(direct.command, direct.rest, io, opts);

  const { commands, warnings } = await collectCommands(opts);
  for (const w of warnings) io.err(`vrepa: warning: ${w}\n`);

  if (first === undefined) {
    io.err(helpText(commands));
    return EXIT.usage;
  }
  if (first === '--help' || first === '-h') {
    io.out(helpText(commands));
    return EXIT.ok;
  }
  if (first === 'help') {
    if (argv.length === 1) {
      io.out(helpText(commands));
      return EXIT.ok;
    }
    return runCli([...argv.slice(1), '--help'], opts);
  }

  const match = matchCommand(commands, argv);
  if (!match) {
    const word = first.startsWith('-') ? first : argv.filter((a) => !a.startsWith('-')).join(' ');
    const group = commands.filter((c) => c.name.startsWith(`${first} `));
    if (group.length && !first.startsWith('-')) {
      const sub = argv[1];
      const asked = wantsHelp(argv);
      const w = Math.max(...group.map((c) => c.name.length));
      const text = `Usage: vrepa ${first} <subcommand> [arguments] [--help]\n\nSubcommands:\n${group.map((c) => `  ${padEnd(c.name, w)}  ${c.summary}`).join('\n')}\n`;
      if (asked) {
        io.out(text);
        return EXIT.ok;
      }
      io.err(`vrepa: ${sub === undefined || sub.startsWith('-') ? `'${first}' needs a subcommand` : `unknown command '${first} ${sub}'`}\n\n${text}`);
      return EXIT.usage;
    }
    io.err(`vrepa: ${first.startsWith('-') ? `unknown option '${word}'` : `unknown command '${word}'`}\nCommands: ${commandList(commands)}\nRun 'vrepa --help' for details.\n`);
    return EXIT.usage;
  }

  return runMatched(match.command, match.rest, io, opts);
}

async function runMatched(command: CliCommand, rest: string[], io: CliIO, opts: RunCliOptions): Promise<number> {
  if (wantsHelp(rest)) {
    io.out(command.usage.endsWith('\n') ? command.usage : `${command.usage}\n`);
    return EXIT.ok;
  }
  try {
    const code = command.runWith ? await command.runWith(rest, { io, packages: opts.packages }) : await command.run(rest);
    return Number.isInteger(code) ? code : EXIT.failed;
  } catch (e) {
    if (e instanceof UsageError) {
      io.err(`${e.message}\nRun 'vrepa ${command.name} --help' for usage.\n`);
      return EXIT.usage;
    }
    io.err(`vrepa ${command.name}: ${e instanceof Error ? e.message : String(e)}\n`);
    if (process.env.VREPA_DEBUG && e instanceof Error && e.stack) io.err(`${e.stack}\n`);
    return EXIT.failed;
  }
}

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

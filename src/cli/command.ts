import { Command, Option } from "commander";
import { type ApiOptions, HangarApi } from "./api.ts";
import { UsageError } from "./errors.ts";
import { type GlobalOptions, resolveTarget, type Target } from "./target.ts";

/** The options every client command takes, new each time: an Option belongs to one command. */
function globalOptions(): Option[] {
  return [
    new Option("--url <url>", "Hangar server address (else HANGAR_URL, else `hangar login`'s)"),
    new Option("--api-key <key>", "API key (else HANGAR_API_KEY, else `hangar login`'s)"),
    new Option("--json", "print machine-readable JSON on stdout instead of tables and progress"),
  ];
}

/** Adds the options every client command takes: --url, --api-key, --json. */
export function withGlobals(cmd: Command): Command {
  for (const option of globalOptions()) cmd.addOption(option);
  return cmd;
}

/**
 * Lets --url, --api-key and --json come before the command too (`hangar --json models`). With
 * positional options the program reads its own options only up to the command's name, so the copies
 * after it are the command's, and `action` merges the two (the one after the command wins). Call it
 * before adding commands: they inherit the positional setting when created.
 */
export function acceptGlobalsFirst(program: Command): Command {
  withGlobals(program.enablePositionalOptions());
  // A command without these options (serve) must not silently ignore them.
  program.hook("preAction", (_program, actionCommand) => {
    if (actionCommand.options.some((option) => option.long === "--url")) return;
    const given = globalOptions().filter(
      (option) => program.getOptionValue(option.attributeName()) !== undefined,
    );
    if (given.length > 0) {
      throw new UsageError(
        `\`hangar ${actionCommand.name()}\` does not take ${given.map((option) => option.long).join(", ")}`,
      );
    }
  });
  return program;
}

/**
 * A command's option values with those given before it, to the program or to a parent command such
 * as `keys`: the one nearest the command wins (commander's optsWithGlobals lets the program win).
 */
export function optionsWithParents(cmd: Command): Record<string, unknown> {
  const chain: Command[] = [];
  for (let command: Command | null = cmd; command; command = command.parent) chain.unshift(command);
  return Object.assign({}, ...chain.map((command) => command.opts()));
}

/**
 * Wraps an async action, handing it the options merged with those given before the command (see
 * optionsWithParents). Errors are not handled here: they reach main.ts, which prints
 * `hangar: <message>` and exits with the CliError's code (1, or 2 for a UsageError), 2 for commander's
 * usage errors and 1 for anything unexpected.
 */
export function action<A extends unknown[]>(
  fn: (...args: A) => Promise<void>,
): (...args: A) => Promise<void> {
  return async (...args: A) => {
    // commander calls an action with the arguments, then the command's options, then the command.
    const cmd = args.at(-1);
    if (cmd instanceof Command && args.length >= 2) {
      (args as unknown[])[args.length - 2] = optionsWithParents(cmd);
    }
    await fn(...args);
  };
}

/** Resolves the target from the options, runs `fn` with a client, and always closes the client. */
export async function withApi<T>(
  opts: GlobalOptions,
  fn: (api: HangarApi, target: Target) => Promise<T>,
  apiOptions: ApiOptions = {},
): Promise<T> {
  const target = await resolveTarget(opts);
  const api = new HangarApi(target, apiOptions);
  try {
    return await fn(api, target);
  } finally {
    await api.close();
  }
}

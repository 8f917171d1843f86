import { type Command, Option } from "commander";
import { type ApiOptions, HangarApi } from "./api.ts";
import { type GlobalOptions, resolveTarget, type Target } from "./target.ts";

/** Adds the options every client command takes: --url, --api-key, --json. */
export function withGlobals(cmd: Command): Command {
  return cmd
    .addOption(new Option("--url <url>", "Hangar server address (else HANGAR_URL, else `hangar login`'s)"))
    .addOption(new Option("--api-key <key>", "API key (else HANGAR_API_KEY, else `hangar login`'s)"))
    .addOption(new Option("--json", "print machine-readable JSON on stdout instead of tables and progress"));
}

/**
 * Wraps an async action. Errors are not handled here: they reach main.ts, which prints
 * `hangar: <message>` and exits with the CliError's code (1, or 2 for a UsageError), 2 for commander's
 * usage errors and 1 for anything unexpected.
 */
export function action<A extends unknown[]>(
  fn: (...args: A) => Promise<void>,
): (...args: A) => Promise<void> {
  return async (...args: A) => {
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

import type { Command } from "commander";
import { HangarApi } from "../api.ts";
import { action, withGlobals } from "../command.ts";
import { type KeyIdentity, UsageError } from "../errors.ts";
import { printJson, printLine } from "../output.ts";
import { type GlobalOptions, normalizeUrl, saveLogin } from "../target.ts";

/** `hangar login`: checks the key against the server (naming it and its role), then saves the address and key. */
export function register(program: Command): void {
  withGlobals(
    program
      .command("login")
      .description("check an API key against a Hangar server and save both for the other commands")
      .addHelpText(
        "after",
        `
The address and key go to ~/.config/hangar/config.json (or $XDG_CONFIG_HOME/hangar/config.json, or
$HANGAR_CONFIG), readable by you only. HANGAR_URL / HANGAR_API_KEY and --url / --api-key still override
it per command.

Example:
  $ hangar login --url http://127.0.0.1:4000 --api-key "$(cat .hangar/admin-key)"`,
      ),
  ).action(
    action(async (opts: GlobalOptions) => {
      const rawUrl = opts.url ?? process.env.HANGAR_URL;
      const apiKey = opts.apiKey ?? process.env.HANGAR_API_KEY;
      if (!rawUrl || !apiKey) {
        throw new UsageError(
          "login needs the server address and a key: hangar login --url URL --api-key KEY",
        );
      }
      const url = normalizeUrl(rawUrl, opts.url ? "--url" : "HANGAR_URL");
      const api = new HangarApi({ url, apiKey });
      let viewer: KeyIdentity;
      try {
        // Every valid key may read `viewer` (INFERENCE keys too, which may read nothing else).
        ({ viewer } = await api.query<{ viewer: KeyIdentity }>("query Login { viewer { name role } }"));
      } finally {
        await api.close();
      }
      const configPath = await saveLogin({ url, apiKey });
      if (opts.json) printJson({ url, configPath, apiKey: { name: viewer.name, role: viewer.role } });
      else {
        printLine(
          `Logged in to ${url} with the API key '${viewer.name}' (${viewer.role}); ` +
            `saved the address and key in ${configPath}`,
        );
      }
    }),
  );
}

import { type Command, Option } from "commander";
import { unwrap } from "../api.ts";
import {
  API_KEY_FIELDS,
  API_KEY_ROLES,
  type ApiKey,
  type ApiKeyRole,
  apiKeyJson,
  expiryText,
  findApiKey,
  listApiKeys,
  modelNames,
  scopeText,
} from "../api-keys.ts";
import { action, withApi, withGlobals } from "../command.ts";
import { checkName } from "../deploy.ts";
import { UsageError } from "../errors.ts";
import { choiceIgnoringCase, listValues, parseExpiry } from "../option-values.ts";
import { formatTime, info, printJson, printLine, printTable } from "../output.ts";
import { resolveModel } from "../resources.ts";
import type { GlobalOptions } from "../target.ts";

type Result = { __typename: string } & Record<string, unknown>;

interface CreateOptions extends GlobalOptions {
  role: ApiKeyRole;
  model?: string[];
  environment?: string[];
  expires?: Date;
}

const CREATE = `
  mutation CreateApiKey($input: CreateApiKeyInput!) {
    result: createApiKey(input: $input) {
      __typename
      ... on CreatedApiKey { apiKey { ${API_KEY_FIELDS} } secret }
      ... on Error { code message }
      ... on UserError { field }
    }
  }`;

const REVOKE = `
  mutation RevokeApiKey($id: ID!) {
    result: revokeApiKey(id: $id) {
      __typename
      ... on ApiKey { ${API_KEY_FIELDS} }
      ... on Error { code message }
      ... on UserError { field }
    }
  }`;

/** Hints for the errors of these mutations, where the general ones would point elsewhere. */
const KEY_HINTS = {
  NOT_FOUND: "`hangar keys list` lists the keys and their IDs",
  NAME_TAKEN: "choose another name: names are unique among live keys (`hangar keys list` shows them)",
  INVALID_STATE:
    "the bootstrap key `admin` (the server's HANGAR_ADMIN_KEY, or the one in its data dir) cannot be revoked",
};

/** `hangar keys create NAME --role ROLE`: prints the secret, which only this answer ever holds. */
function registerCreate(keys: Command): void {
  withGlobals(
    keys
      .command("create")
      .argument("<name>", "the key's name (1-63 characters, unique among live keys)")
      .addOption(
        new Option("--role <role>", "what the key may do")
          .choices(API_KEY_ROLES)
          .argParser(choiceIgnoringCase(API_KEY_ROLES))
          .makeOptionMandatory(),
      )
      .option(
        "-m, --model <model>",
        "only these models, by name or ID (repeat, or separate with commas; default: every model)",
        listValues,
      )
      .option(
        "-e, --environment <name>",
        "act only on these environments (repeat, or separate with commas; default: every environment)",
        listValues,
      )
      .option("--expires <when>", "expire after a duration (30d, 12h) or at an ISO date", (value) =>
        parseExpiry(value),
      )
      .description("create an API key and print its secret, once")
      .addHelpText(
        "after",
        `
Roles: ADMIN may do everything; DEPLOYER everything on its models but API keys; VIEWER read only;
INFERENCE only the gateway's predict and wake paths. --model limits a key to those models (the others
do not exist for it); --environment limits what it may promote into, push into and control (reads are
never limited). ADMIN keys take neither.

The secret is printed on stdout, once: Hangar keeps only a hash of it and cannot show it again.
--expires takes weeks, days, hours, minutes or seconds (2w, 30d, 1d12h, 90m) from now, or an ISO date
(2027-01-31 is that day's start in UTC) or date-time (2027-01-31T18:00:00Z).

Examples:
  $ hangar keys create ci --role DEPLOYER --model sentiment --environment staging --expires 90d
  $ hangar keys create dashboard --role VIEWER
  $ hangar keys create ci --role DEPLOYER --json | jq -r .secret`,
      ),
  ).action(
    action(async (name: string, opts: CreateOptions) => {
      const models = opts.model ?? [];
      const environments = opts.environment ?? [];
      if (opts.role === "ADMIN" && (models.length > 0 || environments.length > 0)) {
        throw new UsageError("ADMIN keys may do everything: --model and --environment do not apply to them");
      }
      for (const environment of environments) checkName("environment", environment, "--environment");
      const { created, names } = await withApi(opts, async (api) => {
        // By name or ID, like every other command; the key holds IDs, so renames do not matter.
        const resolved = await Promise.all(models.map((ref) => resolveModel(api, ref)));
        const modelIds = [...new Set(resolved.map((m) => m.id))];
        const data = await api.query<{ result: Result }>(CREATE, {
          input: {
            name,
            role: opts.role,
            modelIds: modelIds.length > 0 ? modelIds : null,
            environments: environments.length > 0 ? environments : null,
            expiresAt: opts.expires?.toISOString() ?? null,
          },
        });
        const created = unwrap<{ apiKey: ApiKey; secret: string }>(data.result, "CreatedApiKey", KEY_HINTS);
        return { created, names: new Map(resolved.map((m) => [m.id, m.name])) };
      });
      if (opts.json) {
        printJson({ apiKey: apiKeyJson(created.apiKey), secret: created.secret });
        return;
      }
      const key = created.apiKey;
      const scope = scopeText(key, names);
      const expires = key.expiresAt ? `expires ${formatTime(key.expiresAt)}` : "never expires";
      info(
        `Created API key '${key.name}' (${key.id}): ${key.role}, models ${scope.models}, ` +
          `environments ${scope.environments}, ${expires}.`,
      );
      info("Store the secret now: it is shown only this once and cannot be shown again.");
      printLine(created.secret);
    }),
  );
}

/** `hangar keys list`: every key, revoked ones included. */
function registerList(keys: Command): void {
  withGlobals(
    keys
      .command("list")
      .description("list the API keys (never their secrets): role, scope, expiry, last use")
      .addHelpText(
        "after",
        `
PREFIX is the start of each key's secret, to recognise it. Revoked keys stay listed, with the time.

Examples:
  $ hangar keys list
  $ hangar keys list --json | jq -r '.[] | select(.revokedAt == null) | .name'`,
      ),
  ).action(
    action(async (opts: GlobalOptions) => {
      const { list, names } = await withApi(opts, async (api) => {
        const list = await listApiKeys(api);
        if (opts.json) return { list, names: new Map<string, string>() };
        return {
          list,
          names: await modelNames(
            api,
            list.flatMap((k) => k.modelIds ?? []),
          ),
        };
      });
      if (opts.json) {
        printJson(list.map(apiKeyJson));
        return;
      }
      if (list.length === 0) {
        info("No API keys.");
        return;
      }
      printTable(
        list.map((key) => ({
          name: key.name,
          id: key.id,
          role: key.role,
          ...scopeText(key, names),
          prefix: key.prefix,
          created: formatTime(key.createdAt),
          expires: expiryText(key),
          lastUsed: formatTime(key.lastUsedAt),
          revoked: formatTime(key.revokedAt),
        })),
        [
          { key: "name", header: "NAME" },
          { key: "id", header: "ID" },
          { key: "role", header: "ROLE" },
          { key: "models", header: "MODELS" },
          { key: "environments", header: "ENVIRONMENTS" },
          { key: "prefix", header: "PREFIX" },
          { key: "created", header: "CREATED" },
          { key: "expires", header: "EXPIRES" },
          { key: "lastUsed", header: "LAST USED" },
          { key: "revoked", header: "REVOKED" },
        ],
      );
    }),
  );
}

/** `hangar keys revoke NAME_OR_ID`. */
function registerRevoke(keys: Command): void {
  withGlobals(
    keys
      .command("revoke")
      .argument("<key>", "the key's ID, or the name of a live key")
      .description("revoke an API key: it is refused from then on, and its sessions end")
      .addHelpText(
        "after",
        `
Revoking cannot be undone. The bootstrap key \`admin\` cannot be revoked.

Examples:
  $ hangar keys revoke ci
  $ hangar keys revoke key_3kTq9xY2 --json`,
      ),
  ).action(
    action(async (ref: string, opts: GlobalOptions) => {
      const revoked = await withApi(opts, async (api) => {
        const key = findApiKey(await listApiKeys(api), ref);
        const data = await api.query<{ result: Result }>(REVOKE, { id: key.id });
        return unwrap<ApiKey>(data.result, "ApiKey", KEY_HINTS);
      });
      if (opts.json) printJson(apiKeyJson(revoked));
      else printLine(`Revoked API key '${revoked.name}' (${revoked.id}): it is refused from now on`);
    }),
  );
}

/** `hangar keys create|list|revoke` (ADMIN keys only; any other key is refused with FORBIDDEN). */
export function register(program: Command): void {
  const keys = withGlobals(
    program
      .command("keys")
      .description("create, list and revoke API keys (with an ADMIN key)")
      .addHelpText(
        "after",
        `
Examples:
  $ hangar keys create ci --role DEPLOYER --model sentiment --expires 90d
  $ hangar keys list
  $ hangar keys revoke ci`,
      ),
  );
  registerCreate(keys);
  registerList(keys);
  registerRevoke(keys);
}

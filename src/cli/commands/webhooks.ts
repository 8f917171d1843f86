import type { Command } from "commander";
import { unwrap } from "../api.ts";
import { modelNames } from "../api-keys.ts";
import { action, withApi, withGlobals } from "../command.ts";
import { UsageError } from "../errors.ts";
import { listValues } from "../option-values.ts";
import { formatTime, info, printJson, printLine, printTable } from "../output.ts";
import { resolveModel } from "../resources.ts";
import type { GlobalOptions } from "../target.ts";

/** ModelEventType of API.md section 5 (and DEPLOYMENT_PATCHED): what --events may name. */
const EVENT_TYPES = [
  "MODEL_CREATED",
  "MODEL_DELETED",
  "DEPLOYMENT_CREATED",
  "DEPLOYMENT_STATUS_CHANGED",
  "DEPLOYMENT_DELETED",
  "DEPLOYMENT_PATCHED",
  "ENVIRONMENT_CREATED",
  "ENVIRONMENT_UPDATED",
  "ENVIRONMENT_DELETED",
  "PROMOTION_STARTED",
  "PROMOTION_STEP_CHANGED",
  "CANARY_STAGE_CHANGED",
  "PROMOTION_FINISHED",
  "AUTOSCALING_UPDATED",
] as const;

/** Every field of Webhook but its deliveries; --json prints the object as the API answers it. */
const WEBHOOK_FIELDS = "id url modelId events createdAt";

interface Webhook {
  id: string;
  url: string;
  modelId: string | null;
  events: string[] | null;
  createdAt: string;
}

interface LastDelivery {
  status: string;
  attempts: number;
  lastError: string | null;
}

type Result = { __typename: string } & Record<string, unknown>;

const CREATE = `
  mutation CreateWebhook($input: CreateWebhookInput!) {
    result: createWebhook(input: $input) {
      __typename
      ... on CreatedWebhook { webhook { ${WEBHOOK_FIELDS} } secret }
      ... on Error { code message }
      ... on UserError { field }
    }
  }`;

const LIST = `
  query Webhooks {
    webhooks { ${WEBHOOK_FIELDS} deliveries(first: 1) { edges { node { status attempts lastError } } } }
  }`;

const DELETE = `
  mutation DeleteWebhook($id: ID!) {
    result: deleteWebhook(id: $id) {
      __typename
      ... on Webhook { ${WEBHOOK_FIELDS} }
      ... on Error { code message }
      ... on UserError { field }
    }
  }`;

const HINTS = {
  NOT_FOUND: "`hangar webhooks list` lists the webhooks and their IDs (and `hangar models` the models)",
  INVALID_INPUT: "a webhook URL is http:// or https://, without a user name or password",
};

/** A webhook as --json prints it: its fields alone (a mutation's answer also holds __typename). */
function webhookJson(webhook: Webhook): Webhook {
  return {
    id: webhook.id,
    url: webhook.url,
    modelId: webhook.modelId,
    events: webhook.events,
    createdAt: webhook.createdAt,
  };
}

/** --events: names of ModelEventType, in any case, comma-separated or repeated; each once. */
function eventTypes(values: string[] | undefined): string[] | null {
  if (!values || values.length === 0) return null;
  const types = values.map((value) => value.toUpperCase());
  for (const type of types) {
    if (!(EVENT_TYPES as readonly string[]).includes(type)) {
      throw new UsageError(`--events: '${type}' is not an event type (one of ${EVENT_TYPES.join(", ")})`);
    }
  }
  return [...new Set(types)];
}

/** Words joined by ", " in lines of about 100 characters, for help text. */
function wrapped(words: readonly string[]): string {
  const lines: string[] = [];
  let line = "";
  for (const word of words) {
    const next = line === "" ? word : `${line}, ${word}`;
    if (next.length > 96 && line !== "") {
      lines.push(`${line},`);
      line = word;
    } else line = next;
  }
  return [...lines, line].join("\n");
}

function lastDeliveryText(last: LastDelivery | undefined): string {
  if (!last) return "";
  const tries = `${last.attempts} attempt${last.attempts === 1 ? "" : "s"}`;
  return last.status === "DELIVERED"
    ? `DELIVERED (${tries})`
    : `${last.status} (${tries}: ${last.lastError ?? ""})`;
}

interface CreateOptions extends GlobalOptions {
  model?: string;
  events?: string[];
}

function registerCreate(webhooks: Command): void {
  withGlobals(
    webhooks
      .command("create")
      // An argument, not --url: that flag names the Hangar server on every command.
      .argument("<url>", "where the events are POSTed (http:// or https://)")
      .option("-m, --model <model>", "only this model's events, by name or ID (default: every model)")
      .option(
        "--events <types>",
        "only these event types (repeat, or separate with commas; default: every type)",
        listValues,
      )
      .description("create a webhook and print its signing secret, once")
      .addHelpText(
        "after",
        `
Every matching event committed from now on is POSTed to the URL as JSON, signed with the secret (the
x-hangar-signature header; see the README's Webhooks section for checking it). The secret is printed
on stdout, once: it cannot be shown again.

Event types: ${wrapped(EVENT_TYPES)}.

Examples:
  $ hangar webhooks create https://hooks.example.com/hangar --model sentiment
  $ hangar webhooks create https://ci.example.com/h --events PROMOTION_FINISHED,CANARY_STAGE_CHANGED
  $ SECRET=$(hangar webhooks create https://hooks.example.com/hangar)`,
      ),
  ).action(
    action(async (url: string, opts: CreateOptions) => {
      const events = eventTypes(opts.events);
      const { created, modelName } = await withApi(opts, async (api) => {
        const model = opts.model ? await resolveModel(api, opts.model) : null;
        const data = await api.query<{ result: Result }>(CREATE, {
          input: { url, modelId: model?.id ?? null, events },
        });
        const created = unwrap<{ webhook: Webhook; secret: string }>(data.result, "CreatedWebhook", HINTS);
        return { created, modelName: model?.name ?? null };
      });
      if (opts.json) {
        printJson({ webhook: webhookJson(created.webhook), secret: created.secret });
        return;
      }
      const hook = created.webhook;
      info(
        `Created webhook ${hook.id} to ${hook.url}: ${modelName ? `model ${modelName}` : "every model"}, ` +
          `${hook.events ? `events ${hook.events.join(",")}` : "every event type"}.`,
      );
      info("Keep the signing secret now: it is shown only this once and cannot be shown again.");
      printLine(created.secret);
    }),
  );
}

function registerList(webhooks: Command): void {
  withGlobals(
    webhooks
      .command("list")
      .description("list the webhooks (never their secrets), each with its latest delivery")
      .addHelpText(
        "after",
        `
Examples:
  $ hangar webhooks list
  $ hangar webhooks list --json | jq -r '.[].url'`,
      ),
  ).action(
    action(async (opts: GlobalOptions) => {
      type Listed = Webhook & { deliveries: { edges: Array<{ node: LastDelivery }> } };
      const { list, names } = await withApi(opts, async (api) => {
        const { webhooks: list } = await api.query<{ webhooks: Listed[] }>(LIST);
        if (opts.json) return { list, names: new Map<string, string>() };
        return {
          list,
          names: await modelNames(
            api,
            list.flatMap((w) => (w.modelId ? [w.modelId] : [])),
          ),
        };
      });
      if (opts.json) {
        printJson(list.map(webhookJson));
        return;
      }
      if (list.length === 0) {
        info("No webhooks.");
        return;
      }
      printTable(
        list.map((hook) => ({
          id: hook.id,
          url: hook.url,
          model: hook.modelId ? (names.get(hook.modelId) ?? hook.modelId) : "all",
          events: hook.events ? hook.events.join(",") : "all",
          created: formatTime(hook.createdAt),
          last: lastDeliveryText(hook.deliveries.edges[0]?.node),
        })),
        [
          { key: "id", header: "ID" },
          { key: "url", header: "URL" },
          { key: "model", header: "MODEL" },
          { key: "events", header: "EVENTS" },
          { key: "created", header: "CREATED" },
          { key: "last", header: "LAST DELIVERY" },
        ],
      );
    }),
  );
}

function registerDelete(webhooks: Command): void {
  withGlobals(
    webhooks
      .command("delete")
      .argument("<id>", "the webhook's ID (`hangar webhooks list` shows them)")
      .description("delete a webhook: nothing more is sent to it, pending deliveries included")
      .addHelpText(
        "after",
        `
Examples:
  $ hangar webhooks delete whk_3kTq9xY2cLw8VnDs`,
      ),
  ).action(
    action(async (id: string, opts: GlobalOptions) => {
      const deleted = await withApi(opts, async (api) => {
        const data = await api.query<{ result: Result }>(DELETE, { id });
        return unwrap<Webhook>(data.result, "Webhook", HINTS);
      });
      if (opts.json) printJson(webhookJson(deleted));
      else printLine(`Deleted webhook ${deleted.id} (${deleted.url}): nothing more is sent to it`);
    }),
  );
}

/** `hangar webhooks create|list|delete` (ADMIN keys, or DEPLOYER keys for their models). */
export function register(program: Command): void {
  const webhooks = withGlobals(
    program
      .command("webhooks")
      .description("create, list and delete webhooks, which POST signed events to a URL")
      .addHelpText(
        "after",
        `
Examples:
  $ hangar webhooks create https://hooks.example.com/hangar --model sentiment
  $ hangar webhooks list
  $ hangar webhooks delete whk_3kTq9xY2cLw8VnDs`,
      ),
  );
  registerCreate(webhooks);
  registerList(webhooks);
  registerDelete(webhooks);
}

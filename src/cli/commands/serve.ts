import type { Command } from "commander";
import { action } from "../command.ts";
import { UsageError } from "../errors.ts";

/** Each `hangar serve` flag and the setting (environment variable, README "Settings") it overrides. */
const FLAGS: Array<{ flag: string; key: string; variable: string; help: string }> = [
  { flag: "--port <port>", key: "port", variable: "PORT", help: "HTTP port (default 4000)" },
  { flag: "--host <host>", key: "host", variable: "HOST", help: "listen address (default 127.0.0.1)" },
  {
    flag: "--data-dir <dir>",
    key: "dataDir",
    variable: "HANGAR_DATA_DIR",
    help: "embedded database, artifacts, admin key (default ./.hangar)",
  },
  {
    flag: "--database-url <url>",
    key: "databaseUrl",
    variable: "DATABASE_URL",
    help: "postgres:// URL of a PostgreSQL server to use instead of the embedded database",
  },
  {
    flag: "--admin-key <key>",
    key: "adminKey",
    variable: "HANGAR_ADMIN_KEY",
    help: "API key with every permission (default: generated on first start)",
  },
  {
    flag: "--public-url <url>",
    key: "publicUrl",
    variable: "HANGAR_PUBLIC_URL",
    help: "base of the absolute URLs the API returns (default http://HOST:PORT)",
  },
  {
    flag: "--max-upload-bytes <n>",
    key: "maxUploadBytes",
    variable: "HANGAR_MAX_UPLOAD_BYTES",
    help: "largest accepted model archive (default 104857600)",
  },
  {
    flag: "--max-request-bytes <n>",
    key: "maxRequestBytes",
    variable: "HANGAR_MAX_REQUEST_BYTES",
    help: "largest inference request body (default 10485760)",
  },
  {
    flag: "--max-body-bytes <n>",
    key: "maxBodyBytes",
    variable: "HANGAR_MAX_BODY_BYTES",
    help: "largest GraphQL body that is not an upload (default 1048576)",
  },
  {
    flag: "--max-response-bytes <n>",
    key: "maxResponseBytes",
    variable: "HANGAR_MAX_RESPONSE_BYTES",
    help: "largest answer the gateway relays from a replica (default 104857600)",
  },
  {
    flag: "--retention-days <days>",
    key: "retentionDays",
    variable: "HANGAR_RETENTION_DAYS",
    help: "days log lines and unreferenced artifacts are kept (default 30)",
  },
  {
    flag: "--ready-timeout <seconds>",
    key: "readyTimeout",
    variable: "HANGAR_READY_TIMEOUT",
    help: "how long a request is held for a starting deployment (default 300)",
  },
  {
    flag: "--predict-timeout <seconds>",
    key: "predictTimeout",
    variable: "HANGAR_PREDICT_TIMEOUT",
    help: "how long a model may take to answer (default 300)",
  },
  {
    flag: "--log-level <level>",
    key: "logLevel",
    variable: "HANGAR_LOG_LEVEL",
    help: "debug, info, warn or error (default info)",
  },
  {
    flag: "--autoscaler-interval-ms <ms>",
    key: "autoscalerIntervalMs",
    variable: "HANGAR_AUTOSCALER_INTERVAL_MS",
    help: "how often the autoscaler evaluates every deployment (default 500)",
  },
  {
    flag: "--cors-origins <origins>",
    key: "corsOrigins",
    variable: "HANGAR_CORS_ORIGINS",
    help: "comma-separated origins whose pages may call the API with a bearer key (default none)",
  },
  {
    flag: "--graphql-max-depth <n>",
    key: "graphqlMaxDepth",
    variable: "HANGAR_GRAPHQL_MAX_DEPTH",
    help: "deepest GraphQL selection, the root field counting 1 (default 12)",
  },
  {
    flag: "--graphql-max-tokens <n>",
    key: "graphqlMaxTokens",
    variable: "HANGAR_GRAPHQL_MAX_TOKENS",
    help: "most tokens in a GraphQL document (default 5000)",
  },
  {
    flag: "--graphql-max-aliases <n>",
    key: "graphqlMaxAliases",
    variable: "HANGAR_GRAPHQL_MAX_ALIASES",
    help: "most aliases in a GraphQL operation (default 50)",
  },
  {
    flag: "--graphql-max-cost <n>",
    key: "graphqlMaxCost",
    variable: "HANGAR_GRAPHQL_MAX_COST",
    help: "highest cost of a GraphQL operation (default 50000)",
  },
];

/** `hangar serve`: the server, with flags that override the environment's settings. */
export function register(program: Command): void {
  const cmd = program
    .command("serve")
    .description("run the Hangar server (what `npm start` runs); stops gracefully on Ctrl-C or SIGTERM")
    .addHelpText(
      "after",
      `\nEvery flag overrides an environment variable of the same setting:\n${FLAGS.map(
        (f) => `  ${f.flag.split(" ")[0]!.padEnd(26)} ${f.variable}`,
      ).join("\n")}\n`,
    );
  for (const f of FLAGS) cmd.option(f.flag, `${f.help} [${f.variable}]`);
  cmd.action(
    action(async (opts: Record<string, string | undefined>) => {
      const env = { ...process.env };
      for (const f of FLAGS) {
        const value = opts[f.key];
        if (value !== undefined) env[f.variable] = value;
      }
      // Loaded here, so that client commands do not load the whole server.
      const { loadConfig } = await import("../../config.ts");
      const { createLogger } = await import("../../logger.ts");
      const { startServer } = await import("../../server.ts");
      let config: ReturnType<typeof loadConfig>;
      try {
        config = loadConfig(env);
      } catch (error) {
        throw new UsageError((error as Error).message);
      }
      const log = createLogger(config.logLevel);
      // A promise nobody awaited that failed is a defect of ours, not a reason to drop every request in
      // flight: it is logged, with its stack, and the server carries on.
      process.on("unhandledRejection", (reason) => {
        log.error({ err: reason }, "unhandled rejection (a defect in Hangar; please report it)");
      });
      const server = await startServer(config, log);
      const lines = [
        "",
        `Hangar is running at ${server.url}`,
        // The link is a credential: printed with the banner only, never into the structured log.
        `  Sign in: ${server.signInUrl}`,
        `           (opens Hangar in a browser as admin: one use, within 15 minutes)`,
        `  GraphiQL:  ${server.url}/graphql`,
        `  Gateway:   ${server.url}/models/{modelId}/predict`,
      ];
      if (server.adminKeyCreated) {
        lines.push(
          `  Admin key: ${server.adminKey}`,
          `             (shown once; stored in ${server.adminKeyFile})`,
        );
      } else if (server.adminKeyFile) {
        lines.push(`  Admin key: stored in ${server.adminKeyFile}`);
      } else {
        lines.push("  Admin key: the HANGAR_ADMIN_KEY you set");
      }
      lines.push(`  CLI:       npx hangar login --url ${server.url} --api-key <admin key>`);
      const { sandbox, limits, reasons } = server.isolation;
      lines.push(
        `  Replicas:  ${sandbox === "FENCED" ? "fenced" : `NOT fenced (${sandbox})`}, resource limits ${limits ? "on" : "OFF"}`,
        ...reasons.map((reason) => `             ${reason}`),
      );
      process.stderr.write(`${lines.join("\n")}\n\n`);
      // Runs until SIGINT/SIGTERM; then drains and stops every replica before returning.
      await new Promise<void>((resolve, reject) => {
        let stopping = false;
        const stop = (signal: string) => {
          if (stopping) return;
          stopping = true;
          log.info({ signal }, "stopping: finishing requests and stopping replicas");
          server.close().then(resolve, (error: unknown) => {
            log.error({ err: error }, "shutdown failed");
            reject(error);
          });
        };
        process.on("SIGINT", () => stop("SIGINT"));
        process.on("SIGTERM", () => stop("SIGTERM"));
      });
    }),
  );
}

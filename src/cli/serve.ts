import type { Command } from "commander";
import { loadConfig } from "../config.ts";
import { createLogger } from "../logger.ts";
import { startServer } from "../server.ts";

/** `hangar serve`: the server, with flags that override the environment's settings. */
export function registerServe(program: Command): void {
  program
    .command("serve")
    .description("run the Hangar server (what `npm start` runs)")
    .option("--port <port>", "port to listen on (PORT, default 4000)")
    .option("--host <host>", "address to listen on (HOST, default 127.0.0.1)")
    .option("--data-dir <dir>", "embedded database, artifacts and logs (HANGAR_DATA_DIR, default ./.hangar)")
    .option(
      "--database-url <url>",
      "PostgreSQL server to use instead of the embedded database (DATABASE_URL)",
    )
    .option("--admin-key <key>", "API key with every permission (HANGAR_ADMIN_KEY)")
    .action(
      async (opts: {
        port?: string;
        host?: string;
        dataDir?: string;
        databaseUrl?: string;
        adminKey?: string;
      }) => {
        const env = { ...process.env };
        if (opts.port !== undefined) env.PORT = opts.port;
        if (opts.host !== undefined) env.HOST = opts.host;
        if (opts.dataDir !== undefined) env.HANGAR_DATA_DIR = opts.dataDir;
        if (opts.databaseUrl !== undefined) env.DATABASE_URL = opts.databaseUrl;
        if (opts.adminKey !== undefined) env.HANGAR_ADMIN_KEY = opts.adminKey;
        const config = loadConfig(env);
        const log = createLogger(config.logLevel);
        const server = await startServer(config, log);
        const lines = [
          "",
          `Hangar is running at ${server.url}`,
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
        process.stderr.write(`${lines.join("\n")}\n\n`);
        let stopping = false;
        const stop = (signal: string) => {
          if (stopping) return;
          stopping = true;
          log.info({ signal }, "stopping: finishing requests and stopping replicas");
          server.close().then(
            () => process.exit(0),
            (error: unknown) => {
              log.error({ err: error }, "shutdown failed");
              process.exit(1);
            },
          );
        };
        process.on("SIGINT", () => stop("SIGINT"));
        process.on("SIGTERM", () => stop("SIGTERM"));
      },
    );
}

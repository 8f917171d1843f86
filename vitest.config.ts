import { createRequire } from "node:module";
import { defineConfig } from "vitest/config";

const require = createRequire(import.meta.url);

/**
 * Files whose subject is the same whichever PostgreSQL holds the data (the replica fence, hostile and
 * oversized input, live reload's runtime side): they run on the embedded database only. PGlite is
 * PostgreSQL itself, so SQL behaves alike; what the second run is for is the server and its pool.
 */
const DATABASE_INDEPENDENT = [
  "test/integration/isolation.test.ts",
  "test/integration/fuzz.test.ts",
  "test/integration/gateway-limits.test.ts",
  "test/integration/body-limits.test.ts",
  "test/integration/graphql-limits.test.ts",
  "test/integration/log-limits.test.ts",
  "test/integration/live-reload.test.ts",
  "test/integration/metrics.test.ts",
];

/** Files about several Hangar processes on one database, which only PostgreSQL can be (API.md section 10). */
const POSTGRES_ONLY = [
  "test/integration/members.test.ts",
  "test/integration/members-traffic.test.ts",
  "test/integration/database-outage.test.ts",
  "test/integration/webhooks-members.test.ts",
];

/** Integration tests run twice: on the embedded database and on a throwaway PostgreSQL cluster. */
const integration = (database: "pglite" | "postgres") => ({
  extends: true as const,
  test: {
    name: `integration-${database}`,
    include: ["test/integration/**/*.test.ts"],
    exclude: database === "postgres" ? DATABASE_INDEPENDENT : POSTGRES_ONLY,
    env: { HANGAR_TEST_DB: database },
    globalSetup: ["test/support/global-setup.ts"],
  },
});

export default defineConfig({
  resolve: {
    // One copy of graphql: graphql-ws rejects results built by a second (ESM vs CJS) copy.
    alias: { graphql: require.resolve("graphql/index.js") },
  },
  test: {
    testTimeout: 60_000,
    hookTimeout: 120_000,
    pool: "forks",
    maxWorkers: 2,
    projects: [
      { extends: true, test: { name: "unit", include: ["test/unit/**/*.test.ts"] } },
      integration("pglite"),
      integration("postgres"),
      {
        // The `hangar` command as a separate process against a real server, on the embedded database only.
        extends: true,
        test: {
          name: "cli",
          include: ["test/cli/**/*.test.ts"],
          // Every command is a process of its own (about a second of CPU to start): a busy machine needs room.
          testTimeout: 120_000,
          env: { HANGAR_TEST_DB: "pglite" },
          globalSetup: ["test/support/global-setup.ts"],
        },
      },
    ],
  },
});

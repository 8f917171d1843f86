import { mkdir, mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import pg from "pg";
import type { TestProject } from "vitest/node";
import { openDatabase } from "../../src/db/client.ts";
import { startPostgres, type ThrowawayPostgres } from "./postgres.ts";

declare module "vitest" {
  export interface ProvidedContext {
    /** The database kind integration tests run against. */
    database: "pglite" | "postgres";
    /** postgres: the throwaway cluster's admin URL. */
    postgresUrl: string;
    /** postgres: a migrated database to create each test server's database from (CREATE DATABASE ... TEMPLATE). */
    postgresTemplate: string;
    /** pglite: a migrated data dir to copy (creating one costs ~4 s and ~900 MB). */
    pgliteTemplate: string;
  }
}

const POSTGRES_TEMPLATE = "hangar_template";

/**
 * Runs once per project that names it. The database comes from the project's own `env` (vitest.config.ts),
 * not from this process's: in a full run every project's setup shares one process, so reading
 * `process.env` handed the PostgreSQL project the embedded database. Each call returns its own teardown
 * for the same reason (module-level state would be overwritten by the next project's setup).
 */
export async function setup(project: TestProject): Promise<() => Promise<void>> {
  const wanted = project.config.env?.HANGAR_TEST_DB ?? process.env.HANGAR_TEST_DB;
  const database = wanted === "postgres" ? "postgres" : "pglite";
  project.provide("database", database);
  const scratch = await mkdtemp(path.join(tmpdir(), "hangar-template-"));
  const template = path.join(scratch, "data");
  let postgres: ThrowawayPostgres | null = null;
  const teardown = async () => {
    await postgres?.stop();
    await rm(scratch, { recursive: true, force: true });
  };
  if (database === "postgres") {
    postgres = await startPostgres();
    project.provide("postgresUrl", postgres.url);
    project.provide("pgliteTemplate", "");
    // Migrated once, as the embedded template is: a server then starts on an up-to-date schema.
    const admin = new pg.Client({ connectionString: postgres.url });
    await admin.connect();
    await admin.query(`CREATE DATABASE ${POSTGRES_TEMPLATE}`);
    await admin.end();
    const url = new URL(postgres.url);
    url.pathname = `/${POSTGRES_TEMPLATE}`;
    const db = await openDatabase({ databaseUrl: url.toString(), dataDir: template });
    await db.close();
    project.provide("postgresTemplate", POSTGRES_TEMPLATE);
  } else {
    await mkdir(template, { recursive: true });
    const db = await openDatabase({ databaseUrl: null, dataDir: template });
    await db.close();
    project.provide("pgliteTemplate", template);
    project.provide("postgresUrl", "");
    project.provide("postgresTemplate", "");
  }
  return teardown;
}

import { cp, mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { PGlite } from "@electric-sql/pglite";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  applyMigrations,
  DEFAULT_MIGRATIONS_DIR,
  migrationChecksum,
  readMigrations,
} from "../../src/db/migrate.ts";
import { diffDatabaseToSchema } from "../../src/db/schema-engine.ts";
import type { SqlSession } from "../../src/db/sql.ts";

const repo = fileURLToPath(new URL("../..", import.meta.url));
const schemaPath = path.join(repo, "prisma", "schema.prisma");
const migrationsDir = path.join(repo, "prisma", "migrations");

// One PGlite for the whole file (a fresh one costs seconds): migrated once in
// beforeAll; tests that tamper with the history put it back.
let db: PGlite;
let session: SqlSession;
let firstRun: string[];

beforeAll(async () => {
  db = await PGlite.create();
  session = {
    query: async <Row>(sql: string, params?: unknown[]) => (await db.query<Row>(sql, params)).rows,
    exec: async (sql: string) => {
      await db.exec(sql);
    },
  };
  firstRun = await applyMigrations(session);
});

afterAll(async () => {
  await db?.close();
});

describe("migrations", () => {
  it("agree with schema.prisma (else: npm run migrate:new -- <name>)", async () => {
    // The database holds exactly what the committed migrations produce, so any
    // difference is a schema.prisma change nobody wrote a migration for.
    const diff = await diffDatabaseToSchema(db, schemaPath);
    expect(
      diff,
      "schema.prisma differs from the committed migrations; run `npm run migrate:new -- <name>`",
    ).toBe("");
  });

  it("resolves its default folder to the repository's, whatever the cwd", () => {
    expect(DEFAULT_MIGRATIONS_DIR).toBe(migrationsDir);
  });

  it("applies every committed migration once, recorded as Prisma does", async () => {
    const committed = await readMigrations(migrationsDir);
    expect(committed.length).toBeGreaterThan(0);
    expect(firstRun).toEqual(committed.map((m) => m.name));
    expect(await applyMigrations(session)).toEqual([]);

    const tables = await session.query<{ table_name: string }>(
      "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'",
    );
    expect(tables.map((t) => t.table_name)).toEqual(
      expect.arrayContaining([
        "_prisma_migrations",
        "Model",
        "Environment",
        "Deployment",
        "Replica",
        "LogLine",
        "ModelEvent",
      ]),
    );
    const rows = await session.query<{
      migration_name: string;
      checksum: string;
      applied_steps_count: number;
    }>(
      "SELECT migration_name, checksum, applied_steps_count FROM _prisma_migrations WHERE finished_at IS NOT NULL ORDER BY started_at",
    );
    expect(rows).toEqual(
      committed.map((m) => ({
        migration_name: m.name,
        checksum: migrationChecksum(m.sql),
        applied_steps_count: 1,
      })),
    );
  });

  it("refuses to start when an applied migration was edited", async () => {
    const [row] = await session.query<{ id: string; checksum: string }>(
      "SELECT id, checksum FROM _prisma_migrations ORDER BY started_at LIMIT 1",
    );
    if (!row) throw new Error("no applied migration");
    await session.query("UPDATE _prisma_migrations SET checksum = $1 WHERE id = $2", [
      "0".repeat(64),
      row.id,
    ]);
    try {
      await expect(applyMigrations(session)).rejects.toThrow(/edited after it was applied/);
    } finally {
      await session.query("UPDATE _prisma_migrations SET checksum = $1 WHERE id = $2", [
        row.checksum,
        row.id,
      ]);
    }
  });

  it("refuses to start when an applied migration is missing from the folder", async () => {
    await session.query(
      "INSERT INTO _prisma_migrations (id, checksum, migration_name, finished_at) VALUES ('gone', $1, '29990101000000_gone', now())",
      ["0".repeat(64)],
    );
    try {
      await expect(applyMigrations(session)).rejects.toThrow(
        /29990101000000_gone is recorded as applied but is missing/,
      );
    } finally {
      await session.query("DELETE FROM _prisma_migrations WHERE id = 'gone'");
    }
  });

  it("rolls a failing migration back entirely and names it", async () => {
    const dir = await mkdtemp(path.join(tmpdir(), "hangar-migrations-"));
    try {
      await cp(migrationsDir, dir, { recursive: true });
      await mkdir(path.join(dir, "29990101000000_broken"));
      await writeFile(
        path.join(dir, "29990101000000_broken", "migration.sql"),
        'CREATE TABLE "Half" (id INT);\nSELECT 1 / 0;\n',
      );
      await expect(applyMigrations(session, dir)).rejects.toThrow(/29990101000000_broken failed/);
      const leftovers = await session.query(
        "SELECT 1 FROM _prisma_migrations WHERE migration_name = '29990101000000_broken' UNION ALL SELECT 1 FROM information_schema.tables WHERE table_name = 'Half'",
      );
      expect(leftovers).toEqual([]);
      // Released despite the failure (the same session could re-take it, so ask pg_locks).
      expect(await session.query("SELECT 1 FROM pg_locks WHERE locktype = 'advisory'")).toEqual([]);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

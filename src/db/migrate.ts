/**
 * Applies the committed migrations (prisma/migrations/<name>/migration.sql) at
 * server start. Prisma's own `migrate deploy` needs a native engine this
 * project cannot count on, so this does the same job over a plain SqlSession and
 * keeps Prisma's bookkeeping (`_prisma_migrations`, its lock key, its checksums):
 * either tool can take over a database the other one migrated.
 */
import { createHash, randomUUID } from "node:crypto";
import type { Dirent } from "node:fs";
import { readdir, readFile } from "node:fs/promises";
import path from "node:path";
import { packagePath } from "../package-root.ts";
import type { SqlSession } from "./sql.ts";

/** Inside the package, so that starting the server from any cwd finds them. */
export const DEFAULT_MIGRATIONS_DIR = packagePath("prisma", "migrations");

/** Prisma's own key: a `prisma migrate deploy` running beside us waits for us, and we for it. */
const ADVISORY_LOCK_KEY = 72707369;

// Prisma's DDL, verbatim but for IF NOT EXISTS (we hold the lock, so that is only belt and braces).
const CREATE_MIGRATIONS_TABLE = `CREATE TABLE IF NOT EXISTS _prisma_migrations (
    id                      VARCHAR(36) PRIMARY KEY NOT NULL,
    checksum                VARCHAR(64) NOT NULL,
    finished_at             TIMESTAMPTZ,
    migration_name          VARCHAR(255) NOT NULL,
    logs                    TEXT,
    rolled_back_at          TIMESTAMPTZ,
    started_at              TIMESTAMPTZ NOT NULL DEFAULT now(),
    applied_steps_count     INTEGER NOT NULL DEFAULT 0
);`;

export interface MigrationFile {
  /** The directory name, e.g. `20260101120000_init`: the migration's identity. */
  name: string;
  sql: string;
}

/** The committed migrations, in the order Prisma applies them. A missing folder means none. */
export async function readMigrations(migrationsDir: string): Promise<MigrationFile[]> {
  let entries: Dirent[];
  try {
    entries = await readdir(migrationsDir, { withFileTypes: true });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return [];
    throw err;
  }
  // localeCompare, not code-point order: it is what Prisma's CLI sorts with.
  const names = entries
    .filter((e) => e.isDirectory())
    .map((e) => e.name)
    .sort((a, b) => a.localeCompare(b));
  return Promise.all(
    names.map(async (name) => {
      const file = path.join(migrationsDir, name, "migration.sql");
      try {
        return { name, sql: await readFile(file, "utf8") };
      } catch (err) {
        throw new Error(`Migration ${name} has no readable migration.sql (${file})`, { cause: err });
      }
    }),
  );
}

/** Prisma's checksum: sha256 of the script, lowercase hex. */
export function migrationChecksum(sql: string): string {
  return createHash("sha256").update(sql, "utf8").digest("hex");
}

// Like Prisma, accept a checkout whose line endings git converted, or every
// Windows clone would refuse to start.
function checksumMatches(sql: string, checksum: string): boolean {
  return [sql, sql.replaceAll("\r\n", "\n"), sql.replaceAll("\r\n", "\n").replaceAll("\n", "\r\n")].some(
    (variant) => migrationChecksum(variant) === checksum,
  );
}

interface AppliedRow {
  id: string;
  checksum: string;
  migration_name: string;
  finished_at: unknown;
  logs: string | null;
}

/**
 * Brings the database up to the committed migrations; returns the names it applied,
 * in order. Throws, applying nothing, when the recorded history does not match the
 * folder (an applied migration edited or deleted, or one left half-applied).
 */
export async function applyMigrations(
  session: SqlSession,
  migrationsDir: string = DEFAULT_MIGRATIONS_DIR,
): Promise<string[]> {
  const migrations = await readMigrations(migrationsDir);
  // Session-level lock, held across the per-migration transactions below, so that
  // servers starting together apply each migration once.
  await session.query(`SELECT pg_advisory_lock(${ADVISORY_LOCK_KEY})`);
  const unlock = () => session.query(`SELECT pg_advisory_unlock(${ADVISORY_LOCK_KEY})`);
  let done: string[];
  try {
    done = await migrateLocked(session, migrations, migrationsDir);
  } catch (err) {
    // A broken session releases the lock anyway; don't hide the error that broke it.
    await unlock().catch(() => {});
    throw err;
  }
  await unlock();
  return done;
}

async function migrateLocked(
  session: SqlSession,
  migrations: MigrationFile[],
  migrationsDir: string,
): Promise<string[]> {
  await session.exec(CREATE_MIGRATIONS_TABLE);
  // Rolled-back rows are Prisma's audit trail (`migrate resolve --rolled-back`): not applied.
  const rows = await session.query<AppliedRow>(
    `SELECT id, checksum, migration_name, finished_at, logs FROM _prisma_migrations
     WHERE rolled_back_at IS NULL ORDER BY started_at`,
  );
  checkHistory(rows, migrations, migrationsDir);

  const applied = new Set(rows.map((r) => r.migration_name));
  const done: string[] = [];
  for (const migration of migrations) {
    if (applied.has(migration.name)) continue;
    await applyOne(session, migration);
    done.push(migration.name);
  }
  return done;
}

function checkHistory(rows: AppliedRow[], migrations: MigrationFile[], migrationsDir: string): void {
  const byName = new Map(migrations.map((m) => [m.name, m]));
  const problems: string[] = [];
  for (const row of rows) {
    const file = byName.get(row.migration_name);
    if (row.finished_at === null) {
      problems.push(
        `${row.migration_name} was started but never finished${row.logs ? ` (${row.logs.trim()})` : ""}; ` +
          "repair the database by hand, then mark it with `prisma migrate resolve`",
      );
    } else if (!file) {
      problems.push(`${row.migration_name} is recorded as applied but is missing from ${migrationsDir}`);
    } else if (!checksumMatches(file.sql, row.checksum)) {
      problems.push(
        `${row.migration_name}/migration.sql was edited after it was applied (checksum differs); ` +
          "restore the committed file and put the change in a new migration",
      );
    }
  }
  if (problems.length > 0) {
    throw new Error(
      `Refusing to start: the database's migration history does not match the migrations folder:\n- ${problems.join("\n- ")}`,
    );
  }
}

async function applyOne(session: SqlSession, migration: MigrationFile): Promise<void> {
  const id = randomUUID();
  await session.exec("BEGIN");
  try {
    await session.query(`INSERT INTO _prisma_migrations (id, checksum, migration_name) VALUES ($1, $2, $3)`, [
      id,
      migrationChecksum(migration.sql),
      migration.name,
    ]);
    await session.exec(migration.sql);
    // clock_timestamp(): now() would be the transaction's start, i.e. started_at again.
    await session.query(
      `UPDATE _prisma_migrations SET finished_at = clock_timestamp(), applied_steps_count = applied_steps_count + 1
       WHERE id = $1`,
      [id],
    );
    await session.exec("COMMIT");
  } catch (err) {
    const message = err instanceof Error ? err.message : String(err);
    await session.exec("ROLLBACK").catch(() => {});
    // A script with its own COMMIT (Prisma writes BEGIN/COMMIT around enum rewrites)
    // ends our transaction early, so its row may have survived the rollback: leave
    // the failure in it, as Prisma would, so the next start refuses with the reason.
    const survived = await session
      .query(`UPDATE _prisma_migrations SET logs = $1 WHERE id = $2 RETURNING id`, [message, id])
      .then((rows) => rows.length > 0)
      .catch(() => false);
    const outcome = survived
      ? "part-way; its own COMMIT kept the steps before the failure, so repair the database by hand"
      : "and was rolled back";
    throw new Error(`Migration ${migration.name} failed ${outcome}: ${message}`, { cause: err });
  }
}

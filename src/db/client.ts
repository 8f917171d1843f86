import { mkdir } from "node:fs/promises";
import path from "node:path";
import { PGlite } from "@electric-sql/pglite";
import { PrismaPg } from "@prisma/adapter-pg";
import { PrismaPGlite } from "pglite-prisma-adapter";
import { PrismaClient } from "../generated/prisma/client.ts";
import { ReconnectingListener } from "./listener.ts";
import { applyMigrations } from "./migrate.ts";
import type { SqlSession } from "./sql.ts";

export type { PrismaClient };
export type Tx = Parameters<Parameters<PrismaClient["$transaction"]>[0]>[0];

/** The database: one Prisma client plus a session of its own for LISTEN. */
export interface Database {
  prisma: PrismaClient;
  kind: "pglite" | "postgres";
  /** Subscribes to a NOTIFY channel; resolves to an unsubscribe function. */
  listen(channel: string, onPayload: (payload: string) => void): Promise<() => Promise<void>>;
  /**
   * Told when the LISTEN session is lost and when it is back (PostgreSQL only: the embedded database
   * cannot go away): notices sent in between were missed, so caches must be read again.
   */
  onConnection(handler: (event: ConnectionEvent) => void): () => void;
  close(): Promise<void>;
}

export type ConnectionEvent = { kind: "lost"; error: Error } | { kind: "restored" };

export interface OpenDatabaseOptions {
  databaseUrl: string | null;
  dataDir: string;
  /** Called with every SQL statement the Prisma client sends (tests and benchmarks count them). */
  onQuery?: (sql: string) => void;
}

export async function openDatabase(opts: OpenDatabaseOptions): Promise<Database> {
  return opts.databaseUrl
    ? openPostgres(opts.databaseUrl, opts.onQuery)
    : openPglite(path.join(opts.dataDir, "db"), opts.onQuery);
}

function newPrismaClient(adapter: PrismaPGlite | PrismaPg, onQuery?: (sql: string) => void): PrismaClient {
  if (!onQuery) return new PrismaClient({ adapter });
  const prisma = new PrismaClient({ adapter, log: [{ emit: "event", level: "query" }] });
  prisma.$on("query", (event) => onQuery(event.query));
  return prisma;
}

async function openPglite(dir: string, onQuery?: (sql: string) => void): Promise<Database> {
  await mkdir(dir, { recursive: true });
  const pglite = await PGlite.create(dir);
  const session: SqlSession = {
    query: async <Row>(sql: string, params?: unknown[]) => (await pglite.query<Row>(sql, params)).rows,
    exec: async (sql: string) => {
      await pglite.exec(sql);
    },
  };
  await applyMigrations(session);
  const prisma = newPrismaClient(new PrismaPGlite(pglite), onQuery);
  return {
    prisma,
    kind: "pglite",
    listen: async (channel, onPayload) => {
      const unlisten = await pglite.listen(channel, onPayload);
      return async () => {
        await unlisten();
      };
    },
    onConnection: () => () => undefined,
    close: async () => {
      await prisma.$disconnect();
      await pglite.close();
    },
  };
}

async function openPostgres(url: string, onQuery?: (sql: string) => void): Promise<Database> {
  const watchers = new Set<(event: ConnectionEvent) => void>();
  const tell = (event: ConnectionEvent) => {
    for (const watcher of watchers) watcher(event);
  };
  // A session of our own for migrations and LISTEN, which survives PostgreSQL going away; Prisma
  // pools the rest (its pool drops broken connections and opens new ones by itself).
  const listener = new ReconnectingListener(url, {
    onLost: (error) => tell({ kind: "lost", error }),
    onRestored: () => tell({ kind: "restored" }),
  });
  const first = await listener.connect();
  const session: SqlSession = {
    query: async <Row>(sql: string, params?: unknown[]) =>
      (await first.query(sql, params as unknown[])).rows as Row[],
    exec: async (sql: string) => {
      await first.query(sql);
    },
  };
  try {
    await applyMigrations(session);
  } catch (error) {
    await listener.close();
    throw error;
  }
  const prisma = newPrismaClient(new PrismaPg({ connectionString: url }), onQuery);
  return {
    prisma,
    kind: "postgres",
    listen: async (channel, onPayload) => {
      const unlisten = await listener.listen(channel, onPayload);
      return async () => unlisten();
    },
    onConnection: (handler) => {
      watchers.add(handler);
      return () => watchers.delete(handler);
    },
    close: async () => {
      await prisma.$disconnect();
      await listener.close();
    },
  };
}

import { mkdir } from "node:fs/promises";
import path from "node:path";
import { PGlite } from "@electric-sql/pglite";
import { PrismaPg } from "@prisma/adapter-pg";
import pg from "pg";
import { PrismaPGlite } from "pglite-prisma-adapter";
import { PrismaClient } from "../generated/prisma/client.ts";
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
  close(): Promise<void>;
}

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
    close: async () => {
      await prisma.$disconnect();
      await pglite.close();
    },
  };
}

async function openPostgres(url: string, onQuery?: (sql: string) => void): Promise<Database> {
  // A connection of our own for migrations and LISTEN; Prisma pools the rest.
  const listener = new pg.Client({ connectionString: url });
  await listener.connect();
  const session: SqlSession = {
    query: async <Row>(sql: string, params?: unknown[]) =>
      (await listener.query(sql, params as unknown[])).rows as Row[],
    exec: async (sql: string) => {
      await listener.query(sql);
    },
  };
  await applyMigrations(session);
  const prisma = newPrismaClient(new PrismaPg({ connectionString: url }), onQuery);
  const handlers = new Map<string, Set<(payload: string) => void>>();
  listener.on("notification", (msg) => {
    for (const handler of handlers.get(msg.channel) ?? []) handler(msg.payload ?? "");
  });
  return {
    prisma,
    kind: "postgres",
    listen: async (channel, onPayload) => {
      let set = handlers.get(channel);
      if (!set) {
        set = new Set();
        handlers.set(channel, set);
        await listener.query(`LISTEN ${pg.escapeIdentifier(channel)}`);
      }
      set.add(onPayload);
      return async () => {
        set.delete(onPayload);
      };
    },
    close: async () => {
      await prisma.$disconnect();
      await listener.end();
    },
  };
}

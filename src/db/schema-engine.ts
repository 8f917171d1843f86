/**
 * The one place that drives Prisma's schema engine. The native engine is a
 * download this project cannot rely on, so this loads the WebAssembly build
 * (@prisma/schema-engine-wasm, an undocumented API pinned to an exact version)
 * and feeds it an in-memory PGlite through Prisma's driver-adapter interface.
 * Development tooling only (migrate:new, the drift test): the server never loads it.
 */
import { readFile } from "node:fs/promises";
import { createRequire } from "node:module";
import path from "node:path";
import { PGlite } from "@electric-sql/pglite";
import {
  bindMigrationAwareSqlAdapterFactory,
  type SqlDriverAdapter,
  type SqlMigrationAwareDriverAdapterFactory,
} from "@prisma/driver-adapter-utils";
import * as wasmBindings from "@prisma/schema-engine-wasm/schema_engine_bg";
import { PrismaPGlite } from "pglite-prisma-adapter";
import { readMigrations } from "./migrate.ts";

type Bindings = typeof wasmBindings;

// The tsconfig's libs (ES2023, no DOM) carry no WebAssembly typings; Node has the
// global. Declare just the call used here.
declare const WebAssembly: {
  instantiate(
    bytes: Uint8Array,
    imports: Record<string, unknown>,
  ): Promise<{ instance: { exports: Record<string, unknown> } }>;
};

interface PanicRegistry {
  set_message(message: string): void;
}

// The bindings report a Rust panic here just before the wasm traps; keep the text
// so the error says more than "unreachable".
let lastPanic: string | undefined;

let bindings: Promise<Bindings> | undefined;

/** Instantiates the wasm once per process: the bindings keep it in module state. */
function loadBindings(): Promise<Bindings> {
  bindings ??= (async () => {
    const g = globalThis as { PRISMA_WASM_PANIC_REGISTRY?: PanicRegistry };
    // Prisma's CLI may share the process and install its own; either works.
    g.PRISMA_WASM_PANIC_REGISTRY ??= {
      set_message: (message) => {
        lastPanic = message;
      },
    };
    // The package's main entry imports the .wasm as an ES module, which Node refuses:
    // instantiate the binary ourselves against its JS glue instead.
    const glue = createRequire(import.meta.url).resolve("@prisma/schema-engine-wasm/schema_engine_bg");
    const wasmFile = path.join(path.dirname(glue), "schema_engine_bg.wasm");
    const { instance } = await WebAssembly.instantiate(await readFile(wasmFile), {
      "./schema_engine_bg.js": wasmBindings,
    });
    wasmBindings.__wbg_set_wasm(instance.exports);
    (instance.exports.__wbindgen_start as () => void)();
    return wasmBindings;
  })();
  return bindings;
}

/**
 * PGlite's adapter factory, minus its shadow database: the stock one opens a PGlite
 * nobody closes. The diffs below never need one, and if a future engine asks,
 * failing loudly beats leaking a database. Remembers the adapters it hands out so
 * they can be disposed of.
 */
function pgliteAdapterFactory(db: PGlite) {
  const inner = new PrismaPGlite(db);
  const opened: SqlDriverAdapter[] = [];
  const factory: SqlMigrationAwareDriverAdapterFactory = {
    provider: "postgres",
    adapterName: inner.adapterName,
    connect: async () => {
      const adapter = (await inner.connect()) as unknown as SqlDriverAdapter;
      opened.push(adapter);
      return adapter;
    },
    connectToShadowDb: () =>
      Promise.reject(new Error("no shadow database: apply migrations to a PGlite instead")),
  };
  const disposeAll = async () => {
    await Promise.all(opened.splice(0).map((a) => a.dispose()));
  };
  return { factory, disposeAll };
}

const NO_FILTERS = { externalTables: [], externalEnums: [] };

/** True when the script holds something besides whitespace and `--` comments. */
export function hasStatements(script: string): boolean {
  return script.split("\n").some((line) => {
    const text = line.trim();
    return text !== "" && !text.startsWith("--");
  });
}

/**
 * The SQL that takes `db`'s current schema to the one schema.prisma describes, in
 * Prisma's migration format; "" when they already agree. Prisma's own
 * `_prisma_migrations` table is ignored by the engine. `db` stays open.
 */
export async function diffDatabaseToSchema(db: PGlite, schemaPath: string): Promise<string> {
  const { SchemaEngine } = await loadBindings();
  const content = await readFile(schemaPath, "utf8");
  const files = [{ path: schemaPath, content }];
  const { factory, disposeAll } = pgliteAdapterFactory(db);
  lastPanic = undefined;
  try {
    const engine = await SchemaEngine.new(
      { datamodels: [[schemaPath, content]] },
      // Its tracing output (JSON lines) is noise for a one-shot diff.
      () => {},
      bindMigrationAwareSqlAdapterFactory(factory),
    );
    try {
      const { stdout } = await engine.diff({
        // "The database the datasource points at": the adapter's, i.e. `db`.
        from: { tag: "schemaDatasource", files, configDir: path.dirname(schemaPath) },
        to: { tag: "schemaDatamodel", files },
        script: true,
        exitCode: null,
        filters: NO_FILTERS,
      });
      const script = stdout ?? "";
      // An agreeing pair yields "-- This is an empty migration.": normalise to "".
      return hasStatements(script) ? script : "";
    } finally {
      engine.free();
    }
  } catch (err) {
    if (lastPanic) throw new Error(`Prisma schema engine panicked: ${lastPanic}`, { cause: err });
    throw err;
  } finally {
    await disposeAll();
  }
}

/**
 * The SQL script that takes a database from the state the committed migrations
 * produce to the state schema.prisma describes: the body of the next migration.
 * "" when they agree. Replays the migrations on a throwaway in-memory PGlite.
 */
export async function diffMigrationsToSchema(migrationsDir: string, schemaPath: string): Promise<string> {
  const migrations = await readMigrations(migrationsDir);
  const db = await PGlite.create();
  try {
    for (const migration of migrations) {
      try {
        await db.exec(migration.sql);
      } catch (err) {
        const message = err instanceof Error ? err.message : String(err);
        throw new Error(`Migration ${migration.name} fails on a fresh database: ${message}`, { cause: err });
      }
    }
    return await diffDatabaseToSchema(db, schemaPath);
  } finally {
    await db.close();
  }
}

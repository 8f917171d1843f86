import { type ChildProcess, spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { cp, mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import pg from "pg";
import { inject } from "vitest";
import { freePort } from "../../src/runtime/ports.ts";
import { waitFor } from "./wait.ts";

const BIN = fileURLToPath(new URL("../../bin/hangar.mjs", import.meta.url));

/** A real Hangar server process, driven by the tests as a client would. */
export interface TestHangar {
  url: string;
  key: string;
  dataDir: string;
  databaseUrl: string | null;
  process: ChildProcess;
  output(): string;
  /** Graceful stop (SIGTERM), waiting for the exit. */
  stop(): Promise<number | null>;
  /** Resolves with the exit code (null when killed by a signal) once the process has ended by itself. */
  exited: Promise<number | null>;
  /** SIGKILL, as a crash would. */
  kill(): Promise<void>;
  /** Starts a new server process on the same data dir and database. */
  restart(): Promise<TestHangar>;
  /** Stops and removes everything. */
  dispose(): Promise<void>;
}

export interface StartOptions {
  env?: Record<string, string>;
  /** Reuse the data dir / database of an earlier server. */
  reuse?: { dataDir: string; databaseUrl: string | null; key: string };
  /** Let the server generate its admin key (read back from the data dir) instead of setting one. */
  generateKey?: boolean;
}

async function freshDatabase(): Promise<{ dataDir: string; databaseUrl: string | null }> {
  const dataDir = await mkdtemp(path.join(tmpdir(), "hangar-test-"));
  if (inject("database") === "postgres") {
    const admin = new pg.Client({ connectionString: inject("postgresUrl") });
    await admin.connect();
    const name = `hangar_${randomBytes(6).toString("hex")}`;
    await admin.query(`CREATE DATABASE ${name}`);
    await admin.end();
    const url = new URL(inject("postgresUrl"));
    url.pathname = `/${name}`;
    return { dataDir, databaseUrl: url.toString() };
  }
  await cp(inject("pgliteTemplate"), dataDir, { recursive: true });
  return { dataDir, databaseUrl: null };
}

export async function startHangar(options: StartOptions = {}): Promise<TestHangar> {
  const { dataDir, databaseUrl } = options.reuse ?? (await freshDatabase());
  const generated = options.generateKey === true;
  let key = options.reuse?.key ?? `hk_test_${randomBytes(16).toString("hex")}`;
  const port = await freePort();
  const env: Record<string, string> = {
    PATH: process.env.PATH ?? "",
    HOME: process.env.HOME ?? "/tmp",
    PORT: String(port),
    HOST: "127.0.0.1",
    HANGAR_DATA_DIR: dataDir,
    ...(generated ? {} : { HANGAR_ADMIN_KEY: key }),
    HANGAR_LOG_LEVEL: "warn",
    ...(databaseUrl ? { DATABASE_URL: databaseUrl } : {}),
    ...options.env,
  };
  const child = spawn(process.execPath, [BIN, "serve"], { env, stdio: ["ignore", "pipe", "pipe"] });
  let output = "";
  child.stdout?.on("data", (chunk: Buffer) => {
    output += chunk.toString();
  });
  child.stderr?.on("data", (chunk: Buffer) => {
    output += chunk.toString();
  });
  const exited = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)));
  const url = `http://127.0.0.1:${port}`;
  let dead = false;
  void exited.then(() => {
    dead = true;
  });
  await waitFor(
    async () => {
      if (dead) throw new Error(`Hangar exited during start:\n${output}`);
      const response = await fetch(`${url}/healthz`).catch(() => null);
      return response?.status === 200;
    },
    { timeoutMs: 60_000, what: "Hangar to become healthy" },
  );
  if (generated) key = (await readFile(path.join(dataDir, "admin-key"), "utf8")).trim();
  const hangar: TestHangar = {
    url,
    key,
    dataDir,
    databaseUrl,
    process: child,
    output: () => output,
    exited,
    stop: async () => {
      if (!dead) child.kill("SIGTERM");
      return exited;
    },
    kill: async () => {
      if (!dead) child.kill("SIGKILL");
      await exited;
    },
    restart: () =>
      startHangar({ env: options.env, reuse: { dataDir, databaseUrl, key }, generateKey: generated }),
    dispose: async () => {
      await hangar.stop();
      await rm(dataDir, { recursive: true, force: true });
    },
  };
  return hangar;
}

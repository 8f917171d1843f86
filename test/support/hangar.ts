import { type ChildProcess, spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { chown, cp, lchown, mkdtemp, readdir, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import pg from "pg";
import { afterAll, inject } from "vitest";
import { fail, waitFor } from "./wait.ts";

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
  /** Run the server as this user (the test runs as root); its data dir is handed over to it. */
  user?: { uid: number; gid: number };
  /**
   * Start another member of this server's Hangar (PostgreSQL only): the same database and admin key, a
   * data dir of its own, empty, as on another machine.
   */
  joining?: TestHangar;
}

/**
 * Every server process this file started and did not dispose of, and the starts still under way: a
 * test that timed out during a start, or failed before its own cleanup, leaves no server behind.
 */
const live = new Set<TestHangar>();
/** Well past a clean stop (seconds) and short of the 120 s hook timeout. */
const STOP_DEADLINE_MS = 60_000;
const starting = new Set<Promise<unknown>>();

afterAll(async () => {
  await Promise.allSettled([...starting]);
  for (const hangar of [...live]) await hangar.dispose();
});

async function freshDatabase(): Promise<{ dataDir: string; databaseUrl: string | null }> {
  const dataDir = await mkdtemp(path.join(tmpdir(), "hangar-test-"));
  if (inject("database") === "postgres") {
    const admin = new pg.Client({ connectionString: inject("postgresUrl") });
    await admin.connect();
    const name = `hangar_${randomBytes(6).toString("hex")}`;
    await admin.query(`CREATE DATABASE ${name} TEMPLATE ${inject("postgresTemplate")}`);
    await admin.end();
    const url = new URL(inject("postgresUrl"));
    url.pathname = `/${name}`;
    return { dataDir, databaseUrl: url.toString() };
  }
  await cp(inject("pgliteTemplate"), dataDir, { recursive: true });
  return { dataDir, databaseUrl: null };
}

async function newMember(joining: TestHangar | undefined) {
  if (!joining) return freshDatabase();
  if (!joining.databaseUrl) throw new Error("only a Hangar on PostgreSQL has other members");
  return { dataDir: await mkdtemp(path.join(tmpdir(), "hangar-test-")), databaseUrl: joining.databaseUrl };
}

export function startHangar(options: StartOptions = {}): Promise<TestHangar> {
  const start = launch(options);
  starting.add(start);
  void start.then(
    () => starting.delete(start),
    () => starting.delete(start),
  );
  return start;
}

async function chownTree(root: string, user: { uid: number; gid: number }): Promise<void> {
  await chown(root, user.uid, user.gid);
  for (const entry of await readdir(root, { recursive: true })) {
    await lchown(path.join(root, entry), user.uid, user.gid);
  }
}

async function launch(options: StartOptions): Promise<TestHangar> {
  const { dataDir, databaseUrl } = options.reuse ?? (await newMember(options.joining));
  const generated = options.generateKey === true;
  let key = options.reuse?.key ?? options.joining?.key ?? `hk_test_${randomBytes(16).toString("hex")}`;
  const env: Record<string, string> = {
    PATH: process.env.PATH ?? "",
    HOME: process.env.HOME ?? "/tmp",
    // The server binds a port the OS picks and prints its URL when ready: no port is picked here and
    // released for the server to take later, which another test worker could take in between.
    PORT: "0",
    HOST: "127.0.0.1",
    HANGAR_DATA_DIR: dataDir,
    ...(generated ? {} : { HANGAR_ADMIN_KEY: key }),
    HANGAR_LOG_LEVEL: "warn",
    // The tests' webhook receivers listen on loopback, where webhooks do not go by default.
    HANGAR_WEBHOOK_ALLOW_LOCAL: "1",
    ...(databaseUrl ? { DATABASE_URL: databaseUrl } : {}),
    ...options.env,
  };
  if (options.user) await chownTree(dataDir, options.user);
  const child = spawn(process.execPath, [BIN, "serve"], {
    env,
    stdio: ["ignore", "pipe", "pipe"],
    ...(options.user ? { uid: options.user.uid, gid: options.user.gid } : {}),
  });
  let output = "";
  child.stdout?.on("data", (chunk: Buffer) => {
    output += chunk.toString();
  });
  child.stderr?.on("data", (chunk: Buffer) => {
    output += chunk.toString();
  });
  let signal: NodeJS.Signals | null = null;
  const exited = new Promise<number | null>((resolve) =>
    child.once("exit", (code, killedBy) => {
      signal = killedBy;
      resolve(code);
    }),
  );
  let dead = false;
  // Set when a test stops or kills the server: any other exit is a crash, reported with what it printed
  // (a test then fails on refused connections, which alone would not say why).
  // A server with a failpoint armed kills itself there on purpose (src/failpoints.ts).
  let ordered = Boolean(options.env?.HANGAR_FAILPOINT);
  let ready = false;
  void exited.then((code) => {
    dead = true;
    if (ready && !ordered) {
      process.stderr.write(
        `\nHangar (${dataDir}) exited unexpectedly (code ${code}, signal ${signal}) at ${new Date().toISOString()}; it printed:\n${output.slice(-6000)}\n`,
      );
    }
  });
  let url: string;
  try {
    // `hangar serve` prints "Hangar is running at URL" once it is ready (src/cli/commands/serve.ts).
    url = await waitFor(
      () => {
        const printed = /^Hangar is running at (\S+)\r?\n/m.exec(output)?.[1];
        if (printed) return printed;
        if (dead) fail(`Hangar exited during start:\n${output}`);
        return null;
      },
      { timeoutMs: 60_000, what: "Hangar to print its URL" },
    );
    await waitFor(
      async () => {
        if (dead) fail(`Hangar exited during start:\n${output}`);
        const response = await fetch(`${url}/healthz`).catch(() => null);
        return response?.status === 200;
      },
      { timeoutMs: 60_000, what: "Hangar to become healthy" },
    );
  } catch (error) {
    // A server that did not become ready is not left running.
    ordered = true;
    if (!dead) child.kill("SIGTERM");
    await exited;
    if (!options.reuse) await rm(dataDir, { recursive: true, force: true });
    throw error;
  }
  ready = true;
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
      ordered = true;
      if (!dead) child.kill("SIGTERM");
      // A shutdown that hangs is a defect of its own: it fails here with what the server printed,
      // instead of as a hook's bare timeout, and leaves no process behind.
      let timer: NodeJS.Timeout | undefined;
      const late = new Promise<"late">((resolve) => {
        timer = setTimeout(() => resolve("late"), STOP_DEADLINE_MS);
      });
      const outcome = await Promise.race([exited, late]);
      clearTimeout(timer);
      if (outcome !== "late") return outcome;
      child.kill("SIGKILL");
      await exited;
      throw new Error(
        `Hangar did not stop within ${STOP_DEADLINE_MS / 1000} s of SIGTERM; it printed:\n${output.slice(-4000)}`,
      );
    },
    kill: async () => {
      ordered = true;
      if (!dead) child.kill("SIGKILL");
      await exited;
    },
    restart: () => startHangar({ ...options, reuse: { dataDir, databaseUrl, key } }),
    dispose: async () => {
      live.delete(hangar);
      try {
        await hangar.stop();
      } finally {
        await rm(dataDir, { recursive: true, force: true });
      }
    },
  };
  live.add(hangar);
  return hangar;
}

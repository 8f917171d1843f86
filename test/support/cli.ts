import { type ChildProcess, spawn } from "node:child_process";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import type { TestHangar } from "./hangar.ts";
import { fail, waitFor } from "./wait.ts";

const BIN = fileURLToPath(new URL("../../bin/hangar.mjs", import.meta.url));

/**
 * A home of its own for every test process: the CLI never sees the real HOME, config or HANGAR_*
 * variables of whoever runs the tests. HANGAR_CONFIG points into it unless a test sets its own.
 */
const home = mkdtempSync(path.join(tmpdir(), "hangar-cli-home-"));
export const DEFAULT_CONFIG = path.join(home, "config", "hangar.json");

export interface CliOptions {
  /** Added to (or, with undefined, removed from) the CLI's environment. */
  env?: Record<string, string | undefined>;
  /** Written to the CLI's stdin, which is then closed (stdin is closed at once without it). */
  input?: string;
  timeoutMs?: number;
}

export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** HANGAR_URL / HANGAR_API_KEY for a test server. */
export function cliEnv(hangar: TestHangar, key = hangar.key): Record<string, string> {
  return { HANGAR_URL: hangar.url, HANGAR_API_KEY: key };
}

function cliEnvironment(extra: Record<string, string | undefined> = {}): Record<string, string> {
  const env: Record<string, string | undefined> = {
    PATH: process.env.PATH ?? "",
    HOME: home,
    HANGAR_CONFIG: DEFAULT_CONFIG,
    NO_COLOR: "1",
    ...extra,
  };
  return Object.fromEntries(Object.entries(env).filter((e): e is [string, string] => e[1] !== undefined));
}

/** A running `hangar` process, for commands that keep going (logs -f, watch, promote). */
export interface CliProcess {
  child: ChildProcess;
  stdout(): string;
  stderr(): string;
  /** Resolves once stdout or stderr (both, concatenated) matches. */
  waitForOutput(pattern: RegExp | string, timeoutMs?: number): Promise<void>;
  /** Resolves with the exit code (128 + n for a signal) and the whole output. */
  result: Promise<CliResult>;
  /** Sends a signal (SIGINT is Ctrl-C). */
  signal(signal: NodeJS.Signals): void;
}

export function spawnCli(args: string[], opts: CliOptions = {}): CliProcess {
  const child = spawn(process.execPath, [BIN, ...args], {
    env: cliEnvironment(opts.env),
    stdio: ["pipe", "pipe", "pipe"],
  });
  let stdout = "";
  let stderr = "";
  child.stdout?.on("data", (chunk: Buffer) => {
    stdout += chunk.toString();
  });
  child.stderr?.on("data", (chunk: Buffer) => {
    stderr += chunk.toString();
  });
  // A CLI that exits before reading its input must not fail the test with EPIPE.
  child.stdin?.on("error", () => {});
  if (opts.input !== undefined) child.stdin?.end(opts.input);
  else child.stdin?.end();
  const timer = setTimeout(() => child.kill("SIGKILL"), opts.timeoutMs ?? 60_000);
  let closed = false;
  const result = new Promise<CliResult>((resolve, reject) => {
    child.once("error", reject);
    child.once("close", (code, signal) => {
      closed = true;
      clearTimeout(timer);
      const signals: Record<string, number> = { SIGINT: 130, SIGKILL: 137, SIGTERM: 143 };
      resolve({ code: code ?? (signal ? (signals[signal] ?? 128) : 1), stdout, stderr });
    });
  });
  return {
    child,
    stdout: () => stdout,
    stderr: () => stderr,
    waitForOutput: (pattern, timeoutMs = 30_000) =>
      waitFor(
        () => {
          // Read before the output: a process that has closed has written all it will.
          const ended = closed;
          const all = stdout + stderr;
          if (typeof pattern === "string" ? all.includes(pattern) : pattern.test(all)) return true;
          if (ended) fail("the command has exited");
          return false;
        },
        { timeoutMs, what: `CLI output ${String(pattern)}` },
      ).then(
        () => undefined,
        (error: Error) => {
          error.message = `${error.message}; output so far:\n${stdout}${stderr}`;
          throw error;
        },
      ),
    result,
    signal: (signal) => {
      child.kill(signal);
    },
  };
}

/** Runs `hangar ARGS` to its end (killed after timeoutMs, default 60 s). */
export function runCli(args: string[], opts: CliOptions = {}): Promise<CliResult> {
  return spawnCli(args, opts).result;
}

/**
 * Runs `hangar ARGS --json` and parses stdout; fails (with the output) unless it exited 0 with nothing on
 * stderr.
 */
// biome-ignore lint/suspicious/noExplicitAny: --json output is inspected loosely by the tests.
export async function runCliJson(args: string[], opts: CliOptions = {}): Promise<any> {
  const result = await runCli([...args, "--json"], opts);
  if (result.code !== 0 || result.stderr !== "") {
    throw new Error(
      `hangar ${args.join(" ")} --json exited ${result.code}:\n${result.stderr}${result.stdout}`,
    );
  }
  return JSON.parse(result.stdout);
}

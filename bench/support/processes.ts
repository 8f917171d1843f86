/**
 * The child processes and temporary folders of a benchmark run, and their
 * clean-up: at the end, on failure and on Ctrl-C (SIGINT) or SIGTERM.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { rm } from "node:fs/promises";
import { fileURLToPath } from "node:url";

export const REPO_ROOT = fileURLToPath(new URL("../../", import.meta.url));

interface Tracked {
  name: string;
  child: ChildProcess;
  exited: Promise<void>;
  /** Signal for a graceful stop, and how long it may take before SIGKILL. */
  graceMs: number;
}

const children: Tracked[] = [];
const folders: string[] = [];
/** Process groups started by our children (Hangar's replicas run detached in their own). */
const groups: number[] = [];
let cleaning: Promise<void> | null = null;
/** Other things to stop, after the processes (a throwaway PostgreSQL, say). */
const finalizers: (() => Promise<void>)[] = [];

/** Has cleanup() also run `stop` (once, after stopping the processes): at the end, on failure and on Ctrl-C. */
export function atCleanup(stop: () => Promise<void>): void {
  finalizers.push(stop);
}

export function trackFolder(dir: string): void {
  folders.push(dir);
}

export function trackProcessGroup(pid: number): void {
  if (!groups.includes(pid)) groups.push(pid);
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

export interface Spawned {
  child: ChildProcess;
  exited: Promise<void>;
  /** Everything it wrote to stdout and stderr so far. */
  output(): string;
  /** What it wrote to stdout so far. */
  stdout(): string;
  /** Resolves with the first stdout line matching `pattern`; rejects if the process exits first. */
  waitForLine(pattern: RegExp, timeoutMs: number): Promise<RegExpExecArray>;
  stop(): Promise<void>;
}

/** Starts `node [args]` from the repository root, tracked for clean-up. */
export function spawnNode(
  name: string,
  args: string[],
  options: { env?: NodeJS.ProcessEnv; graceMs?: number } = {},
): Spawned {
  const child = spawn(process.execPath, args, {
    cwd: REPO_ROOT,
    env: options.env ?? process.env,
    stdio: ["ignore", "pipe", "pipe"],
  });
  let output = "";
  let stdout = "";
  const listeners = new Set<() => void>();
  child.stdout?.on("data", (chunk: Buffer) => {
    output += chunk.toString();
    stdout += chunk.toString();
    for (const listener of listeners) listener();
  });
  child.stderr?.on("data", (chunk: Buffer) => {
    output += chunk.toString();
  });
  const exited = new Promise<void>((resolve) => child.once("close", () => resolve()));
  let dead = false;
  void exited.then(() => {
    dead = true;
    for (const listener of listeners) listener();
  });
  const tracked: Tracked = { name, child, exited, graceMs: options.graceMs ?? 5_000 };
  children.push(tracked);
  return {
    child,
    exited,
    output: () => output,
    stdout: () => stdout,
    waitForLine: (pattern, timeoutMs) =>
      new Promise((resolve, reject) => {
        const timer = setTimeout(() => {
          listeners.delete(check);
          reject(new Error(`${name}: no line matching ${pattern} within ${timeoutMs} ms:\n${output}`));
        }, timeoutMs);
        const check = () => {
          const match = pattern.exec(stdout);
          if (match) {
            clearTimeout(timer);
            listeners.delete(check);
            resolve(match);
          } else if (dead) {
            clearTimeout(timer);
            listeners.delete(check);
            reject(new Error(`${name} exited (code ${child.exitCode}):\n${output}`));
          }
        };
        listeners.add(check);
        check();
      }),
    stop: () => stopChild(tracked),
  };
}

async function stopChild(tracked: Tracked): Promise<void> {
  const { child } = tracked;
  if (child.exitCode === null && child.signalCode === null) {
    child.kill("SIGTERM");
    const timer = setTimeout(() => child.kill("SIGKILL"), tracked.graceMs);
    await tracked.exited;
    clearTimeout(timer);
  }
  const index = children.indexOf(tracked);
  if (index >= 0) children.splice(index, 1);
}

/** Stops every tracked process (newest first), then removes the temporary folders. Idempotent. */
export function cleanup(): Promise<void> {
  cleaning ??= (async () => {
    for (const tracked of [...children].reverse()) await stopChild(tracked);
    // Hangar stops its replicas when it stops; a replica left behind (Hangar killed) goes here.
    for (const pid of groups) {
      if (!alive(pid)) continue;
      try {
        process.kill(-pid, "SIGKILL");
      } catch {
        // Gone meanwhile.
      }
    }
    for (const stop of finalizers) await stop().catch(() => {});
    for (const dir of folders) await rm(dir, { recursive: true, force: true });
  })();
  return cleaning;
}

/** Cleans up on Ctrl-C / SIGTERM, then exits with the conventional code. */
export function cleanUpOnSignals(): void {
  for (const [signal, code] of [
    ["SIGINT", 130],
    ["SIGTERM", 143],
  ] as const) {
    process.once(signal, () => {
      process.stderr.write(`\n${signal}: stopping the benchmark's processes...\n`);
      void cleanup().finally(() => process.exit(code));
    });
  }
}

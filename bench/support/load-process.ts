/**
 * Runs bench/support/load.ts in a process of its own, so that the load
 * generator's CPU is not the measured server's, and reads back its figures.
 */
import type { LoadOptions, LoadResult } from "./load.ts";
import { spawnNode } from "./processes.ts";

/** What to do when the measured window opens and closes (read CPU counters, say). */
export interface WindowHooks {
  start(): void;
  end(): void;
}

export async function runLoadProcess(options: LoadOptions, hooks?: WindowHooks): Promise<LoadResult> {
  const load = spawnNode("load generator", [
    "--import",
    "tsx",
    "bench/support/load.ts",
    JSON.stringify(options),
  ]);
  const windowMs = options.warmupMs + options.durationMs + 30_000;
  // A generator that hangs is stopped; the waits below then fail with its output.
  const timeout = setTimeout(() => load.child.kill("SIGKILL"), windowMs + 30_000);
  try {
    await load.waitForLine(/^start$/m, windowMs);
    hooks?.start();
    await load.waitForLine(/^end$/m, windowMs);
    hooks?.end();
    const line = await load.waitForLine(/^\{.*\}$/m, 30_000);
    await load.exited;
    return JSON.parse(line[0]) as LoadResult;
  } finally {
    clearTimeout(timeout);
    await load.stop();
  }
}

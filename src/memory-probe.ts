import type { Logger } from "./logger.ts";

/**
 * A memory probe for benchmarks, off unless Node runs with `--expose-gc` (which nothing sets by
 * default): then SIGUSR2 makes Hangar collect garbage and log its memory use ("memory probe", at
 * info level), with `details()` beside it. Only the same user (or root) can signal the process, so
 * it needs no other authentication and opens nothing on the network.
 */
export function installMemoryProbe(log: Logger, details: () => Record<string, unknown>): () => void {
  const gc = (globalThis as { gc?: () => void }).gc;
  if (typeof gc !== "function") return () => {};
  const probe = () => {
    // Twice: the first pass can leave objects whose finalizers the second collects.
    gc();
    gc();
    const { rss, heapUsed, heapTotal, external, arrayBuffers } = process.memoryUsage();
    log.info({ memory: { rss, heapUsed, heapTotal, external, arrayBuffers }, ...details() }, "memory probe");
  };
  process.on("SIGUSR2", probe);
  return () => process.off("SIGUSR2", probe);
}

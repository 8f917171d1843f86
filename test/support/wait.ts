/**
 * Thrown by a `waitFor` check when what it waits for can no longer happen (a deployment that failed
 * while the test waits for ACTIVE, a promotion that ended otherwise, a GraphQL error answer, a process
 * that has exited): the wait ends at once with this reason instead of retrying to its deadline.
 */
export class WaitAborted extends Error {
  override name = "WaitAborted";
}

/** Ends the surrounding `waitFor` at once (see WaitAborted). */
export function fail(reason: string): never {
  throw new WaitAborted(reason);
}

/**
 * Polls `check` until it returns a truthy value or the deadline passes; never a blind sleep. An error
 * the check throws is retried (the last one is reported at the deadline), except a WaitAborted (see
 * `fail`), which ends the wait at once.
 */
export async function waitFor<T>(
  check: () => Promise<T | false | null | undefined> | T | false | null | undefined,
  opts: { timeoutMs?: number; intervalMs?: number; what?: string } = {},
): Promise<T> {
  const deadline = Date.now() + (opts.timeoutMs ?? 30_000);
  let lastError: unknown = null;
  for (;;) {
    try {
      const value = await check();
      if (value) return value;
    } catch (error) {
      if (error instanceof WaitAborted) {
        error.message = `gave up waiting for ${opts.what ?? "a condition"}: ${error.message}`;
        throw error;
      }
      lastError = error;
    }
    if (Date.now() > deadline) {
      const detail = lastError instanceof Error ? ` (last error: ${lastError.message})` : "";
      throw new Error(`timed out waiting for ${opts.what ?? "a condition"}${detail}`);
    }
    await new Promise((resolve) => setTimeout(resolve, opts.intervalMs ?? 50));
  }
}

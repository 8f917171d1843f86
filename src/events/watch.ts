import { Repeater } from "@repeaterjs/repeater";
import { isDatabaseUnavailable } from "../db/unavailable.ts";
import type { Change, ChangeBus } from "./bus.ts";

export interface Batch<T> {
  items: T[];
  /** Nothing more will come: the subscription completes. */
  done?: boolean;
  /** There is more to read at once (a full page): read again without waiting. */
  more?: boolean;
}

/**
 * A subscription body: `produce` reads what is new since its last call; it
 * runs at once and again after every matching change notification, until it
 * says done or the client goes away. A notification that arrives while a
 * read is under way is remembered, so no change falls between a read and the
 * next wait. Repeater (not an async generator) so that a client leaving ends
 * the wait immediately instead of at the next change.
 */
export function watch<T>(
  bus: ChangeBus,
  matches: (change: Change) => boolean,
  produce: () => Promise<Batch<T>>,
): AsyncIterableIterator<T> {
  return new Repeater<T>(async (push, stop) => {
    let pending = false;
    let wake: (() => void) | null = null;
    const unsubscribe = bus.on((change) => {
      if (change.kind !== "resync" && !matches(change)) return;
      pending = true;
      wake?.();
    });
    let stopped = false;
    void stop.then(() => {
      stopped = true;
      wake?.();
    });
    try {
      while (!stopped) {
        let batch: Batch<T>;
        try {
          batch = await produce();
        } catch (error) {
          // The database is away: the subscription stays open and reads again once it is back (the
          // reconnect announces a resync, which wakes every reader).
          if (!isDatabaseUnavailable(error)) throw error;
          if (!pending) await new Promise<void>((resolve) => (wake = resolve));
          wake = null;
          pending = false;
          continue;
        }
        for (const item of batch.items) await push(item);
        if (batch.done) break;
        if (batch.more) continue;
        if (!pending) await new Promise<void>((resolve) => (wake = resolve));
        wake = null;
        pending = false;
      }
    } finally {
      unsubscribe();
      stop();
    }
  });
}

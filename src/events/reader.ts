import type { Tx } from "../db/client.ts";
import type { ModelEvent, PrismaClient } from "../generated/prisma/client.ts";
import type { Change, ChangeBus } from "./bus.ts";
import { watch } from "./watch.ts";

/** The most events one read takes; a full page is followed by another read at once. */
export const EVENT_PAGE = 500;

/** Which of a model's events a reader wants: all of them, or those of one deployment or promotion. */
export interface EventFilter {
  deploymentId?: string;
  promotionId?: string;
}

/** A model's events after `afterSeq` (its per-model cursor), oldest first, at most `take`. */
export function eventsAfter(
  prisma: PrismaClient,
  modelId: string,
  afterSeq: number,
  filter: EventFilter = {},
  take = EVENT_PAGE,
): Promise<ModelEvent[]> {
  return prisma.modelEvent.findMany({
    where: { modelId, seq: { gt: afterSeq }, ...filter },
    orderBy: { seq: "asc" },
    take,
  });
}

/** Whether a change may have committed an event the filter wants (a notice only: the rows decide). */
function mayHold(change: Change, modelId: string, filter: EventFilter): boolean {
  if (change.kind !== "event" || change.modelId !== modelId) return false;
  if (filter.deploymentId !== undefined && change.deploymentId !== filter.deploymentId) return false;
  return filter.promotionId === undefined || change.promotionId === filter.promotionId;
}

/** What a follower sends: messages, and whether that was the last of them. */
export interface View<T> {
  items: T[];
  done?: boolean;
}

/** The state a follower starts from, and the cursor after which events change it. */
export interface Start<T> extends View<T> {
  seq: number;
}

/**
 * Reads something and the model's event cursor in one snapshot, so that the events after the
 * cursor are exactly the changes the read does not reflect: none lost between the two reads, none
 * sent twice.
 */
export function readAtCursor<T>(
  prisma: PrismaClient,
  modelId: string,
  read: (tx: Tx) => Promise<T>,
): Promise<{ value: T; seq: number }> {
  return prisma.$transaction(
    async (tx) => {
      const value = await read(tx);
      const model = await tx.model.findUniqueOrThrow({ where: { id: modelId }, select: { eventSeq: true } });
      return { value, seq: model.eventSeq };
    },
    { isolationLevel: "RepeatableRead" },
  );
}

export interface FollowOptions<T> {
  modelId: string;
  /** Where to start: a cursor (only later events count), or a read of the state now (its first messages). */
  from: number | (() => Promise<Start<T>>);
  filter?: EventFilter;
  /** Other changes that wake the reader (replica counts have no event). */
  alsoOn?: (change: Change) => boolean;
  /** The messages for a page of new events; the page is empty when another change woke the reader. */
  view: (events: ModelEvent[]) => Promise<View<T>> | View<T>;
}

/**
 * Follows one model's event log, for a subscription: the start, then every page of matching events
 * in order, none skipped (cursors are per model and commit-ordered, see log.ts), until the view says
 * done or the client leaves. Every subscription over the event log reads through this.
 */
export function followEvents<T>(
  bus: ChangeBus,
  prisma: PrismaClient,
  options: FollowOptions<T>,
): AsyncIterableIterator<T> {
  const { modelId, from, view, alsoOn } = options;
  const filter = options.filter ?? {};
  let last = typeof from === "number" ? from : null;
  return watch<T>(
    bus,
    (change) => mayHold(change, modelId, filter) || (alsoOn?.(change) ?? false),
    async () => {
      if (last === null && typeof from === "function") {
        const start = await from();
        last = start.seq;
        return { items: start.items, done: start.done };
      }
      const events = await eventsAfter(prisma, modelId, last ?? 0, filter);
      const newest = events.at(-1);
      if (newest) last = newest.seq;
      const { items, done } = await view(events);
      return { items, done, more: events.length === EVENT_PAGE };
    },
  );
}

/**
 * The Webhook and WebhookDelivery tables (API.md section 11). Deliveries are queued in the event's own
 * transaction (queueDeliveries, from events/log.ts appendEvent), so one exists exactly when its event
 * committed; the webhook workers (controllers/webhooks.ts) claim, send and record them through here.
 */
import type { PrismaClient, Tx } from "../db/client.ts";
import { newId } from "../domain/ids.ts";
import { announce } from "../events/bus.ts";
import type { ModelEvent, Webhook, WebhookDelivery } from "../generated/prisma/client.ts";
import type { ModelEventType } from "../generated/prisma/enums.ts";

/** The event a delivery is queued for. */
export interface QueuedEvent {
  id: string;
  modelId: string;
  seq: number;
  type: ModelEventType;
}

/**
 * Queues one delivery of `event` per live webhook that wants it. Each webhook's next sequence number
 * is taken by updating its row, whose lock is held until commit (as appendEvent does for the model):
 * a webhook's deliveries commit in sequence order, so the one at the head of its line is never
 * overtaken by one that commits later. Rows are locked in ID order, so that two transactions matching
 * the same webhooks cannot deadlock on them. Without a matching webhook this is one indexed statement.
 */
export async function queueDeliveries(tx: Tx, event: QueuedEvent): Promise<number> {
  const taken = await tx.$queryRaw<{ id: string; deliverySeq: number }[]>`
    UPDATE "Webhook" AS w SET "deliverySeq" = w."deliverySeq" + 1
    FROM (
      SELECT id FROM "Webhook"
      WHERE "deletedAt" IS NULL
        AND ("modelId" IS NULL OR "modelId" = ${event.modelId})
        AND (coalesce(cardinality(events), 0) = 0 OR ${event.type}::"ModelEventType" = ANY(events))
      ORDER BY id
      FOR UPDATE
    ) AS matching
    WHERE w.id = matching.id
    RETURNING w.id, w."deliverySeq"`;
  if (taken.length === 0) return 0;
  await tx.webhookDelivery.createMany({
    data: taken.map((webhook) => ({
      id: newId("WebhookDelivery"),
      webhookId: webhook.id,
      seq: webhook.deliverySeq,
      eventId: event.id,
      modelId: event.modelId,
      eventSeq: event.seq,
      eventType: event.type,
    })),
  });
  await announce(tx, { kind: "webhooks" });
  return taken.length;
}

export async function insertWebhook(
  tx: Tx,
  input: { url: string; modelId: string | null; events: ModelEventType[] | null; secret: string },
): Promise<Webhook> {
  return tx.webhook.create({
    data: {
      id: newId("Webhook"),
      url: input.url,
      modelId: input.modelId,
      events: input.events ?? [],
      secret: input.secret,
    },
  });
}

export function countLiveWebhooks(tx: Tx): Promise<number> {
  return tx.webhook.count({ where: { deletedAt: null } });
}

/** Locks a live webhook's row (deleteWebhook), or null. */
export async function lockLiveWebhook(tx: Tx, id: string): Promise<Webhook | null> {
  const [row] = await tx.$queryRaw<{ id: string }[]>`
    SELECT id FROM "Webhook" WHERE id = ${id} AND "deletedAt" IS NULL FOR UPDATE`;
  return row ? tx.webhook.findUnique({ where: { id } }) : null;
}

/** A deleted webhook queues nothing more, and what it had pending is not sent. */
export function markWebhookDeleted(tx: Tx, id: string, now: Date): Promise<Webhook> {
  return tx.webhook.update({ where: { id }, data: { deletedAt: now } });
}

/** The `events` list as the API shows it: null for every type. */
export function eventTypesOf(webhook: Pick<Webhook, "events">): ModelEventType[] | null {
  return webhook.events.length === 0 ? null : webhook.events;
}

/** The first PENDING delivery of a live webhook: the only one of its webhook that may be sent. */
export interface HeadOfLine {
  id: string;
  webhookId: string;
  leaseOwner: string | null;
  /** null: never tried, due at once. */
  nextAttemptAt: Date | null;
}

/**
 * Every live webhook's head of line: one index probe per webhook (a LATERAL LIMIT 1 on (status,
 * webhookId, seq)), so that a dead receiver's thousands of waiting deliveries cost the sweep nothing.
 */
export function headsOfLine(prisma: PrismaClient): Promise<HeadOfLine[]> {
  return prisma.$queryRaw<HeadOfLine[]>`
    SELECT head.id, head."webhookId", head."leaseOwner", head."nextAttemptAt"
    FROM "Webhook" AS w
    CROSS JOIN LATERAL (
      SELECT d.id, d."webhookId", d."leaseOwner", d."nextAttemptAt"
      FROM "WebhookDelivery" AS d
      WHERE d.status = 'PENDING' AND d."webhookId" = w.id
      ORDER BY d.seq
      LIMIT 1
    ) AS head
    WHERE w."deletedAt" IS NULL`;
}

/**
 * Claims a head of line with `lease` (its new owner and expiry): only if it is still PENDING, due at
 * `now`, and still held by the owner it had when it was read (which the caller has judged gone, or
 * nobody, or the new owner itself): a member that read it before another member tried it and
 * scheduled a retry does not send it early.
 */
export async function claimDelivery(
  prisma: PrismaClient,
  head: Pick<HeadOfLine, "id" | "leaseOwner">,
  lease: { leaseOwner: string; leaseExpiresAt: Date },
  now: Date,
): Promise<boolean> {
  const { count } = await prisma.webhookDelivery.updateMany({
    where: {
      id: head.id,
      status: "PENDING",
      leaseOwner: head.leaseOwner,
      OR: [{ nextAttemptAt: null }, { nextAttemptAt: { lte: now } }],
    },
    data: lease,
  });
  return count === 1;
}

/** A claimed delivery with what sending it needs: its webhook and its event. */
export interface DeliveryToSend {
  delivery: WebhookDelivery;
  webhook: Webhook;
  /** null if the event row is gone (nothing deletes events today; a delivery must not wait on one). */
  event: ModelEvent | null;
}

export async function deliveryToSend(prisma: PrismaClient, id: string): Promise<DeliveryToSend | null> {
  const delivery = await prisma.webhookDelivery.findUnique({ where: { id }, include: { webhook: true } });
  if (!delivery) return null;
  const event = await prisma.modelEvent.findUnique({ where: { id: delivery.eventId } });
  const { webhook, ...row } = delivery;
  return { delivery: row, webhook, event };
}

/** What one attempt came to, as recorded on its delivery. */
export type AttemptRecord =
  | { outcome: "delivered"; status: number }
  | { outcome: "retry"; status: number | null; error: string; nextAttemptAt: Date }
  | { outcome: "failed"; status: number | null; error: string };

/**
 * Records an attempt of a delivery `owner` holds, releasing its lease (a retry may go to any member).
 * False when the lease was lost meanwhile (another member took it over): that member's word counts.
 */
export async function recordAttempt(
  prisma: PrismaClient,
  delivery: Pick<WebhookDelivery, "id" | "attempts" | "firstAttemptAt">,
  owner: string,
  attemptedAt: Date,
  record: AttemptRecord,
): Promise<boolean> {
  const common = {
    attempts: delivery.attempts + 1,
    firstAttemptAt: delivery.firstAttemptAt ?? attemptedAt,
    lastStatus: record.status,
    leaseOwner: null,
    leaseExpiresAt: null,
  };
  const data =
    record.outcome === "delivered"
      ? {
          ...common,
          status: "DELIVERED" as const,
          lastError: null,
          deliveredAt: attemptedAt,
          finishedAt: attemptedAt,
        }
      : record.outcome === "retry"
        ? { ...common, lastError: record.error, nextAttemptAt: record.nextAttemptAt }
        : { ...common, status: "FAILED" as const, lastError: record.error, finishedAt: attemptedAt };
  const { count } = await prisma.webhookDelivery.updateMany({
    where: { id: delivery.id, status: "PENDING", leaseOwner: owner },
    data,
  });
  return count === 1;
}

/** Gives a claimed delivery back untried (a shutdown interrupted it): the next member sends it. */
export async function releaseDeliveries(prisma: PrismaClient, owner: string, ids?: string[]): Promise<void> {
  await prisma.webhookDelivery.updateMany({
    where: { leaseOwner: owner, status: "PENDING", ...(ids ? { id: { in: ids } } : {}) },
    data: { leaseOwner: null, leaseExpiresAt: null },
  });
}

/** Rows deleted per statement by pruneWebhooks, so that a big table is never locked for long. */
const PRUNE_BATCH = 2000;

/**
 * Deliveries that ended before `before`, and webhooks deleted before it with what they still held.
 * Returns how many rows went.
 */
export async function pruneWebhooks(prisma: PrismaClient, before: Date): Promise<number> {
  let removed = 0;
  for (;;) {
    const count = await prisma.$executeRaw`
      DELETE FROM "WebhookDelivery" WHERE id IN (
        SELECT d.id FROM "WebhookDelivery" AS d JOIN "Webhook" AS w ON w.id = d."webhookId"
        WHERE d."finishedAt" < ${before} OR w."deletedAt" < ${before}
        LIMIT ${PRUNE_BATCH})`;
    removed += count;
    if (count < PRUNE_BATCH) break;
  }
  const { count } = await prisma.webhook.deleteMany({
    where: { deletedAt: { lt: before }, deliveries: { none: {} } },
  });
  return removed + count;
}

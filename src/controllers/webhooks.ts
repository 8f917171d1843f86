import type { Database } from "../db/client.ts";
import type { Clock } from "../domain/clock.ts";
import { nextAttemptAfterFailure, type WebhookBody } from "../domain/webhooks.ts";
import type { ChangeBus } from "../events/bus.ts";
import { encodeEventCursor } from "../events/log.ts";
import type { ModelEvent } from "../generated/prisma/client.ts";
import type { Logger } from "../logger.ts";
import {
  type AttemptRecord,
  claimDelivery,
  type DeliveryToSend,
  deliveryToSend,
  type HeadOfLine,
  headsOfLine,
  pruneWebhooks,
  recordAttempt,
  releaseDeliveries,
} from "../store/webhooks.ts";
import { type LeaseHolder, leasedTo, mayClaim } from "./leases.ts";
import type { SendOutcome, WebhookSender } from "./webhook-sender.ts";

export interface WebhookWorkerOptions {
  /** Deliveries this process sends at once, of different webhooks (one webhook: one at a time). */
  concurrency?: number;
  /** How often it looks for retries that are due and deliveries of gone members, besides NOTIFY. */
  sweepMs?: number;
  /** Finished deliveries (and deleted webhooks) are removed this long after they ended; null: never. */
  retentionMs?: number | null;
}

const PRUNE_EVERY_MS = 60 * 60_000;

/**
 * Delivers webhooks (API.md section 11); one runs in every Hangar process. Per webhook only the head of
 * line, its first PENDING delivery, may be sent, and only by the member holding its lease: delivery
 * n+1 is claimable only once n is DELIVERED or FAILED, so a webhook's events arrive in order, and
 * exactly one member sends each attempt. A lease is held for as long as its owner lives (leases.ts):
 * the delivery of a member that died mid-send is claimed by another, which sends it again under the
 * same delivery ID (at least once). Different webhooks are sent concurrently, up to `concurrency`, so
 * one that hangs for the whole answer timeout delays no other; nothing here runs on a request's path.
 * It wakes on the NOTIFY of a queued delivery, and sweeps every `sweepMs` for retries that fall due and
 * leases to take over. A failing database is logged once per outage and retried; it never throws.
 */
export class WebhookWorker {
  /** Webhook ID -> the send under way here. */
  private readonly inFlight = new Map<string, Promise<void>>();
  private readonly aborts = new AbortController();
  private sweeping: Promise<void> | null = null;
  private again = false;
  private timer: NodeJS.Timeout | null = null;
  private retryTimer: NodeJS.Timeout | null = null;
  private unsubscribe: (() => void) | null = null;
  private stopping = false;
  /** Until start(), it sweeps only when told to (tests drive it so, step by step). */
  private started = false;
  /** Set while the database fails: the first error is logged, then one line when it works again. */
  private failing = false;
  private lastPruneAt = Number.NEGATIVE_INFINITY;
  private readonly concurrency: number;
  private readonly sweepMs: number;
  private readonly retentionMs: number | null;

  constructor(
    private readonly db: Database,
    private readonly bus: ChangeBus,
    private readonly holder: LeaseHolder,
    private readonly sender: WebhookSender,
    private readonly clock: Clock,
    private readonly log: Logger,
    options: WebhookWorkerOptions = {},
  ) {
    this.concurrency = options.concurrency ?? 16;
    this.sweepMs = options.sweepMs ?? 1000;
    this.retentionMs = options.retentionMs ?? null;
  }

  start(): void {
    this.started = true;
    this.unsubscribe = this.bus.on((change) => {
      if (change.kind === "webhooks" || change.kind === "resync") this.wake();
    });
    this.timer = setInterval(() => this.wake(), this.sweepMs);
    this.wake();
  }

  /** Stops sending: sends under way are cut short and their deliveries given back untried. */
  async stop(): Promise<void> {
    this.stopping = true;
    if (this.timer) clearInterval(this.timer);
    if (this.retryTimer) clearTimeout(this.retryTimer);
    this.unsubscribe?.();
    this.aborts.abort();
    await this.sweeping;
    await this.idle();
    await releaseDeliveries(this.db.prisma, this.holder.id).catch((error: unknown) =>
      this.log.warn({ err: error }, "webhooks: could not give back the deliveries this process held"),
    );
  }

  /** Webhooks with a delivery under way here (claimed, being sent or recorded). */
  get busy(): number {
    return this.inFlight.size;
  }

  /** Resolves once no send is under way here (tests). */
  async idle(): Promise<void> {
    while (this.inFlight.size > 0) await Promise.all([...this.inFlight.values()]);
  }

  /** Asks for a sweep: at once, or right after the one running (wake-ups in between make one). */
  wake(): void {
    if (this.stopping || !this.started) return;
    if (this.sweeping) {
      this.again = true;
      return;
    }
    this.sweeping = (async () => {
      do {
        this.again = false;
        await this.sweep();
      } while (this.again && !this.stopping);
      this.sweeping = null;
    })();
  }

  /**
   * One pass: claims every head of line that is due and free (or held by a gone member) and starts
   * sending it, as far as the pool allows. Public for tests, which drive it with a fake clock.
   */
  async sweep(): Promise<void> {
    if (this.stopping || !this.holder.canAct()) return;
    try {
      const heads = await headsOfLine(this.db.prisma);
      const now = this.clock.now();
      const waiting = heads.filter((head) => !this.inFlight.has(head.webhookId));
      const dueAt = (head: HeadOfLine) => head.nextAttemptAt?.getTime() ?? now;
      const due = waiting.filter((head) => dueAt(head) <= now);
      this.scheduleRetry(
        waiting.map(dueAt).filter((at) => at > now),
        now,
      );
      const others = due.flatMap((head) =>
        head.leaseOwner && head.leaseOwner !== this.holder.id ? [head.leaseOwner] : [],
      );
      const gone = others.length > 0 ? await this.holder.gone(others) : new Set<string>();
      const free = due.filter((head) => mayClaim(head.leaseOwner, this.holder.id, gone));
      // In a random order: with the pool full, no webhook always goes first.
      for (const head of shuffle(free)) {
        if (this.inFlight.size >= this.concurrency || this.stopping) break;
        this.begin(head);
      }
      await this.pruneIfDue(now);
      if (this.failing) this.log.info("webhooks: the database answers again; deliveries go on");
      this.failing = false;
    } catch (error) {
      this.onError(error);
    }
  }

  /** A timer for the earliest retry that falls due before the next sweep. */
  private scheduleRetry(later: number[], now: number): void {
    if (later.length === 0 || this.stopping) return;
    const soonest = Math.min(...later);
    if (soonest - now >= this.sweepMs) return;
    if (this.retryTimer) clearTimeout(this.retryTimer);
    this.retryTimer = setTimeout(() => this.wake(), Math.max(soonest - now, 0));
  }

  private begin(head: HeadOfLine): void {
    const task = this.deliver(head)
      .catch((error: unknown) => this.onError(error))
      .finally(() => {
        this.inFlight.delete(head.webhookId);
        // The webhook's next delivery (or another webhook waiting for a slot) goes now.
        this.wake();
      });
    this.inFlight.set(head.webhookId, task);
  }

  private async deliver(head: HeadOfLine): Promise<void> {
    const { prisma } = this.db;
    const now = new Date(this.clock.now());
    const claimed = await claimDelivery(prisma, head, leasedTo(this.holder.id, now), now);
    if (!claimed) return;
    const found = await deliveryToSend(prisma, head.id);
    if (!found || found.webhook.deletedAt !== null) {
      await releaseDeliveries(prisma, this.holder.id, [head.id]);
      return;
    }
    const { event } = found;
    if (!event) {
      const now = new Date(this.clock.now());
      const record = { outcome: "failed" as const, status: null, error: "its event no longer exists" };
      await recordAttempt(prisma, found.delivery, this.holder.id, now, record);
      return;
    }
    const at = this.clock.now();
    const outcome = await this.sender.send(
      {
        deliveryId: found.delivery.id,
        url: found.webhook.url,
        secret: found.webhook.secret,
        body: bodyOf(event),
        at,
      },
      this.aborts.signal,
    );
    // Cut short by stop(): given back untried. An answer that came first is recorded as any other.
    if (!outcome.ok && this.aborts.signal.aborted) return;
    const record = recordOf(found, outcome, at, this.clock.now());
    const recorded = await recordAttempt(prisma, found.delivery, this.holder.id, new Date(at), record);
    if (!recorded) {
      this.log.warn(
        { webhookId: found.webhook.id, deliveryId: found.delivery.id },
        "webhooks: another member took this delivery over while it was being sent",
      );
    } else if (record.outcome !== "delivered") {
      this.log.debug(
        {
          webhookId: found.webhook.id,
          deliveryId: found.delivery.id,
          status: outcome.status,
          outcome: record.outcome,
        },
        `webhooks: delivery attempt failed: ${record.error}`,
      );
    }
  }

  private async pruneIfDue(now: number): Promise<void> {
    if (this.retentionMs === null || now - this.lastPruneAt < PRUNE_EVERY_MS) return;
    this.lastPruneAt = now;
    await pruneWebhooks(this.db.prisma, new Date(now - this.retentionMs));
  }

  private onError(error: unknown): void {
    if (this.stopping || this.failing) return;
    this.failing = true;
    this.log.error({ err: error }, "webhooks: the worker failed (it tries again every sweep)");
  }
}

/** The JSON body of API.md section 11. */
export function bodyOf(event: ModelEvent): WebhookBody {
  return {
    cursor: encodeEventCursor(event.seq),
    type: event.type,
    at: event.at.toISOString(),
    message: event.message,
    actor: event.actor,
    modelId: event.modelId,
    deploymentId: event.deploymentId,
    environmentId: event.environmentId,
    promotionId: event.promotionId,
  };
}

/** What an attempt made at `at` comes to: delivered, retried (1, 2, 4 ... s), or FAILED after 24 h. */
function recordOf(found: DeliveryToSend, outcome: SendOutcome, at: number, now: number): AttemptRecord {
  if (outcome.ok) return { outcome: "delivered", status: outcome.status };
  const attempts = found.delivery.attempts + 1;
  const first = found.delivery.firstAttemptAt?.getTime() ?? at;
  const next = nextAttemptAfterFailure(attempts, first, now);
  return next === null
    ? { outcome: "failed", status: outcome.status, error: outcome.error }
    : { outcome: "retry", status: outcome.status, error: outcome.error, nextAttemptAt: new Date(next) };
}

function shuffle<T>(items: T[]): T[] {
  const out = [...items];
  for (let i = out.length - 1; i > 0; i--) {
    const j = Math.floor(Math.random() * (i + 1));
    [out[i], out[j]] = [out[j] as T, out[i] as T];
  }
  return out;
}

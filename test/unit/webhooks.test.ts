/**
 * Webhook delivery without a network: the retry schedule and the signature (domain/webhooks.ts), and
 * the worker (controllers/webhooks.ts) against a real embedded database, its time a FakeClock and its
 * receiver a fake sender the test answers for, so that every attempt happens when the test says.
 */
import { webcrypto } from "node:crypto";
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from "vitest";
import { type LeaseHolder, soleHolder } from "../../src/controllers/leases.ts";
import type { OutgoingDelivery, SendOutcome, WebhookSender } from "../../src/controllers/webhook-sender.ts";
import { WebhookWorker } from "../../src/controllers/webhooks.ts";
import type { Database } from "../../src/db/client.ts";
import { type Access, mayManageWebhook } from "../../src/domain/access.ts";
import { FakeClock } from "../../src/domain/clock.ts";
import {
  MAX_RETRY_MS,
  nextAttemptAfterFailure,
  RETRY_FOR_MS,
  retryDelayMs,
  signatureHeader,
  webhookUrlProblem,
} from "../../src/domain/webhooks.ts";
import { ChangeBus } from "../../src/events/bus.ts";
import { appendEvent, encodeEventCursor } from "../../src/events/log.ts";
import type { ModelEventType } from "../../src/generated/prisma/enums.ts";
import { createLogger } from "../../src/logger.ts";
import { insertModel } from "../../src/store/models.ts";
import { insertWebhook } from "../../src/store/webhooks.ts";
import { scratchDatabase } from "../support/scratch-database.ts";

describe("retry schedule", () => {
  it("waits 1, 2, 4 ... s after each failed attempt, at most 10 minutes", () => {
    const delays = Array.from({ length: 14 }, (_, i) => retryDelayMs(i + 1) / 1000);
    expect(delays).toEqual([1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 600, 600, 600, 600]);
    expect(retryDelayMs(10_000)).toBe(MAX_RETRY_MS);
  });

  it("gives up once the next try would fall more than 24 h after the first", () => {
    const first = 5_000_000;
    expect(nextAttemptAfterFailure(1, first, first)).toBe(first + 1000);
    expect(nextAttemptAfterFailure(3, first, first + 10_000)).toBe(first + 14_000);
    // 10 minutes before the end there is room for one more; a second later there is not.
    const late = first + RETRY_FOR_MS - MAX_RETRY_MS;
    expect(nextAttemptAfterFailure(200, first, late)).toBe(first + RETRY_FOR_MS);
    expect(nextAttemptAfterFailure(200, first, late + 1)).toBeNull();
  });
});

describe("signature", () => {
  it("is t=<unix seconds>,sha256=<hex HMAC-SHA256 of '<t>.<body>'> keyed by the secret", async () => {
    const body = JSON.stringify({ type: "MODEL_CREATED", message: 'ü and "quotes"' });
    const header = signatureHeader("whsec_test", 1_733_300_000, body);
    const match = /^t=(\d+),sha256=([0-9a-f]{64})$/.exec(header);
    expect(match?.[1]).toBe("1733300000");
    // Checked with WebCrypto, as a receiver might, rather than with the function under test.
    const key = await webcrypto.subtle.importKey(
      "raw",
      new TextEncoder().encode("whsec_test"),
      { name: "HMAC", hash: "SHA-256" },
      false,
      ["sign"],
    );
    const mac = await webcrypto.subtle.sign("HMAC", key, new TextEncoder().encode(`1733300000.${body}`));
    expect(match?.[2]).toBe(Buffer.from(mac).toString("hex"));
    // Another secret, time or body signs differently.
    expect(signatureHeader("whsec_other", 1_733_300_000, body)).not.toBe(header);
    expect(signatureHeader("whsec_test", 1_733_300_001, body)).not.toBe(header);
    expect(signatureHeader("whsec_test", 1_733_300_000, `${body} `)).not.toBe(header);
  });
});

describe("webhook URLs", () => {
  it("takes http:// and https:// URLs only", () => {
    expect(webhookUrlProblem("http://127.0.0.1:8080/hook")).toBeNull();
    expect(webhookUrlProblem("https://hooks.example.com/a?b=c")).toBeNull();
    for (const bad of [
      "",
      "ftp://example.com/",
      "javascript:alert(1)",
      "file:///etc/passwd",
      "example.com/hook",
      "/relative",
      "http://user:pass@example.com/",
      "http://example.com/a b",
      "http://example.com/\n",
      `https://example.com/${"a".repeat(2048)}`,
    ]) {
      expect(webhookUrlProblem(bad), bad).toEqual(expect.any(String));
    }
  });
});

describe("who may manage webhooks", () => {
  const key = (role: Access["role"], modelIds: string[] | null = null): Access => ({
    keyId: "key_x",
    name: "k",
    role,
    modelIds,
    environments: null,
  });
  it("ADMIN any; DEPLOYER its models, and every model only unlimited; VIEWER and INFERENCE none", () => {
    expect(mayManageWebhook(key("ADMIN"), null)).toBe(true);
    expect(mayManageWebhook(key("ADMIN"), "mdl_a")).toBe(true);
    expect(mayManageWebhook(key("DEPLOYER"), null)).toBe(true);
    expect(mayManageWebhook(key("DEPLOYER", ["mdl_a"]), "mdl_a")).toBe(true);
    expect(mayManageWebhook(key("DEPLOYER", ["mdl_a"]), "mdl_b")).toBe(false);
    expect(mayManageWebhook(key("DEPLOYER", ["mdl_a"]), null)).toBe(false);
    for (const role of ["VIEWER", "INFERENCE"] as const) {
      expect(mayManageWebhook(key(role), null)).toBe(false);
      expect(mayManageWebhook(key(role), "mdl_a")).toBe(false);
    }
  });
});

/** A receiver the test answers for: each send waits until the test settles it. */
class FakeSender implements WebhookSender {
  readonly sent: Array<OutgoingDelivery & { settle(outcome: SendOutcome): void }> = [];
  /** Sends not answered yet. */
  unanswered = 0;
  send(delivery: OutgoingDelivery, signal: AbortSignal): Promise<SendOutcome> {
    this.unanswered++;
    return new Promise((resolve) => {
      let open = true;
      const aborted = () => settle({ ok: false, status: null, error: "aborted" });
      const settle = (outcome: SendOutcome) => {
        if (open) this.unanswered--;
        open = false;
        signal.removeEventListener("abort", aborted);
        resolve(outcome);
      };
      this.sent.push({ ...delivery, settle });
      signal.addEventListener("abort", aborted);
    });
  }
  /** Answers the last send. */
  answer(outcome: SendOutcome): void {
    const last = this.sent.at(-1);
    if (!last) throw new Error("nothing was sent");
    last.settle(outcome);
  }
}

const OK: SendOutcome = { ok: true, status: 204 };
const DOWN: SendOutcome = { ok: false, status: 503, error: "the receiver answered 503" };

describe("the webhook worker", () => {
  let scratch: Awaited<ReturnType<typeof scratchDatabase>>;
  let db: Database;
  const log = createLogger("silent");
  const workers: WebhookWorker[] = [];
  vi.spyOn(log, "error");

  beforeAll(async () => {
    scratch = await scratchDatabase();
    db = scratch.db;
  }, 60_000);

  afterAll(async () => {
    await scratch?.dispose();
  });

  afterEach(async () => {
    for (const worker of workers.splice(0)) await worker.stop();
    // Each test has webhooks of its own: the ones before it send nothing more.
    await db.prisma.webhook.updateMany({ where: { deletedAt: null }, data: { deletedAt: new Date() } });
    expect(log.error).not.toHaveBeenCalled();
  });

  function worker(clock: FakeClock, sender: WebhookSender, holder: LeaseHolder = soleHolder("me")) {
    const made = new WebhookWorker(db, new ChangeBus(), holder, sender, clock, log, { concurrency: 4 });
    workers.push(made);
    return made;
  }

  async function model(name: string): Promise<string> {
    return (await db.prisma.$transaction((tx) => insertModel(tx, name))).id;
  }

  async function webhook(modelId: string | null, events: ModelEventType[] | null = null) {
    return db.prisma.$transaction((tx) =>
      insertWebhook(tx, { url: "http://receiver.invalid/", modelId, events, secret: "whsec_unit" }),
    );
  }

  async function event(modelId: string, type: ModelEventType = "ENVIRONMENT_UPDATED", message = "x") {
    return db.prisma.$transaction((tx) => appendEvent(tx, { modelId, type, message }));
  }

  /** One sweep, then until each send it started is waiting for its answer or is over. */
  async function pass(w: WebhookWorker, sender?: FakeSender): Promise<void> {
    await w.sweep();
    const deadline = Date.now() + 5000;
    while (w.busy > (sender?.unanswered ?? 0)) {
      if (Date.now() > deadline) throw new Error("the worker's sends did not reach the receiver");
      await new Promise((resolve) => setTimeout(resolve, 2));
    }
  }

  it("sends delivery n+1 only once n is delivered, in event order, under one delivery ID", async () => {
    const clock = new FakeClock(Date.parse("2026-12-04T12:00:00Z"));
    const sender = new FakeSender();
    const w = worker(clock, sender);
    const modelId = await model("ordered");
    const hook = await webhook(modelId);
    const seqs = [];
    for (const message of ["one", "two", "three"])
      seqs.push(await event(modelId, "ENVIRONMENT_UPDATED", message));

    await pass(w, sender);
    expect(sender.sent.map((s) => s.body.message)).toEqual(["one"]);
    // While "one" is unanswered, sweeps send nothing else of this webhook.
    await pass(w, sender);
    await pass(w, sender);
    expect(sender.sent).toHaveLength(1);
    sender.answer(DOWN);
    await w.idle();
    // Failed: "one" is retried (same ID) after 1 s, and "two" still waits.
    await pass(w, sender);
    expect(sender.sent).toHaveLength(1);
    clock.advance(1000);
    await pass(w, sender);
    expect(sender.sent.map((s) => s.body.message)).toEqual(["one", "one"]);
    expect(sender.sent[1]?.deliveryId).toBe(sender.sent[0]?.deliveryId);
    sender.answer(OK);
    await w.idle();
    await pass(w, sender);
    sender.answer(OK);
    await w.idle();
    await pass(w, sender);
    sender.answer(OK);
    await w.idle();
    expect(sender.sent.map((s) => s.body.message)).toEqual(["one", "one", "two", "three"]);
    expect(sender.sent.map((s) => s.body.cursor)).toEqual(
      [seqs[0], seqs[0], seqs[1], seqs[2]].map((seq) => encodeEventCursor(seq as number)),
    );
    expect(sender.sent[0]?.body).toMatchObject({ type: "ENVIRONMENT_UPDATED", modelId, actor: null });
    expect(sender.sent[0]?.secret).toBe("whsec_unit");
    const rows = await db.prisma.webhookDelivery.findMany({
      where: { webhookId: hook.id },
      orderBy: { seq: "asc" },
    });
    expect(rows.map((r) => [r.seq, r.status, r.attempts, r.lastStatus, r.leaseOwner])).toEqual([
      [1, "DELIVERED", 2, 204, null],
      [2, "DELIVERED", 1, 204, null],
      [3, "DELIVERED", 1, 204, null],
    ]);
  });

  it("retries after 1, 2, 4 ... s up to 10 minutes for 24 h, then fails the delivery and goes on", async () => {
    const start = Date.parse("2026-12-04T12:00:00Z");
    const clock = new FakeClock(start);
    const sender = new FakeSender();
    const w = worker(clock, sender);
    const modelId = await model("backoff");
    const hook = await webhook(modelId);
    await event(modelId, "ENVIRONMENT_UPDATED", "doomed");
    await event(modelId, "ENVIRONMENT_UPDATED", "next");

    const attemptTimes: number[] = [];
    for (let guard = 0; guard < 400; guard++) {
      await pass(w, sender);
      const last = sender.sent.at(-1);
      if (last?.body.message === "next") break;
      if (sender.sent.length > attemptTimes.length) {
        attemptTimes.push(clock.now() - start);
        sender.answer(DOWN);
        await w.idle();
        const row = await db.prisma.webhookDelivery.findFirstOrThrow({
          where: { webhookId: hook.id, seq: 1 },
        });
        if (row.status === "FAILED") continue;
        // Not a millisecond early: a sweep just before it is due sends nothing.
        clock.advance((row.nextAttemptAt as Date).getTime() - clock.now() - 1);
        await pass(w, sender);
        expect(sender.sent.length).toBe(attemptTimes.length);
        clock.advance(1);
      }
    }
    const gaps = attemptTimes.slice(1).map((t, i) => (t - (attemptTimes[i] as number)) / 1000);
    expect(gaps.slice(0, 12)).toEqual([1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 600, 600]);
    expect(gaps.every((gap) => gap <= 600)).toBe(true);
    // Tried for 24 h from the first attempt and not past it: the last try within 10 minutes of the end.
    const span = (attemptTimes.at(-1) as number) - (attemptTimes[0] as number);
    expect(span).toBeLessThanOrEqual(RETRY_FOR_MS);
    expect(span).toBeGreaterThan(RETRY_FOR_MS - MAX_RETRY_MS);
    const failed = await db.prisma.webhookDelivery.findFirstOrThrow({
      where: { webhookId: hook.id, seq: 1 },
    });
    expect(failed).toMatchObject({
      status: "FAILED",
      attempts: attemptTimes.length,
      lastStatus: 503,
      lastError: "the receiver answered 503",
      deliveredAt: null,
    });
    // The next event went once the first was given up on.
    expect(sender.sent.at(-1)?.body.message).toBe("next");
    sender.answer(OK);
    await w.idle();
  });

  it("queues deliveries only for committed events, of the models and types each webhook names", async () => {
    const a = await model("filter-a");
    const b = await model("filter-b");
    const everything = await webhook(null);
    const onlyA = await webhook(a);
    const onlyDeleted = await webhook(null, ["MODEL_DELETED"]);
    await event(a, "ENVIRONMENT_UPDATED");
    await event(b, "MODEL_DELETED");
    await expect(
      db.prisma.$transaction(async (tx) => {
        await appendEvent(tx, { modelId: a, type: "MODEL_DELETED", message: "rolled back" });
        throw new Error("roll back");
      }),
    ).rejects.toThrow("roll back");
    const types = async (id: string) =>
      (await db.prisma.webhookDelivery.findMany({ where: { webhookId: id }, orderBy: { seq: "asc" } })).map(
        (d) => [d.seq, d.eventType, d.modelId],
      );
    expect(await types(everything.id)).toEqual([
      [1, "ENVIRONMENT_UPDATED", a],
      [2, "MODEL_DELETED", b],
    ]);
    expect(await types(onlyA.id)).toEqual([[1, "ENVIRONMENT_UPDATED", a]]);
    expect(await types(onlyDeleted.id)).toEqual([[1, "MODEL_DELETED", b]]);
  });

  it("takes over a delivery whose member is gone, never one a live member holds", async () => {
    const clock = new FakeClock();
    const sender = new FakeSender();
    const modelId = await model("takeover");
    const hook = await webhook(modelId);
    await event(modelId);
    await db.prisma.webhookDelivery.updateMany({
      where: { webhookId: hook.id },
      data: { leaseOwner: "other-member", leaseExpiresAt: new Date(clock.now() + 30_000) },
    });
    // A member that judges nobody gone leaves it alone ...
    const alive: LeaseHolder = { id: "me", canAct: () => true, gone: async () => new Set() };
    await pass(worker(clock, sender, alive));
    expect(sender.sent).toHaveLength(0);
    // ... and one that may not act claims nothing at all ...
    const idle: LeaseHolder = { id: "me", canAct: () => false, gone: async (o) => new Set(o) };
    await pass(worker(clock, sender, idle));
    expect(sender.sent).toHaveLength(0);
    // ... while one that sees the owner gone sends it.
    const w = worker(clock, sender, soleHolder("me"));
    await pass(w, sender);
    expect(sender.sent).toHaveLength(1);
    sender.answer(OK);
    await w.idle();
    const row = await db.prisma.webhookDelivery.findFirstOrThrow({ where: { webhookId: hook.id } });
    expect(row).toMatchObject({ status: "DELIVERED", attempts: 1, leaseOwner: null });
  });

  it("gives an interrupted send back untried when it stops", async () => {
    const clock = new FakeClock();
    const sender = new FakeSender();
    const modelId = await model("interrupted");
    const hook = await webhook(modelId);
    await event(modelId);
    const w = worker(clock, sender);
    await pass(w, sender);
    expect(sender.sent).toHaveLength(1);
    await w.stop();
    const row = await db.prisma.webhookDelivery.findFirstOrThrow({ where: { webhookId: hook.id } });
    expect(row).toMatchObject({ status: "PENDING", attempts: 0, leaseOwner: null });
  });

  it("survives a database that fails: says so once, sends nothing, and goes on when it is back", async () => {
    const clock = new FakeClock();
    const sender = new FakeSender();
    const modelId = await model("outage");
    await webhook(modelId);
    await event(modelId, "ENVIRONMENT_UPDATED", "after the outage");
    const down = new Error("connection refused");
    const failing = { $queryRaw: () => Promise.reject(down) };
    // A database whose client can be swapped: down first, then the real one.
    const flaky = { ...db, prisma: failing } as unknown as Database;
    const outageLog = createLogger("silent");
    const errors = vi.spyOn(outageLog, "error");
    const infos = vi.spyOn(outageLog, "info");
    const w = new WebhookWorker(flaky, new ChangeBus(), soleHolder("me"), sender, clock, outageLog);
    workers.push(w);
    for (let i = 0; i < 3; i++) await pass(w, sender);
    expect(errors).toHaveBeenCalledTimes(1);
    expect(errors.mock.calls[0]?.[0]).toEqual({ err: down });
    expect(sender.sent).toHaveLength(0);
    (flaky as { prisma: unknown }).prisma = db.prisma;
    await pass(w, sender);
    expect(infos).toHaveBeenCalledWith("webhooks: the database answers again; deliveries go on");
    expect(sender.sent.map((s) => s.body.message)).toEqual(["after the outage"]);
    sender.answer(OK);
    await w.idle();
  });

  it("keeps one slow webhook from holding up another", async () => {
    const clock = new FakeClock();
    const sender = new FakeSender();
    const w = worker(clock, sender);
    const modelId = await model("independent");
    await webhook(modelId, ["ENVIRONMENT_UPDATED"]);
    await webhook(modelId, ["AUTOSCALING_UPDATED"]);
    await event(modelId, "ENVIRONMENT_UPDATED", "slow");
    await pass(w, sender);
    expect(sender.sent.map((s) => s.body.message)).toEqual(["slow"]);
    // The first is still unanswered when the second webhook's event comes: it goes at once.
    await event(modelId, "AUTOSCALING_UPDATED", "quick");
    await pass(w, sender);
    expect(sender.sent.map((s) => s.body.message)).toEqual(["slow", "quick"]);
    sender.answer(OK);
    sender.sent[0]?.settle(OK);
    await w.idle();
  });
});

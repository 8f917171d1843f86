/**
 * The promotion controller against a real embedded database, its time a
 * FakeClock: a promotion driven to SUCCEEDED through the canary, a restart
 * mid-stage, and rollbacks, each in moves the test makes by advancing the clock.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from "vitest";
import { soleHolder } from "../../src/controllers/leases.ts";
import { PromotionController } from "../../src/controllers/promotions.ts";
import type { Database } from "../../src/db/client.ts";
import { DEFAULT_AUTOSCALING } from "../../src/domain/autoscaling.ts";
import { FakeClock } from "../../src/domain/clock.ts";
import { newId } from "../../src/domain/ids.ts";
import { parseSteps, stepOf } from "../../src/domain/promotion.ts";
import type { PromotionSettings } from "../../src/domain/promotion-settings.ts";
import type { DeploymentStatus } from "../../src/domain/status.ts";
import { ChangeBus } from "../../src/events/bus.ts";
import { createLogger } from "../../src/logger.ts";
import { NO_OTHER_MEMBERS, type OtherMembersTraffic } from "../../src/metrics/shared-traffic.ts";
import type { AnswerCounts, AnswerReadings } from "../../src/metrics/traffic.ts";
import type { ServiceContext } from "../../src/services/context.ts";
import { insertPromotion } from "../../src/store/promotions.ts";
import { scratchDatabase } from "../support/scratch-database.ts";

let scratch: Awaited<ReturnType<typeof scratchDatabase>>;
let db: Database;
const log = createLogger("silent");

beforeAll(async () => {
  scratch = await scratchDatabase();
  db = scratch.db;
}, 60_000);

afterAll(async () => {
  await scratch?.dispose();
});

afterEach(() => {
  // The controller logs what goes wrong rather than throwing: nothing may have.
  expect(log.error).not.toHaveBeenCalled();
  vi.mocked(log.error).mockClear();
});
vi.spyOn(log, "error");

class Answers implements AnswerReadings {
  counts: AnswerCounts = { answered: 0, failed: 0 };
  /** Requests to the new deployment under way (routed, not answered yet). */
  pending = 0;
  answerCounts(): AnswerCounts {
    return { ...this.counts };
  }
  inFlight(): number {
    return this.pending;
  }
}

/** A model with `production` serving deployment-1, and deployment-2 to promote. */
async function world(
  name: string,
  settings: Partial<PromotionSettings>,
  candidate: DeploymentStatus = "ACTIVE",
) {
  const modelId = newId("Model");
  await db.prisma.model.create({ data: { id: modelId, name, liveName: name } });
  const deployment = (n: number, status: DeploymentStatus) =>
    db.prisma.deployment.create({
      data: {
        id: newId("Deployment"),
        modelId,
        name: `deployment-${n}`,
        liveName: `deployment-${n}`,
        kind: "PUBLISHED",
        status,
        artifactHash: "hash",
        autoscaling: { ...DEFAULT_AUTOSCALING, minReplica: n === 1 ? 2 : 0 },
      },
    });
  const previous = await deployment(1, "ACTIVE");
  const next = await deployment(2, candidate);
  const environment = await db.prisma.environment.create({
    data: {
      id: newId("Environment"),
      modelId,
      name: "production",
      liveName: "production",
      isProduction: true,
      currentDeploymentId: previous.id,
      autoscaling: { ...DEFAULT_AUTOSCALING },
      promotionSettings: settings,
    },
  });
  return { modelId, previous, next, environment };
}

async function promote(w: Awaited<ReturnType<typeof world>>, clock: FakeClock) {
  return db.prisma.$transaction((tx) =>
    insertPromotion(tx, w.next, w.environment, { scaleDownPrevious: true, pushed: false, now: clock.now() }),
  );
}

async function readyReplicas(deploymentId: string, count: number) {
  for (let i = 0; i < count; i++) {
    await db.prisma.replica.create({
      data: { id: newId("Replica"), deploymentId, owner: "test", state: "READY", readyAt: new Date() },
    });
  }
}

function controller(
  clock: FakeClock,
  answers: AnswerReadings = new Answers(),
  owner = "owner-1",
  others: OtherMembersTraffic = NO_OTHER_MEMBERS,
) {
  const wakes: string[] = [];
  const ctx = { db, bus: new ChangeBus(), log, clock } as unknown as ServiceContext;
  const promotions = new PromotionController(
    ctx,
    soleHolder(owner),
    { wake: async (id) => void wakes.push(id) },
    answers,
    others,
  );
  return { promotions, wakes };
}

const row = (id: string) => db.prisma.promotion.findUniqueOrThrow({ where: { id } });

async function messages(promotionId: string): Promise<string[]> {
  const events = await db.prisma.modelEvent.findMany({ where: { promotionId }, orderBy: { seq: "asc" } });
  return events.map((e) => e.message ?? "");
}

describe("the promotion controller", () => {
  it("drives a canary promotion to SUCCEEDED, one stage per rampUpDurationSeconds / 10 of the clock", async () => {
    const clock = new FakeClock(Date.parse("2026-12-01T10:00:00Z"));
    const w = await world("canary-ok", { rampUpWhilePromoting: true, rampUpDurationSeconds: 10 });
    const promotion = await promote(w, clock);
    const { promotions } = controller(clock);

    await promotions.advance(promotion.id);
    // The ramp waits for as many ready replicas as deployment-1's minReplica (2).
    expect(await row(promotion.id)).toMatchObject({ status: "RELEASING", canaryStage: 0, percentTraffic: 0 });
    await readyReplicas(w.next.id, 1);
    await promotions.advance(promotion.id);
    expect((await row(promotion.id)).canaryStage).toBe(0);
    await readyReplicas(w.next.id, 1);
    await promotions.advance(promotion.id);
    expect(await row(promotion.id)).toMatchObject({
      status: "RAMPING_UP",
      canaryStage: 1,
      percentTraffic: 10,
    });

    for (let stage = 2; stage <= 10; stage++) {
      clock.advance(999);
      await promotions.advance(promotion.id);
      expect((await row(promotion.id)).canaryStage).toBe(stage - 1);
      clock.advance(1);
      await promotions.advance(promotion.id);
      expect(await row(promotion.id)).toMatchObject({ canaryStage: stage, percentTraffic: stage * 10 });
    }
    clock.advance(1_000);
    await promotions.advance(promotion.id);
    const done = await row(promotion.id);
    expect(done).toMatchObject({ status: "SUCCEEDED", percentTraffic: 100, activeEnvironmentId: null });
    expect(done.finishedAt?.getTime()).toBe(clock.now());
    expect(stepOf(parseSteps(done.steps), "ACTIVATE").message).toBe(
      "'production' serves 'deployment-2'; 'deployment-1' scaled to zero",
    );
    const environment = await db.prisma.environment.findUniqueOrThrow({ where: { id: w.environment.id } });
    expect(environment.currentDeploymentId).toBe(w.next.id);
    const previous = await db.prisma.deployment.findUniqueOrThrow({ where: { id: w.previous.id } });
    expect(previous.status).toBe("SCALED_TO_ZERO");
    const next = await db.prisma.deployment.findUniqueOrThrow({ where: { id: w.next.id } });
    // During the promotion it ran with deployment-1's settings; at ACTIVATE they became its own.
    expect(next.promotionAutoscaling).toBeNull();
    expect(next.autoscaling).toMatchObject({ minReplica: 2 });
    const log = await messages(promotion.id);
    expect(log.slice(0, 4)).toEqual([
      "promoting 'deployment-2' to 'production' (replacing 'deployment-1')",
      "CREATE_DEPLOYMENT skipped: reusing 'deployment-2'",
      "START_DEPLOYMENT running: waiting for 'deployment-2' to be ready",
      "START_DEPLOYMENT succeeded: 'deployment-2' is ready",
    ]);
    expect(log.filter((m) => m.startsWith("canary stage"))).toHaveLength(10);
    expect(log.slice(-3)).toEqual([
      "ACTIVATE running",
      "'production' now serves 'deployment-2'",
      "promotion succeeded: 'production' serves 'deployment-2'",
    ]);
  }, 30_000);

  it("after a restart goes on with the stage's checkpoint: the time it was down does not count", async () => {
    const clock = new FakeClock(Date.parse("2026-12-02T10:00:00Z"));
    const w = await world("canary-restart", { rampUpWhilePromoting: true, rampUpDurationSeconds: 100 });
    await readyReplicas(w.next.id, 2);
    const promotion = await promote(w, clock);
    const first = controller(clock);
    await first.promotions.advance(promotion.id);
    expect((await row(promotion.id)).canaryStage).toBe(1);
    clock.advance(4_000);
    await first.promotions.advance(promotion.id); // checkpoint: 4 s of stage 1's 10
    expect((await row(promotion.id)).stageElapsedMs).toBe(4_000);
    await first.promotions.stop();

    clock.advance(600_000); // down for ten minutes
    const second = controller(clock, new Answers(), "owner-2");
    await second.promotions.advance(promotion.id);
    expect(await row(promotion.id)).toMatchObject({ canaryStage: 1, stageElapsedMs: 4_000 });
    clock.advance(5_999);
    await second.promotions.advance(promotion.id);
    expect((await row(promotion.id)).canaryStage).toBe(1);
    clock.advance(1);
    await second.promotions.advance(promotion.id);
    expect((await row(promotion.id)).canaryStage).toBe(2);
    await second.promotions.stop();
  }, 30_000);

  it("rolls back when a stage's error rate exceeds the threshold", async () => {
    const clock = new FakeClock(Date.parse("2026-12-03T10:00:00Z"));
    const w = await world("canary-errors", {
      rampUpWhilePromoting: true,
      rampUpDurationSeconds: 100,
      errorRateThresholdPercent: 10,
    });
    await readyReplicas(w.next.id, 2);
    const answers = new Answers();
    answers.counts = { answered: 500, failed: 400 }; // before the stage: not the stage's
    const promotion = await promote(w, clock);
    const { promotions } = controller(clock, answers);
    await promotions.advance(promotion.id);
    expect((await row(promotion.id)).status).toBe("RAMPING_UP");
    answers.counts = { answered: 530, failed: 404 }; // 4 of 30 in stage 1
    clock.advance(1_000);
    await promotions.advance(promotion.id);
    const failed = await row(promotion.id);
    expect(failed).toMatchObject({
      status: "FAILED",
      percentTraffic: 0,
      activeEnvironmentId: null,
      errorMessage:
        "canary stage 1 (10% of traffic): 13.3% of the new deployment's requests failed (4 of 30), " +
        "over the 10% threshold; all traffic is back on the previous deployment",
    });
    const environment = await db.prisma.environment.findUniqueOrThrow({ where: { id: w.environment.id } });
    expect(environment.currentDeploymentId).toBe(w.previous.id);
    const next = await db.prisma.deployment.findUniqueOrThrow({ where: { id: w.next.id } });
    expect(next.promotionAutoscaling).toBeNull();
  }, 30_000);

  it("counts the answers other members' gateways gave in the stage, from the stage's first second", async () => {
    const clock = new FakeClock(Date.parse("2026-12-03T11:00:00.400Z"));
    const w = await world("canary-errors-elsewhere", {
      rampUpWhilePromoting: true,
      rampUpDurationSeconds: 100,
      errorRateThresholdPercent: 10,
    });
    await readyReplicas(w.next.id, 2);
    const asked: number[] = [];
    let elsewhere = { answered: 0, failed: 0, inFlight: 0 };
    const others: OtherMembersTraffic = {
      concurrency: async () => new Map(),
      answers: async (deploymentId, sinceSecond) => {
        expect(deploymentId).toBe(w.next.id);
        asked.push(sinceSecond);
        return elsewhere;
      },
    };
    const promotion = await promote(w, clock);
    const { promotions } = controller(clock, new Answers(), "owner-1", others);
    await promotions.advance(promotion.id);
    expect((await row(promotion.id)).status).toBe("RAMPING_UP");
    // Nothing entered this member; another counted 25 answers of the new deployment, 5 of them 5xx.
    elsewhere = { answered: 25, failed: 5, inFlight: 2 };
    clock.advance(1_000);
    await promotions.advance(promotion.id);
    expect(asked.at(-1)).toBe(Math.floor(Date.parse("2026-12-03T11:00:00.400Z") / 1000));
    expect(await row(promotion.id)).toMatchObject({
      status: "FAILED",
      errorMessage: expect.stringContaining("20.0% of the new deployment's requests failed (5 of 25)"),
    });
  }, 30_000);

  it("holds a stage whose time is up while the new deployment's answers are still on their way, then judges them", async () => {
    // Answers slower than a stage (a loaded machine): every request routed to the new deployment is
    // still under way when the stage's time is up. Judged on no answers, each stage would pass and a
    // deployment failing every request would be promoted.
    const clock = new FakeClock(Date.parse("2026-12-05T10:00:00Z"));
    const w = await world("canary-slow-answers", {
      rampUpWhilePromoting: true,
      rampUpDurationSeconds: 10,
      errorRateThresholdPercent: 20,
    });
    await readyReplicas(w.next.id, 2);
    const answers = new Answers();
    const promotion = await promote(w, clock);
    const { promotions } = controller(clock, answers);
    await promotions.advance(promotion.id);
    expect((await row(promotion.id)).canaryStage).toBe(1);

    answers.pending = 2;
    clock.advance(5_000); // five stages' worth of time: stage 1 is over, its answers are not in
    await promotions.advance(promotion.id);
    expect(await row(promotion.id)).toMatchObject({
      status: "RAMPING_UP",
      canaryStage: 1,
      percentTraffic: 10,
    });
    clock.advance(2_000);
    await promotions.advance(promotion.id);
    expect((await row(promotion.id)).canaryStage).toBe(1);

    // The answers come: both cut (5xx). Stage 1 is judged on them.
    answers.pending = 0;
    answers.counts = { answered: 2, failed: 2 };
    await promotions.advance(promotion.id);
    expect(await row(promotion.id)).toMatchObject({
      status: "FAILED",
      errorMessage:
        "canary stage 1 (10% of traffic): 100.0% of the new deployment's requests failed (2 of 2), " +
        "over the 20% threshold; all traffic is back on the previous deployment",
    });
  }, 30_000);

  it("passes a stage with no requests to the new deployment, and the held stage's successor gets its whole length", async () => {
    const clock = new FakeClock(Date.parse("2026-12-06T10:00:00Z"));
    const w = await world("canary-held-then-ok", { rampUpWhilePromoting: true, rampUpDurationSeconds: 10 });
    await readyReplicas(w.next.id, 2);
    const answers = new Answers();
    const promotion = await promote(w, clock);
    const { promotions } = controller(clock, answers);
    await promotions.advance(promotion.id);
    answers.pending = 1;
    clock.advance(3_000);
    await promotions.advance(promotion.id);
    expect((await row(promotion.id)).canaryStage).toBe(1);
    answers.pending = 0;
    answers.counts = { answered: 1, failed: 0 };
    await promotions.advance(promotion.id);
    // No overrun carried: stage 2 has its full second, and nothing routed to it holds it.
    expect((await row(promotion.id)).canaryStage).toBe(2);
    clock.advance(999);
    await promotions.advance(promotion.id);
    expect((await row(promotion.id)).canaryStage).toBe(2);
    clock.advance(1);
    await promotions.advance(promotion.id);
    expect((await row(promotion.id)).canaryStage).toBe(3);
  }, 30_000);

  it("fails a deployment that is not ready by the progress deadline, and wakes one at zero", async () => {
    const clock = new FakeClock(Date.parse("2026-12-04T10:00:00Z"));
    const w = await world("deadline", { progressDeadlineSeconds: 30 }, "SCALED_TO_ZERO");
    const promotion = await promote(w, clock);
    const { promotions, wakes } = controller(clock);
    await promotions.advance(promotion.id);
    // Woken when START_DEPLOYMENT begins, and again while it is still at zero.
    expect(wakes.length).toBeGreaterThan(0);
    expect(new Set(wakes)).toEqual(new Set([w.next.id]));
    await db.prisma.deployment.update({ where: { id: w.next.id }, data: { status: "LOADING_MODEL" } });
    clock.advance(30_000);
    await promotions.advance(promotion.id);
    expect((await row(promotion.id)).status).toBe("RELEASING");
    clock.advance(1);
    await promotions.advance(promotion.id);
    const failed = await row(promotion.id);
    expect(failed).toMatchObject({
      status: "FAILED",
      errorMessage: "deployment 'deployment-2' was not ready within 30 s (progress deadline)",
    });
    const steps = parseSteps(failed.steps);
    expect(stepOf(steps, "START_DEPLOYMENT").status).toBe("FAILED");
    expect(stepOf(steps, "ACTIVATE").status).toBe("SKIPPED");
  }, 30_000);
});

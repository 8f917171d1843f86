// The promotion controller against a real embedded database, with a fake clock: every stage's start,
// pause keeping a stage's remaining time, the progress deadline and the error-rate rollback are decided
// on the clock the test moves, in milliseconds of test time rather than minutes of wall time.
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import type { Config } from "../../src/config.ts";
import { soleHolder } from "../../src/controllers/leases.ts";
import { PromotionController } from "../../src/controllers/promotions.ts";
import type { Database } from "../../src/db/client.ts";
import type { Access } from "../../src/domain/access.ts";
import { FakeClock } from "../../src/domain/clock.ts";
import { newId } from "../../src/domain/ids.ts";
import { DEFAULT_PROMOTION_SETTINGS, type PromotionSettings } from "../../src/domain/promotion-settings.ts";
import { ChangeBus } from "../../src/events/bus.ts";
import type { Logger } from "../../src/logger.ts";
import type { AnswerCounts } from "../../src/metrics/traffic.ts";
import type { RequestContext, ServiceContext } from "../../src/services/context.ts";
import { cancelPromotion, pausePromotion, resumePromotion } from "../../src/services/promotions.ts";
import type { ArtifactStore } from "../../src/store/artifacts.ts";
import { insertDeployment } from "../../src/store/deployments.ts";
import type { LogWriter } from "../../src/store/logs.ts";
import { insertModel } from "../../src/store/models.ts";
import { insertPromotion } from "../../src/store/promotions.ts";
import { scratchDatabase } from "../support/scratch-database.ts";

const RAMP_SECONDS = 10;
/** Each of the ten stages lasts a tenth of the ramp. */
const STAGE_MS = (RAMP_SECONDS * 1000) / 10;

let scratch: Awaited<ReturnType<typeof scratchDatabase>>;
let db: Database;
let clock: FakeClock;
let answers: Map<string, AnswerCounts>;
let woken: string[];
let ctx: ServiceContext;
let controller: PromotionController;

const silent = { error() {}, warn() {}, info() {}, debug() {} } as unknown as Logger;
const admin: Access = { keyId: "key_test", name: "test", role: "ADMIN", modelIds: null, environments: null };

beforeAll(async () => {
  scratch = await scratchDatabase();
  db = scratch.db;
}, 120_000);

afterAll(async () => {
  await scratch.dispose();
});

beforeEach(() => {
  clock = new FakeClock(Date.parse("2026-12-01T12:00:00Z"));
  answers = new Map();
  woken = [];
  ctx = {
    config: {} as Config,
    db,
    bus: new ChangeBus(),
    artifacts: {} as ArtifactStore,
    logs: {} as LogWriter,
    log: silent,
    clock,
    member: "test-owner",
    memberName: "test-owner",
    isolation: { sandbox: "OFF", limits: false, reasons: [] },
  };
  controller = new PromotionController(
    ctx,
    soleHolder("test-owner"),
    { wake: async (id) => void woken.push(id) },
    { answerCounts: (id) => ({ ...(answers.get(id) ?? { answered: 0, failed: 0 }) }), inFlight: () => 0 },
  );
});

/**
 * A model whose production serves `previous`, and a ready `next` to promote, as the deployment
 * controller would have left them (statuses and replica rows written directly: no runtime here).
 */
async function setUp(name: string, settings: Partial<PromotionSettings>, nextStatus: "ACTIVE" | "DEPLOYING") {
  return db.prisma.$transaction(async (tx) => {
    const model = await insertModel(tx, name);
    const production = await tx.environment.findFirstOrThrow({ where: { modelId: model.id } });
    const deployment = (n: number) =>
      insertDeployment(tx, {
        modelId: model.id,
        name: `deployment-${n}`,
        kind: "PUBLISHED",
        artifactHash: "a".repeat(64),
        environmentName: "production",
        message: "created by the test",
      });
    const previous = await deployment(1);
    const next = await deployment(2);
    await tx.deployment.update({ where: { id: previous.id }, data: { status: "ACTIVE" } });
    await tx.deployment.update({ where: { id: next.id }, data: { status: nextStatus } });
    if (nextStatus === "ACTIVE") {
      await tx.replica.create({
        data: { id: newId("Replica"), deploymentId: next.id, owner: "test-owner", port: 1, state: "READY" },
      });
    }
    const environment = await tx.environment.update({
      where: { id: production.id },
      data: {
        currentDeploymentId: previous.id,
        promotionSettings: { ...DEFAULT_PROMOTION_SETTINGS, ...settings },
      },
    });
    const nextRow = await tx.deployment.findUniqueOrThrow({ where: { id: next.id } });
    const promotion = await insertPromotion(tx, nextRow, environment, {
      scaleDownPrevious: true,
      pushed: false,
      now: clock.now(),
    });
    return { model, environment, previous, next, promotion };
  });
}

async function settle(id: string) {
  await controller.advance(id);
  return db.prisma.promotion.findUniqueOrThrow({ where: { id } });
}

const asCaller = (): RequestContext => ({ ...ctx, access: admin });

describe("PromotionController with a fake clock", () => {
  it("runs the three steps, then each canary stage at k x 10% of the ramp, then activates", async () => {
    const { promotion, environment, previous, next } = await setUp(
      "plan-ramp",
      { rampUpWhilePromoting: true, rampUpDurationSeconds: RAMP_SECONDS },
      "ACTIVE",
    );
    const began = clock.now();
    let row = await settle(promotion.id);
    expect(row).toMatchObject({ status: "RAMPING_UP", canaryStage: 1, percentTraffic: 10 });
    const steps = row.steps as { name: string; status: string }[];
    expect(steps.map((s) => `${s.name}:${s.status}`)).toEqual([
      "CREATE_DEPLOYMENT:SKIPPED",
      "START_DEPLOYMENT:SUCCEEDED",
      "ACTIVATE:PENDING",
    ]);
    for (let stage = 1; stage <= 10; stage++) {
      // One millisecond before the stage's end nothing moves; at its end the next begins.
      clock.advance(STAGE_MS - 1);
      row = await settle(promotion.id);
      expect(row.canaryStage).toBe(stage);
      clock.advance(1);
      row = await settle(promotion.id);
      if (stage < 10) {
        expect(row).toMatchObject({
          status: "RAMPING_UP",
          canaryStage: stage + 1,
          percentTraffic: (stage + 1) * 10,
        });
        expect(row.stageStartedAt?.getTime()).toBe(began + stage * STAGE_MS);
      }
    }
    expect(row).toMatchObject({ status: "SUCCEEDED", percentTraffic: 100, canaryStage: 10 });
    expect(row.finishedAt?.getTime()).toBe(began + RAMP_SECONDS * 1000);
    const served = await db.prisma.environment.findUniqueOrThrow({ where: { id: environment.id } });
    expect(served.currentDeploymentId).toBe(next.id);
    const demoted = await db.prisma.deployment.findUniqueOrThrow({ where: { id: previous.id } });
    expect(demoted.status).toBe("SCALED_TO_ZERO");
  });

  it("keeps a paused stage's remaining time, however long the pause", async () => {
    const { promotion, environment } = await setUp(
      "plan-pause",
      { rampUpWhilePromoting: true, rampUpDurationSeconds: RAMP_SECONDS },
      "ACTIVE",
    );
    await settle(promotion.id);
    clock.advance(STAGE_MS);
    expect((await settle(promotion.id)).canaryStage).toBe(2);
    clock.advance(400);
    await settle(promotion.id); // a checkpoint of the 400 ms spent
    await pausePromotion(asCaller(), environment.id);
    clock.advance(60 * 60_000);
    expect(await settle(promotion.id)).toMatchObject({
      status: "PAUSED",
      canaryStage: 2,
      stageElapsedMs: 400,
    });
    await resumePromotion(asCaller(), environment.id);
    clock.advance(STAGE_MS - 400 - 1);
    expect((await settle(promotion.id)).canaryStage).toBe(2);
    clock.advance(1);
    expect(await settle(promotion.id)).toMatchObject({ status: "RAMPING_UP", canaryStage: 3 });
  });

  it("fails START_DEPLOYMENT at the progress deadline, the paused time left out", async () => {
    const { promotion, environment } = await setUp(
      "plan-deadline",
      { progressDeadlineSeconds: 5 },
      "DEPLOYING",
    );
    let row = await settle(promotion.id);
    expect(row.status).toBe("RELEASING");
    clock.advance(2_000);
    await settle(promotion.id);
    await pausePromotion(asCaller(), environment.id);
    clock.advance(30_000);
    await resumePromotion(asCaller(), environment.id);
    clock.advance(3_000);
    expect((await settle(promotion.id)).status).toBe("RELEASING");
    clock.advance(1);
    row = await settle(promotion.id);
    expect(row.status).toBe("FAILED");
    expect(row.errorMessage).toBe("deployment 'deployment-2' was not ready within 5 s (progress deadline)");
  });

  it("rolls back when a stage's error rate breaks the threshold, with the figures in the message", async () => {
    const { promotion, environment, previous, next } = await setUp(
      "plan-rollback",
      { rampUpWhilePromoting: true, rampUpDurationSeconds: RAMP_SECONDS, errorRateThresholdPercent: 10 },
      "ACTIVE",
    );
    await settle(promotion.id);
    clock.advance(STAGE_MS);
    expect((await settle(promotion.id)).canaryStage).toBe(2);
    // The stage's own answers: counts before the stage began do not count against it.
    answers.set(next.id, { answered: 30, failed: 6 });
    clock.advance(100);
    const row = await settle(promotion.id);
    expect(row).toMatchObject({ status: "FAILED", percentTraffic: 0 });
    expect(row.errorMessage).toBe(
      "canary stage 2 (20% of traffic): 20.0% of the new deployment's requests failed (6 of 30), over the 10% threshold; all traffic is back on the previous deployment",
    );
    const served = await db.prisma.environment.findUniqueOrThrow({ where: { id: environment.id } });
    expect(served.currentDeploymentId).toBe(previous.id);
    expect(woken).toEqual([]);
  });
  it("ramps a graceful cancel down over the time it had ramped, a stage per step, then cancels", async () => {
    const { promotion, environment, previous } = await setUp(
      "plan-ramp-down",
      { rampUpWhilePromoting: true, rampUpDurationSeconds: RAMP_SECONDS },
      "ACTIVE",
    );
    await settle(promotion.id);
    for (let stage = 2; stage <= 3; stage++) {
      clock.advance(STAGE_MS);
      expect((await settle(promotion.id)).canaryStage).toBe(stage);
    }
    clock.advance(500);
    // Ramped so far: two whole stages and half of the third, 2.5 s; three steps down of 2.5 s / 3 each.
    const cancelling = await cancelPromotion(asCaller(), environment.id, true);
    expect(cancelling).toMatchObject({ status: "RAMPING_DOWN", canaryStage: 3, rampDownStepMs: 833 });
    for (const [stage, percent] of [
      [2, 20],
      [1, 10],
    ] as const) {
      clock.advance(832);
      expect((await settle(promotion.id)).canaryStage).toBe(stage + 1);
      clock.advance(1);
      expect(await settle(promotion.id)).toMatchObject({
        status: "RAMPING_DOWN",
        canaryStage: stage,
        percentTraffic: percent,
      });
    }
    clock.advance(833);
    expect(await settle(promotion.id)).toMatchObject({ status: "CANCELED", percentTraffic: 0 });
    const served = await db.prisma.environment.findUniqueOrThrow({ where: { id: environment.id } });
    expect(served.currentDeploymentId).toBe(previous.id);
  });
});

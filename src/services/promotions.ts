import type { Tx } from "../db/client.ts";
import { rampDownStepMs } from "../domain/canary.ts";
import { notFound, UserError } from "../domain/errors.ts";
import {
  isActive,
  type PromotionStatus,
  parseSteps,
  pausedDuringStart,
  stepOf,
} from "../domain/promotion.ts";
import { parsePromotionSettings } from "../domain/promotion-settings.ts";
import type { Promotion } from "../generated/prisma/client.ts";
import { findEnvironment } from "../store/environments.ts";
import { isUniqueViolation } from "../store/errors.ts";
import {
  endPromotion,
  insertPromotion,
  lockPromotion,
  type PromotionChange,
  promotionInProgress,
  recordPromotion,
} from "../store/promotions.ts";
import { requireEnvironment, requireVisible } from "./authorize.ts";
import { type RequestContext, type ServiceContext, transaction } from "./context.ts";

/** Runs a transaction that may lose the one-active-promotion race; the loser gets PROMOTION_IN_PROGRESS. */
export async function withPromotionRace<T>(
  ctx: ServiceContext,
  environmentName: string,
  run: (tx: Tx) => Promise<T>,
) {
  try {
    return await transaction(ctx, run);
  } catch (error) {
    if (isUniqueViolation(error)) throw promotionInProgress(environmentName);
    throw error;
  }
}

export async function promote(
  ctx: RequestContext,
  input: { deploymentId: string; environment: string; scaleDownPreviousDeployment: boolean },
): Promise<Promotion> {
  return withPromotionRace(ctx, input.environment, async (tx) => {
    const deployment = await tx.deployment.findFirst({ where: { id: input.deploymentId, deletedAt: null } });
    const missing = () => notFound("deployment", input.deploymentId, "deploymentId");
    if (!deployment) throw missing();
    requireVisible(ctx, deployment.modelId, missing);
    requireEnvironment(ctx, input.environment, "promote into");
    const environment = await findEnvironment(tx, deployment.modelId, input.environment);
    return insertPromotion(tx, deployment, environment, {
      scaleDownPrevious: input.scaleDownPreviousDeployment,
      pushed: false,
      now: new Date(ctx.clock.now()),
    });
  });
}

/** The active promotion of an environment, locked; NO_PROMOTION_IN_PROGRESS when there is none. */
async function activePromotionOf(
  tx: Tx,
  ctx: RequestContext,
  environmentId: string,
  what: string,
): Promise<Promotion> {
  const environment = await tx.environment.findFirst({ where: { id: environmentId, deletedAt: null } });
  const missing = () => notFound("environment", environmentId, "environmentId");
  if (!environment) throw missing();
  requireVisible(ctx, environment.modelId, missing);
  requireEnvironment(ctx, environment.name, what);
  const active = await tx.promotion.findUnique({ where: { activeEnvironmentId: environmentId } });
  const locked = active ? await lockPromotion(tx, active.id) : null;
  if (!locked || !isActive(locked.status as PromotionStatus)) {
    throw new UserError(
      "NO_PROMOTION_IN_PROGRESS",
      `no promotion is in progress in '${environment.name}'`,
      "environmentId",
    );
  }
  return locked;
}

function activateBegun(promotion: Promotion): boolean {
  return stepOf(parseSteps(promotion.steps), "ACTIVATE").status !== "PENDING";
}

export async function cancelPromotion(
  ctx: RequestContext,
  environmentId: string,
  graceful: boolean,
): Promise<Promotion> {
  return transaction(ctx, async (tx) => {
    const promotion = await activePromotionOf(tx, ctx, environmentId, "cancel the promotion into");
    if (activateBegun(promotion)) {
      throw new UserError(
        "INVALID_STATE",
        "ACTIVATE has begun; the promotion can no longer be cancelled",
        "environmentId",
      );
    }
    const ramping =
      promotion.status === "RAMPING_UP" ||
      (promotion.status === "PAUSED" && promotion.pausedFrom === "RAMPING_UP");
    if (graceful && ramping && promotion.percentTraffic > 0) {
      // The controller steps the traffic back down over the ramp time spent so far, then ends it
      // CANCELED: each of the steps takes that time over the stage reached, fixed now.
      const now = ctx.clock.now();
      const stage = promotion.canaryStage ?? 0;
      const spent =
        promotion.stageElapsedMs + (promotion.stageStartedAt ? now - promotion.stageStartedAt.getTime() : 0);
      const durationS = parsePromotionSettings(promotion.settings).rampUpDurationSeconds;
      return recordPromotion(
        tx,
        promotion,
        {
          status: "RAMPING_DOWN",
          pausedFrom: null,
          stageStartedAt: new Date(now),
          stageElapsedMs: 0,
          rampDownStepMs: Math.round(rampDownStepMs(stage, durationS, Math.max(0, spent))),
        },
        "PROMOTION_STEP_CHANGED",
        "ramping down before cancelling",
      );
    }
    return endPromotion(tx, promotion, "CANCELED", "canceled by request", new Date(ctx.clock.now()));
  });
}

export async function cancelCanary(ctx: RequestContext, environmentId: string): Promise<Promotion> {
  return transaction(ctx, async (tx) => {
    const promotion = await activePromotionOf(tx, ctx, environmentId, "cancel the canary of");
    if (promotion.canaryStages === null) {
      throw new UserError(
        "INVALID_STATE",
        "this promotion does not ramp traffic (no canary to cancel)",
        "environmentId",
      );
    }
    if (activateBegun(promotion)) {
      throw new UserError(
        "INVALID_STATE",
        "ACTIVATE has begun; the promotion can no longer be cancelled",
        "environmentId",
      );
    }
    return endPromotion(tx, promotion, "CANCELED", "canary canceled by request", new Date(ctx.clock.now()));
  });
}

export async function pausePromotion(ctx: RequestContext, environmentId: string): Promise<Promotion> {
  return transaction(ctx, async (tx) => {
    const promotion = await activePromotionOf(tx, ctx, environmentId, "pause the promotion into");
    if (promotion.status !== "RELEASING" && promotion.status !== "RAMPING_UP") {
      throw new UserError(
        "INVALID_STATE",
        `a ${promotion.status} promotion cannot be paused`,
        "environmentId",
      );
    }
    const now = ctx.clock.now();
    const elapsed = promotion.stageStartedAt
      ? promotion.stageElapsedMs + (now - promotion.stageStartedAt.getTime())
      : promotion.stageElapsedMs;
    return recordPromotion(
      tx,
      promotion,
      {
        status: "PAUSED",
        pausedFrom: promotion.status,
        pausedAt: new Date(now),
        stageElapsedMs: elapsed,
        stageStartedAt: null,
      },
      "PROMOTION_STEP_CHANGED",
      "paused",
    );
  });
}

/** A pause ends: the progress deadline's clock gets back the time START_DEPLOYMENT spent paused. */
function unpaused(promotion: Promotion, now: number): PromotionChange {
  if (promotion.status !== "PAUSED") return {};
  const paused = pausedDuringStart(parseSteps(promotion.steps), promotion.pausedAt, now);
  return { pausedAt: null, startPausedMs: promotion.startPausedMs + paused };
}

export async function resumePromotion(ctx: RequestContext, environmentId: string): Promise<Promotion> {
  return transaction(ctx, async (tx) => {
    const promotion = await activePromotionOf(tx, ctx, environmentId, "resume the promotion into");
    if (promotion.status !== "PAUSED") {
      throw new UserError("INVALID_STATE", `a ${promotion.status} promotion is not paused`, "environmentId");
    }
    const back = promotion.pausedFrom ?? "RELEASING";
    return recordPromotion(
      tx,
      promotion,
      {
        status: back,
        pausedFrom: null,
        ...unpaused(promotion, ctx.clock.now()),
        // The stage goes on with the time it had left.
        stageStartedAt: back === "RAMPING_UP" ? new Date(ctx.clock.now()) : null,
      },
      "PROMOTION_STEP_CHANGED",
      `resumed (${back})`,
    );
  });
}

export async function forceRollForward(ctx: RequestContext, environmentId: string): Promise<Promotion> {
  return transaction(ctx, async (tx) => {
    const promotion = await activePromotionOf(tx, ctx, environmentId, "roll forward the promotion into");
    if (promotion.status === "RAMPING_DOWN") {
      throw new UserError(
        "INVALID_STATE",
        "a promotion ramping down cannot be rolled forward",
        "environmentId",
      );
    }
    const back = promotion.status === "PAUSED" ? (promotion.pausedFrom ?? "RELEASING") : promotion.status;
    return recordPromotion(
      tx,
      promotion,
      {
        status: back,
        pausedFrom: null,
        ...unpaused(promotion, ctx.clock.now()),
        rollForward: true,
        stageStartedAt: back === "RAMPING_UP" ? new Date(ctx.clock.now()) : promotion.stageStartedAt,
      },
      "PROMOTION_STEP_CHANGED",
      "rolling forward: all traffic to the new deployment once it is ready",
    );
  });
}

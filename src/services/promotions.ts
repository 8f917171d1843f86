import type { Tx } from "../db/client.ts";
import { parseAutoscaling } from "../domain/autoscaling.ts";
import { rampDownStepMs } from "../domain/canary.ts";
import { newId } from "../domain/ids.ts";
import {
  endSteps,
  initialSteps,
  isActive,
  NOT_PROMOTABLE,
  type PromotionStatus,
  parseSteps,
  pausedDuringStart,
  type Step,
  stepOf,
  withStep,
} from "../domain/promotion.ts";
import { parsePromotionSettings } from "../domain/promotion-settings.ts";
import { RUNNING_STATUSES } from "../domain/status.ts";
import { appendEvent } from "../events/log.ts";
import { type Deployment, type Environment, Prisma, type Promotion } from "../generated/prisma/client.ts";
import type { ModelEventType } from "../generated/prisma/enums.ts";
import { requireEnvironment, requireVisible } from "./authorize.ts";
import { type RequestContext, type ServiceContext, transaction } from "./context.ts";
import { setStatus } from "./deployments.ts";
import { isUniqueViolation, notFound, UserError } from "./errors.ts";

export type PromotionChange = Partial<
  Pick<
    Promotion,
    | "status"
    | "deploymentId"
    | "createdDeployment"
    | "percentTraffic"
    | "canaryStage"
    | "canaryStages"
    | "stageStartedAt"
    | "stageElapsedMs"
    | "pausedFrom"
    | "rollForward"
    | "rampDownStepMs"
    | "pausedAt"
    | "startPausedMs"
    | "errorMessage"
    | "finishedAt"
    | "activeEnvironmentId"
  >
> & { steps?: Step[] };

/** The promotion as a JSON snapshot, kept on its events so subscribers can replay every state. */
function snapshotOf(promotion: Promotion): Prisma.InputJsonValue {
  return JSON.parse(JSON.stringify(promotion)) as Prisma.InputJsonValue;
}

/** Writes a change to a promotion and its event, in the caller's transaction. */
export async function recordPromotion(
  tx: Tx,
  promotion: Promotion,
  change: PromotionChange,
  type: ModelEventType,
  message: string,
): Promise<Promotion> {
  const { steps, ...rest } = change;
  const updated = await tx.promotion.update({
    where: { id: promotion.id },
    data: { ...rest, ...(steps ? { steps: steps as unknown as Prisma.InputJsonValue } : {}) },
  });
  await appendEvent(tx, {
    modelId: promotion.modelId,
    type,
    promotionId: promotion.id,
    environmentId: promotion.environmentId,
    deploymentId: updated.deploymentId ?? promotion.sourceDeploymentId,
    message,
    snapshot: snapshotOf(updated),
  });
  return updated;
}

/** Locks a promotion row for the rest of the transaction. */
export async function lockPromotion(tx: Tx, id: string): Promise<Promotion | null> {
  const rows = await tx.$queryRaw<{ id: string }[]>`SELECT id FROM "Promotion" WHERE id = ${id} FOR UPDATE`;
  return rows.length ? tx.promotion.findUnique({ where: { id } }) : null;
}

/** Whether a deployment is the current or candidate deployment of an environment other than `environmentId`. */
export async function servesElsewhere(tx: Tx, deploymentId: string, environmentId: string): Promise<boolean> {
  const current = await tx.environment.count({
    where: { currentDeploymentId: deploymentId, deletedAt: null, id: { not: environmentId } },
  });
  if (current > 0) return true;
  const candidate = await tx.promotion.count({
    where: { deploymentId, activeEnvironmentId: { not: null }, environmentId: { not: environmentId } },
  });
  return candidate > 0;
}

/**
 * Creates a promotion of `deployment` into `environment` (rules checked here,
 * work done by the promotion controller). The unique index on
 * activeEnvironmentId makes a second active promotion fail even when two
 * processes race past the check.
 */
export async function insertPromotion(
  tx: Tx,
  deployment: Deployment,
  environment: Environment,
  opts: { scaleDownPrevious: boolean; pushed: boolean },
): Promise<Promotion> {
  if (NOT_PROMOTABLE.has(deployment.status)) {
    throw new UserError(
      "DEPLOYMENT_NOT_ACTIVE",
      `deployment '${deployment.name}' is ${deployment.status}; activate it first`,
      "deploymentId",
    );
  }
  if (environment.currentDeploymentId === deployment.id) {
    throw new UserError(
      "INVALID_STATE",
      `deployment '${deployment.name}' already serves environment '${environment.name}'`,
      "deploymentId",
    );
  }
  const running = await tx.promotion.findUnique({
    where: { activeEnvironmentId: environment.id },
    select: { id: true },
  });
  if (running) throw inProgress(environment.name);
  const settings = parsePromotionSettings(environment.promotionSettings);
  const previous = environment.currentDeploymentId
    ? await tx.deployment.findFirst({ where: { id: environment.currentDeploymentId, deletedAt: null } })
    : null;
  const ramps = settings.rampUpWhilePromoting && previous !== null;
  let steps = initialSteps();
  const now = new Date();
  if (opts.pushed)
    steps = withStep(steps, "CREATE_DEPLOYMENT", "SKIPPED", now, "pushed for this environment");
  const promotion = await tx.promotion.create({
    data: {
      id: newId("Promotion"),
      modelId: deployment.modelId,
      environmentId: environment.id,
      activeEnvironmentId: environment.id,
      sourceDeploymentId: deployment.id,
      deploymentId: opts.pushed ? deployment.id : null,
      createdDeployment: opts.pushed,
      previousDeploymentId: previous?.id ?? null,
      status: "RELEASING",
      steps: steps as unknown as Prisma.InputJsonValue,
      settings: settings as unknown as Prisma.InputJsonValue,
      scaleDownPrevious: opts.scaleDownPrevious,
      canaryStage: ramps ? 0 : null,
      canaryStages: ramps ? 10 : null,
    },
  });
  await appendEvent(tx, {
    modelId: deployment.modelId,
    type: "PROMOTION_STARTED",
    promotionId: promotion.id,
    environmentId: environment.id,
    deploymentId: deployment.id,
    message: `promoting '${deployment.name}' to '${environment.name}'${previous ? ` (replacing '${previous.name}')` : ""}`,
    snapshot: snapshotOf(promotion),
  });
  return promotion;
}

function inProgress(environmentName: string): UserError {
  return new UserError(
    "PROMOTION_IN_PROGRESS",
    `a promotion into '${environmentName}' is in progress; wait for it or cancel it`,
    "environment",
  );
}

/** Runs a transaction that may lose the one-active-promotion race; the loser gets PROMOTION_IN_PROGRESS. */
export async function withPromotionRace<T>(
  ctx: ServiceContext,
  environmentName: string,
  run: (tx: Tx) => Promise<T>,
) {
  try {
    return await transaction(ctx, run);
  } catch (error) {
    if (isUniqueViolation(error)) throw inProgress(environmentName);
    throw error;
  }
}

export async function findEnvironment(tx: Tx, modelId: string, name: string): Promise<Environment> {
  const rows = await tx.$queryRaw<{ id: string }[]>`
    SELECT id FROM "Environment" WHERE "modelId" = ${modelId} AND "liveName" = ${name} FOR UPDATE`;
  const row = rows[0];
  if (!row) throw new UserError("NOT_FOUND", `no environment named '${name}'`, "environment");
  return tx.environment.findUniqueOrThrow({ where: { id: row.id } });
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
    });
  });
}

/**
 * Ends a promotion without ACTIVATE: the environment keeps (or gets back) its
 * previous deployment, the promoted deployment goes back to its own settings,
 * and one the promotion created stays, scaled to zero.
 */
export async function endPromotion(
  tx: Tx,
  promotion: Promotion,
  outcome: "FAILED" | "CANCELED",
  message: string,
): Promise<Promotion> {
  const now = new Date();
  const steps = endSteps(
    parseSteps(promotion.steps),
    outcome === "FAILED" ? "FAILED" : "SKIPPED",
    now,
    message,
  );
  if (promotion.deploymentId) {
    const deployment = await tx.deployment.findUnique({ where: { id: promotion.deploymentId } });
    if (deployment && !deployment.deletedAt) {
      await tx.deployment.update({
        where: { id: deployment.id },
        data: { promotionAutoscaling: Prisma.DbNull },
      });
      if (promotion.createdDeployment && RUNNING_STATUSES.has(deployment.status)) {
        await setStatus(tx, deployment, "SCALED_TO_ZERO", `promotion ${outcome.toLowerCase()}`);
      }
    }
  }
  return recordPromotion(
    tx,
    promotion,
    {
      status: outcome,
      steps,
      errorMessage: outcome === "FAILED" ? message : promotion.errorMessage,
      percentTraffic: 0,
      finishedAt: now,
      activeEnvironmentId: null,
      pausedFrom: null,
    },
    "PROMOTION_FINISHED",
    `promotion ${outcome === "FAILED" ? "failed" : "canceled"}: ${message}`,
  );
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
      const now = Date.now();
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
    return endPromotion(tx, promotion, "CANCELED", "canceled by request");
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
    return endPromotion(tx, promotion, "CANCELED", "canary canceled by request");
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
    const now = Date.now();
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
        ...unpaused(promotion, Date.now()),
        // The stage goes on with the time it had left.
        stageStartedAt: back === "RAMPING_UP" ? new Date() : null,
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
        ...unpaused(promotion, Date.now()),
        rollForward: true,
        stageStartedAt: back === "RAMPING_UP" ? new Date() : promotion.stageStartedAt,
      },
      "PROMOTION_STEP_CHANGED",
      "rolling forward: all traffic to the new deployment once it is ready",
    );
  });
}

/** The autoscaling settings a promoted deployment runs with during the promotion (API.md, Autoscaling on promotion). */
export async function promotionAutoscalingFor(
  tx: Tx,
  promotion: Promotion,
  created: boolean,
): Promise<Prisma.InputJsonValue | null> {
  if (promotion.previousDeploymentId) {
    const previous = await tx.deployment.findUnique({ where: { id: promotion.previousDeploymentId } });
    if (previous) return { ...parseAutoscaling(previous.autoscaling) };
  }
  if (created) {
    const environment = await tx.environment.findUniqueOrThrow({ where: { id: promotion.environmentId } });
    return { ...parseAutoscaling(environment.autoscaling) };
  }
  // A reused deployment without a previous one keeps its own.
  return null;
}

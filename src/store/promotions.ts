/**
 * The Promotion table: every write of a promotion goes through
 * recordPromotion (the row and its event, with the snapshot subscribers
 * replay), and the promotion's beginning and early end are written here once
 * for the use cases and the promotion controller alike.
 */
import type { Tx } from "../db/client.ts";
import { parseAutoscaling } from "../domain/autoscaling.ts";
import { UserError } from "../domain/errors.ts";
import { newId } from "../domain/ids.ts";
import {
  endSteps,
  initialSteps,
  NOT_PROMOTABLE,
  parseSteps,
  type Step,
  withStep,
} from "../domain/promotion.ts";
import { parsePromotionSettings } from "../domain/promotion-settings.ts";
import { RUNNING_STATUSES } from "../domain/status.ts";
import { appendEvent } from "../events/log.ts";
import { type Deployment, type Environment, Prisma, type Promotion } from "../generated/prisma/client.ts";
import type { ModelEventType } from "../generated/prisma/enums.ts";
import { setStatus } from "./deployments.ts";

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
  opts: { scaleDownPrevious: boolean; pushed: boolean; now: Date },
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
  if (running) throw promotionInProgress(environment.name);
  const settings = parsePromotionSettings(environment.promotionSettings);
  const previous = environment.currentDeploymentId
    ? await tx.deployment.findFirst({ where: { id: environment.currentDeploymentId, deletedAt: null } })
    : null;
  const ramps = settings.rampUpWhilePromoting && previous !== null;
  let steps = initialSteps();
  const { now } = opts;
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

/** PROMOTION_IN_PROGRESS: another promotion into the environment is active. */
export function promotionInProgress(environmentName: string): UserError {
  return new UserError(
    "PROMOTION_IN_PROGRESS",
    `a promotion into '${environmentName}' is in progress; wait for it or cancel it`,
    "environment",
  );
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
  now: Date,
): Promise<Promotion> {
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

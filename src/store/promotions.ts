/**
 * The Promotion table: it is created by insertPromotion, and every later
 * write goes through applyPlan (the row and its events, with the snapshot
 * subscribers replay); the facts the promotion plan (domain/promotion-plan.ts)
 * reads are read here (observePromotion), and the effects it asks for inside
 * the row's transaction are carried out here, for the use cases and the
 * promotion controller alike.
 */
import type { Tx } from "../db/client.ts";
import { parseAutoscaling } from "../domain/autoscaling.ts";
import { UserError } from "../domain/errors.ts";
import { newId } from "../domain/ids.ts";
import {
  initialSteps,
  NOT_PROMOTABLE,
  type PromotionStatus,
  parseSteps,
  stepOf,
  withStep,
} from "../domain/promotion.ts";
import {
  type Effect,
  endPlan,
  type Observations,
  type Plan,
  type PlanEvent,
  type PromotionChange,
  type PromotionState,
} from "../domain/promotion-plan.ts";
import { parsePromotionSettings } from "../domain/promotion-settings.ts";
import { storedResources } from "../domain/resources.ts";
import { appendEvent } from "../events/log.ts";
import { type Deployment, type Environment, Prisma, type Promotion } from "../generated/prisma/client.ts";
import type { ModelEventType } from "../generated/prisma/enums.ts";
import { applyFact, insertDeployment, nextDeploymentName, writeAutoscaling } from "./deployments.ts";

/** The promotion as a JSON snapshot, kept on its events so subscribers can replay every state. */
function snapshotOf(promotion: Promotion): Prisma.InputJsonValue {
  return JSON.parse(JSON.stringify(promotion)) as Prisma.InputJsonValue;
}

/** Writes a change to a promotion and appends its events (none: a checkpoint nobody is told about). */
async function writePromotion(
  tx: Tx,
  promotion: Promotion,
  change: PromotionChange,
  events: readonly { type: ModelEventType; message: string }[],
): Promise<Promotion> {
  const { steps, ...rest } = change;
  const updated = await tx.promotion.update({
    where: { id: promotion.id },
    data: { ...rest, ...(steps ? { steps: steps as unknown as Prisma.InputJsonValue } : {}) },
  });
  for (const event of events) {
    await appendEvent(tx, {
      modelId: promotion.modelId,
      type: event.type,
      promotionId: promotion.id,
      environmentId: promotion.environmentId,
      deploymentId: updated.deploymentId ?? promotion.sourceDeploymentId,
      message: event.message,
      snapshot: snapshotOf(updated),
    });
  }
  return updated;
}

/** The row as the promotion plan reads it. */
export function stateOf(row: Promotion): PromotionState {
  return {
    ...row,
    status: row.status as PromotionStatus,
    pausedFrom: row.pausedFrom as PromotionStatus | null,
    steps: parseSteps(row.steps),
    settings: parsePromotionSettings(row.settings),
  };
}

/** The facts the plan needs at the promotion's current step. */
export async function observePromotion(tx: Tx, row: Promotion): Promise<Observations> {
  const environment = await tx.environment.findUniqueOrThrow({ where: { id: row.environmentId } });
  const steps = parseSteps(row.steps);
  const obs: Observations = { environmentName: environment.name };
  if (stepOf(steps, "CREATE_DEPLOYMENT").status === "PENDING") {
    const source = await tx.deployment.findUniqueOrThrow({ where: { id: row.sourceDeploymentId } });
    obs.source = {
      id: source.id,
      name: source.name,
      status: source.status,
      deleted: source.deletedAt !== null,
      kind: source.kind,
      servesElsewhere: await servesElsewhere(tx, source.id, environment.id),
    };
    obs.copyName = await nextDeploymentName(tx, source.modelId);
    return obs;
  }
  const deployment = row.deploymentId
    ? await tx.deployment.findUnique({ where: { id: row.deploymentId } })
    : null;
  // Ready replicas matter only when the ramp is about to start.
  const readyReplicas =
    deployment && row.canaryStage === 0
      ? await tx.replica.count({ where: { deploymentId: deployment.id, state: "READY" } })
      : 0;
  obs.deployment = deployment && {
    id: deployment.id,
    name: deployment.name,
    status: deployment.status,
    deleted: deployment.deletedAt !== null,
    readyReplicas,
  };
  const needsPrevious = row.canaryStage === 0 || stepOf(steps, "ACTIVATE").status === "RUNNING";
  const previous =
    needsPrevious && row.previousDeploymentId
      ? await tx.deployment.findUnique({ where: { id: row.previousDeploymentId } })
      : null;
  obs.previous = previous && {
    id: previous.id,
    name: previous.name,
    status: previous.status,
    deleted: previous.deletedAt !== null,
    minReplica: parseAutoscaling(previous.autoscaling).minReplica,
  };
  return obs;
}

/**
 * Persists a plan in the caller's transaction: its effects on other rows
 * first (a copy and the step that made it commit together), then the row and
 * its events. Effects for after the commit (wake, beginStage) are the caller's.
 */
export async function applyPlan(tx: Tx, promotion: Promotion, plan: Plan): Promise<Promotion> {
  let changes = plan.changes;
  for (const effect of plan.effects) {
    const copyId = await applyEffect(tx, promotion, effect);
    if (copyId) changes = { ...changes, deploymentId: copyId };
  }
  if (!changes) return promotion;
  return writePromotion(tx, promotion, changes, plan.events satisfies readonly PlanEvent[]);
}

/** One effect inside the transaction; returns the copy's ID for createCopy. */
async function applyEffect(tx: Tx, promotion: Promotion, effect: Effect): Promise<string | null> {
  switch (effect.kind) {
    case "createCopy": {
      const source = await tx.deployment.findUniqueOrThrow({ where: { id: promotion.sourceDeploymentId } });
      const environment = await tx.environment.findUniqueOrThrow({ where: { id: promotion.environmentId } });
      const copy = await insertDeployment(tx, {
        modelId: source.modelId,
        name: effect.name,
        kind: "PUBLISHED",
        artifactHash: source.artifactHash,
        environmentName: environment.name,
        promotionId: promotion.id,
        // The copy runs with what its source runs with (API.md section 9), whatever the defaults are now.
        resources: storedResources(source.resources),
        message: effect.message,
      });
      return copy.id;
    }
    case "runWithPromotionSettings": {
      const override = await promotionAutoscalingFor(tx, promotion, promotion.createdDeployment);
      await tx.deployment.update({
        where: { id: effect.deploymentId },
        data: { promotionAutoscaling: override ?? Prisma.DbNull },
      });
      return null;
    }
    case "activate":
      await activateDeployment(tx, promotion, effect.deploymentId, effect.message);
      return null;
    case "demote": {
      const previous = await tx.deployment.findUniqueOrThrow({ where: { id: effect.deploymentId } });
      await applyFact(tx, previous, { kind: "demoted", to: effect.to });
      return null;
    }
    case "release":
      await releaseDeployment(tx, promotion, effect.outcome);
      return null;
    case "wake":
    case "beginStage":
      return null;
  }
}

/**
 * ACTIVATE: the environment switches to the deployment in one transaction
 * (requests routed before it finish where they are), and the deployment's
 * promotion settings become its own.
 */
async function activateDeployment(tx: Tx, promotion: Promotion, deploymentId: string, message: string) {
  // Environment before deployments, the order every writer of both takes (no deadlock).
  await tx.$queryRaw`SELECT id FROM "Environment" WHERE id = ${promotion.environmentId} FOR UPDATE`;
  const deployment = await tx.deployment.findUniqueOrThrow({ where: { id: deploymentId } });
  const own = parseAutoscaling(deployment.promotionAutoscaling ?? deployment.autoscaling);
  await tx.deployment.update({ where: { id: deployment.id }, data: { promotionAutoscaling: Prisma.DbNull } });
  await tx.environment.update({
    where: { id: promotion.environmentId },
    data: { currentDeploymentId: deployment.id },
  });
  await writeAutoscaling(tx, deployment.id, own);
  await appendEvent(tx, {
    modelId: promotion.modelId,
    type: "ENVIRONMENT_UPDATED",
    environmentId: promotion.environmentId,
    deploymentId: deployment.id,
    promotionId: promotion.id,
    message,
  });
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
  opts: { scaleDownPrevious: boolean; pushed: boolean; now?: number },
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
  const now = new Date(opts.now ?? Date.now());
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

/** Ends a promotion without ACTIVATE (domain/promotion-plan.ts endPlan), outside the controller's plan. */
export function endPromotion(
  tx: Tx,
  promotion: Promotion,
  outcome: "FAILED" | "CANCELED",
  message: string,
  now: number = Date.now(),
): Promise<Promotion> {
  return applyPlan(tx, promotion, endPlan(stateOf(promotion), outcome, message, now));
}

/**
 * A promotion ends without ACTIVATE: the promoted deployment goes back to its
 * own settings, and one the promotion created stays, scaled to zero.
 */
async function releaseDeployment(tx: Tx, promotion: Promotion, outcome: "FAILED" | "CANCELED") {
  if (!promotion.deploymentId) return;
  const deployment = await tx.deployment.findUnique({ where: { id: promotion.deploymentId } });
  if (!deployment || deployment.deletedAt) return;
  await tx.deployment.update({ where: { id: deployment.id }, data: { promotionAutoscaling: Prisma.DbNull } });
  if (promotion.createdDeployment) await applyFact(tx, deployment, { kind: "released", outcome });
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

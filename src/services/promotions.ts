import type { Tx } from "../db/client.ts";
import { notFound, UserError } from "../domain/errors.ts";
import { isActive, type PromotionStatus } from "../domain/promotion.ts";
import { type Intent, planIntent } from "../domain/promotion-plan.ts";
import type { Promotion } from "../generated/prisma/client.ts";
import { findEnvironment } from "../store/environments.ts";
import { isUniqueViolation } from "../store/errors.ts";
import {
  applyPlan,
  insertPromotion,
  lockPromotion,
  promotionInProgress,
  stateOf,
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
      now: ctx.clock.now(),
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

/**
 * A control: the client's intent is folded into the promotion by the same
 * plan the controller runs (domain/promotion-plan.ts planIntent), in the
 * caller's transaction, so the answer is the promotion as it now is.
 */
function control(
  ctx: RequestContext,
  environmentId: string,
  what: string,
  intent: Intent,
): Promise<Promotion> {
  return transaction(ctx, async (tx) => {
    const promotion = await activePromotionOf(tx, ctx, environmentId, what);
    const plan = planIntent(stateOf(promotion), intent, ctx.clock.now());
    if ("refused" in plan) throw new UserError("INVALID_STATE", plan.refused, "environmentId");
    return applyPlan(tx, promotion, plan);
  });
}

/** Ends the promotion (a graceful cancel of a ramping one ramps down first). */
export function cancelPromotion(ctx: RequestContext, environmentId: string, graceful: boolean) {
  return control(ctx, environmentId, "cancel the promotion into", { kind: "cancel", graceful });
}

export function cancelCanary(ctx: RequestContext, environmentId: string) {
  return control(ctx, environmentId, "cancel the canary of", { kind: "cancelCanary" });
}

export function pausePromotion(ctx: RequestContext, environmentId: string) {
  return control(ctx, environmentId, "pause the promotion into", { kind: "pause" });
}

export function resumePromotion(ctx: RequestContext, environmentId: string) {
  return control(ctx, environmentId, "resume the promotion into", { kind: "resume" });
}

export function forceRollForward(ctx: RequestContext, environmentId: string) {
  return control(ctx, environmentId, "roll forward the promotion into", { kind: "rollForward" });
}

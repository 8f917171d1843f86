import type { Tx } from "../db/client.ts";
import {
  type AutoscalingPatch,
  type AutoscalingSettings,
  DEFAULT_AUTOSCALING,
  mergeAutoscaling,
  parseAutoscaling,
} from "../domain/autoscaling.ts";
import { notFound, UserError } from "../domain/errors.ts";
import { newId } from "../domain/ids.ts";
import { nameProblem, PRODUCTION_ENVIRONMENT_NAME } from "../domain/names.ts";
import {
  DEFAULT_PROMOTION_SETTINGS,
  mergePromotionSettings,
  type PromotionSettings,
  type PromotionSettingsPatch,
  parsePromotionSettings,
} from "../domain/promotion-settings.ts";
import { appendEvent } from "../events/log.ts";
import type { Deployment, Environment } from "../generated/prisma/client.ts";
import { writeAutoscaling } from "../store/deployments.ts";
import { lockEnvironment } from "../store/environments.ts";
import { isUniqueViolation } from "../store/errors.ts";
import { requireEnvironment, requireUnrestricted, requireVisible } from "./authorize.ts";
import { type RequestContext, transaction } from "./context.ts";

export interface CreateEnvironmentInput {
  modelId: string;
  name: string;
  promotionSettings?: PromotionSettingsPatch | null;
  autoscalingSettings?: AutoscalingPatch | null;
}

export interface UpdateEnvironmentInput {
  environmentId: string;
  /** Absent or null: unchanged. Inside, only the fields present change. */
  promotionSettings?: PromotionSettingsPatch | null;
  autoscalingSettings?: AutoscalingPatch | null;
}

function checkEnvironmentName(name: string): void {
  const problem = nameProblem("environment", name);
  if (problem) throw new UserError("INVALID_INPUT", problem, "name");
  if (name === PRODUCTION_ENVIRONMENT_NAME) {
    throw new UserError(
      "RESERVED_NAME",
      "'production' is reserved: every model has its production environment already",
      "name",
    );
  }
}

function mergePromotion(current: PromotionSettings, patch: PromotionSettingsPatch): PromotionSettings {
  const merged = mergePromotionSettings(current, patch);
  if ("problem" in merged) throw new UserError("INVALID_INPUT", merged.problem.message, merged.problem.field);
  return merged.settings;
}

function mergeScaling(
  current: AutoscalingSettings,
  patch: AutoscalingPatch,
  development = false,
): AutoscalingSettings {
  const merged = mergeAutoscaling(current, patch, { development });
  if ("problem" in merged) throw new UserError("INVALID_INPUT", merged.problem.message, merged.problem.field);
  return merged.settings;
}

export async function createEnvironment(
  ctx: RequestContext,
  input: CreateEnvironmentInput,
): Promise<Environment> {
  requireUnrestricted(ctx, "create environments");
  checkEnvironmentName(input.name);
  // Settings are checked before anything is written: a refusal changes nothing.
  const promotionSettings = mergePromotion({ ...DEFAULT_PROMOTION_SETTINGS }, input.promotionSettings ?? {});
  const autoscaling = mergeScaling({ ...DEFAULT_AUTOSCALING }, input.autoscalingSettings ?? {});
  const taken = () =>
    new UserError("NAME_TAKEN", `an environment named '${input.name}' exists in this model`, "name");
  try {
    return await transaction(ctx, async (tx) => {
      // The model row lock serializes environment changes of one model (appendEvent takes it anyway).
      const [model] = await tx.$queryRaw<{ id: string; name: string }[]>`
        SELECT id, name FROM "Model" WHERE id = ${input.modelId} AND "deletedAt" IS NULL FOR UPDATE`;
      const missing = () => notFound("model", input.modelId, "modelId");
      if (!model) throw missing();
      requireVisible(ctx, model.id, missing);
      const existing = await tx.environment.findFirst({
        where: { modelId: model.id, liveName: input.name },
        select: { id: true },
      });
      if (existing) throw taken();
      const environment = await tx.environment.create({
        data: {
          id: newId("Environment"),
          modelId: model.id,
          name: input.name,
          liveName: input.name,
          isProduction: false,
          autoscaling: { ...autoscaling },
          promotionSettings: { ...promotionSettings },
        },
      });
      await appendEvent(tx, {
        modelId: model.id,
        type: "ENVIRONMENT_CREATED",
        environmentId: environment.id,
        message: `environment '${input.name}' created`,
      });
      return environment;
    });
  } catch (error) {
    // Two processes creating the same name at once: the unique index decides.
    if (isUniqueViolation(error)) throw taken();
    throw error;
  }
}

/** The live deployment serving the environment now, locked; null when there is none. */
async function lockCurrentDeployment(tx: Tx, environment: Environment): Promise<Deployment | null> {
  if (!environment.currentDeploymentId) return null;
  const rows = await tx.$queryRaw<{ id: string }[]>`
    SELECT id FROM "Deployment"
    WHERE id = ${environment.currentDeploymentId} AND "deletedAt" IS NULL FOR UPDATE`;
  if (rows.length === 0) return null;
  return tx.deployment.findUniqueOrThrow({ where: { id: environment.currentDeploymentId } });
}

/**
 * Changes an environment's settings; only the fields sent change. Once a
 * deployment serves the environment, its autoscaling settings are the
 * environment's: both are updated together (API.md section 6, Autoscaling on
 * promotion).
 */
export async function updateEnvironment(
  ctx: RequestContext,
  input: UpdateEnvironmentInput,
): Promise<Environment> {
  return transaction(ctx, async (tx) => {
    const environment = await lockEnvironment(tx, input.environmentId, "environmentId");
    requireVisible(ctx, environment.modelId, () =>
      notFound("environment", input.environmentId, "environmentId"),
    );
    requireEnvironment(ctx, environment.name, "update");
    const current = await lockCurrentDeployment(tx, environment);
    const promotionSettings = input.promotionSettings
      ? mergePromotion(parsePromotionSettings(environment.promotionSettings), input.promotionSettings)
      : null;
    const autoscaling = input.autoscalingSettings
      ? mergeScaling(
          parseAutoscaling(current ? current.autoscaling : environment.autoscaling),
          input.autoscalingSettings,
          current?.kind === "DEVELOPMENT",
        )
      : null;
    // Nothing sent, nothing changed: no write, no event.
    if (!promotionSettings && !autoscaling) return environment;
    const updated = await tx.environment.update({
      where: { id: environment.id },
      data: {
        ...(promotionSettings ? { promotionSettings: { ...promotionSettings } } : {}),
        // With a current deployment, the settings are its own (written with it below).
        ...(autoscaling && !current ? { autoscaling: { ...autoscaling } } : {}),
      },
    });
    const changes: string[] = [];
    if (promotionSettings) changes.push(`promotion settings ${JSON.stringify(promotionSettings)}`);
    if (autoscaling) changes.push(`autoscaling ${JSON.stringify(autoscaling)}`);
    await appendEvent(tx, {
      modelId: environment.modelId,
      type: "ENVIRONMENT_UPDATED",
      environmentId: environment.id,
      message: `environment '${environment.name}' updated: ${changes.join("; ")}`,
    });
    if (autoscaling && current) {
      await writeAutoscaling(tx, current.id, autoscaling);
      await appendEvent(tx, {
        modelId: current.modelId,
        type: "AUTOSCALING_UPDATED",
        deploymentId: current.id,
        environmentId: environment.id,
        message: `autoscaling of '${current.name}' (serving '${environment.name}'): ${JSON.stringify(autoscaling)}`,
      });
    }
    return current ? tx.environment.findUniqueOrThrow({ where: { id: environment.id } }) : updated;
  });
}

/** Soft-deletes an environment: it leaves lists and its path answers 404, its record stays readable. */
export async function deleteEnvironment(ctx: RequestContext, id: string): Promise<Environment> {
  return transaction(ctx, async (tx) => {
    const environment = await lockEnvironment(tx, id);
    requireVisible(ctx, environment.modelId, () => notFound("environment", id));
    requireUnrestricted(ctx, "delete environments");
    if (environment.isProduction) {
      throw new UserError(
        "PRODUCTION_ENVIRONMENT_PROTECTED",
        "the production environment cannot be deleted",
        "id",
      );
    }
    const active = await tx.promotion.findFirst({
      where: { activeEnvironmentId: id },
      select: { id: true, status: true },
    });
    if (active) {
      throw new UserError(
        "PROMOTION_IN_PROGRESS",
        `environment '${environment.name}' has a promotion in progress (${active.id}, ${active.status}); cancel it first`,
        "id",
      );
    }
    const deleted = await tx.environment.update({
      where: { id },
      data: { deletedAt: new Date(), liveName: null },
    });
    await appendEvent(tx, {
      modelId: environment.modelId,
      type: "ENVIRONMENT_DELETED",
      environmentId: id,
      message: `environment '${environment.name}' deleted`,
    });
    return deleted;
  });
}

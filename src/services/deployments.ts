import type { Tx } from "../db/client.ts";
import { type AutoscalingPatch, mergeAutoscaling, parseAutoscaling } from "../domain/autoscaling.ts";
import { notFound, UserError } from "../domain/errors.ts";
import { checkModelName, DEVELOPMENT_DEPLOYMENT_NAME, nameProblem } from "../domain/names.ts";
import { appendEvent } from "../events/log.ts";
import type { Deployment } from "../generated/prisma/client.ts";
import { storeUpload } from "../store/artifacts.ts";
import {
  applyFact,
  insertDeployment,
  lockDeployment,
  markDeleted,
  nextDeploymentName,
  replaceCode,
  writeAutoscaling,
} from "../store/deployments.ts";
import { findEnvironment } from "../store/environments.ts";
import { isUniqueViolation } from "../store/errors.ts";
import { insertModel } from "../store/models.ts";
import { insertPromotion } from "../store/promotions.ts";
import { refuse, requireDeploymentActions, requireEnvironment, requireVisible } from "./authorize.ts";
import { type RequestContext, transaction } from "./context.ts";

export interface PushInput {
  modelName: string;
  source: ReadableStream<Uint8Array>;
  development: boolean;
  deploymentName: string | null;
  /** Publish and start a promotion into this environment at once. */
  environment: string | null;
}

/**
 * Which model a push may go to (API.md section 7): a key limited to models may
 * push only to those, existing or not; one limited to environments may not
 * create models; one limited either way pushes into listed environments only.
 */
async function checkPushAccess(ctx: RequestContext, input: PushInput): Promise<boolean> {
  const { access } = ctx;
  if (input.environment != null) requireEnvironment(ctx, input.environment, "push into");
  if (access.modelIds === null && access.environments === null) return true;
  const model = await ctx.db.prisma.model.findUnique({
    where: { liveName: input.modelName },
    select: { id: true },
  });
  if (access.modelIds !== null && !(model && access.modelIds.includes(model.id))) {
    throw refuse(ctx, `push to model '${input.modelName}'`);
  }
  if (!model) {
    throw refuse(ctx, "create models");
  }
  return false;
}

export async function pushDeployment(ctx: RequestContext, input: PushInput): Promise<Deployment> {
  checkModelName(input.modelName, "modelName");
  const mayCreateModel = await checkPushAccess(ctx, input);
  if (input.deploymentName !== null) {
    const problem = nameProblem("deployment", input.deploymentName);
    if (problem) throw new UserError("INVALID_INPUT", problem, "deploymentName");
    if (!input.development && input.deploymentName === DEVELOPMENT_DEPLOYMENT_NAME) {
      throw new UserError(
        "RESERVED_NAME",
        "'development' is reserved for the development deployment (push with development: true)",
        "deploymentName",
      );
    }
  }
  if (
    input.development &&
    input.deploymentName !== null &&
    input.deploymentName !== DEVELOPMENT_DEPLOYMENT_NAME
  ) {
    throw new UserError(
      "INVALID_INPUT",
      "the development deployment is always named 'development'",
      "deploymentName",
    );
  }
  if (input.environment != null) {
    if (input.development) {
      throw new UserError("INVALID_INPUT", "a development push cannot go to an environment", "environment");
    }
    // Refuse before storing anything; the transaction checks again under the environment's row lock.
    const environment = await ctx.db.prisma.environment.findFirst({
      where: { liveName: input.environment, model: { liveName: input.modelName } },
      select: { id: true },
    });
    if (!environment)
      throw new UserError("NOT_FOUND", `no environment named '${input.environment}'`, "environment");
    const running = await ctx.db.prisma.promotion.findUnique({
      where: { activeEnvironmentId: environment.id },
    });
    if (running) {
      throw new UserError(
        "PROMOTION_IN_PROGRESS",
        `a promotion into '${input.environment}' is in progress`,
        "environment",
      );
    }
  }
  const artifact = await storeUpload(ctx.artifacts, input.source);
  // A concurrent push may create the same model first; the retry then finds it.
  for (let attempt = 0; ; attempt++) {
    try {
      return await transaction(ctx, (tx) => writePush(tx, ctx, input, artifact.hash, mayCreateModel));
    } catch (error) {
      if (isUniqueViolation(error) && String((error as Error).message).includes("activeEnvironmentId")) {
        throw new UserError(
          "PROMOTION_IN_PROGRESS",
          `a promotion into '${input.environment}' is in progress`,
          "environment",
        );
      }
      if (isUniqueViolation(error) && attempt === 0) continue;
      if (isUniqueViolation(error)) {
        throw new UserError(
          "NAME_TAKEN",
          `a deployment named '${input.deploymentName}' exists in model '${input.modelName}'`,
          "deploymentName",
        );
      }
      throw error;
    }
  }
}

async function writePush(
  tx: Tx,
  ctx: RequestContext,
  input: PushInput,
  artifactHash: string,
  mayCreateModel: boolean,
): Promise<Deployment> {
  let model = await tx.model.findUnique({ where: { liveName: input.modelName } });
  if (!model) {
    // Checked before the upload; the model may have been deleted since.
    if (!mayCreateModel) {
      throw refuse(ctx, "create models");
    }
    model = await insertModel(tx, input.modelName);
  }
  if (input.development) {
    const existing = await tx.deployment.findFirst({
      where: { modelId: model.id, kind: "DEVELOPMENT", deletedAt: null },
      select: { id: true },
    });
    if (existing) {
      // Same ID, new code: the replica restarts on the new artifact.
      const locked = await lockDeployment(tx, existing.id);
      await replaceCode(tx, locked.id, artifactHash);
      await applyFact(tx, locked, { kind: "new code pushed" });
      return tx.deployment.findUniqueOrThrow({ where: { id: locked.id } });
    }
  }
  if (input.deploymentName !== null && !input.development) {
    const taken = await tx.deployment.findFirst({
      where: { modelId: model.id, liveName: input.deploymentName },
      select: { id: true },
    });
    if (taken) {
      throw new UserError(
        "NAME_TAKEN",
        `a deployment named '${input.deploymentName}' exists in model '${model.name}'`,
        "deploymentName",
      );
    }
  }
  const environment =
    input.environment === null ? null : await findEnvironment(tx, model.id, input.environment);
  const name = input.development
    ? DEVELOPMENT_DEPLOYMENT_NAME
    : (input.deploymentName ?? (await nextDeploymentName(tx, model.id)));
  const deployment = await insertDeployment(tx, {
    modelId: model.id,
    name,
    kind: input.development ? "DEVELOPMENT" : "PUBLISHED",
    artifactHash,
    environmentName: environment?.name ?? null,
    message: `deployment '${name}' created${environment ? ` for '${environment.name}'` : ""}`,
  });
  if (environment)
    await insertPromotion(tx, deployment, environment, {
      scaleDownPrevious: true,
      pushed: true,
      now: ctx.clock.now(),
    });
  return deployment;
}

export async function activateDeployment(ctx: RequestContext, id: string): Promise<Deployment> {
  return transaction(ctx, async (tx) => {
    const deployment = await lockDeployment(tx, id);
    requireVisible(ctx, deployment.modelId, () => notFound("deployment", id));
    await requireDeploymentActions(tx, ctx, deployment, "activate");
    // Only a halted deployment moves (a failed build starts from the build): the lifecycle table's rule.
    await applyFact(tx, deployment, { kind: "activated" });
    return tx.deployment.findUniqueOrThrow({ where: { id } });
  });
}

export async function deactivateDeployment(ctx: RequestContext, id: string): Promise<Deployment> {
  return transaction(ctx, async (tx) => {
    const deployment = await lockDeployment(tx, id);
    requireVisible(ctx, deployment.modelId, () => notFound("deployment", id));
    await requireDeploymentActions(tx, ctx, deployment, "deactivate");
    await applyFact(tx, deployment, { kind: "deactivated" });
    return tx.deployment.findUniqueOrThrow({ where: { id } });
  });
}

export async function deleteDeployment(ctx: RequestContext, id: string): Promise<Deployment> {
  return transaction(ctx, async (tx) => {
    const deployment = await lockDeployment(tx, id);
    requireVisible(ctx, deployment.modelId, () => notFound("deployment", id));
    await requireDeploymentActions(tx, ctx, deployment, "delete");
    const production = await tx.environment.findFirst({
      where: { currentDeploymentId: id, isProduction: true, deletedAt: null },
      select: { id: true },
    });
    if (production) {
      throw new UserError(
        "DEPLOYMENT_IN_USE",
        `deployment '${deployment.name}' serves production; promote another deployment first`,
        "id",
      );
    }
    const promotion = await tx.promotion.findFirst({
      // The source too: until CREATE_DEPLOYMENT has run, the promotion names no deployment of its own.
      where: {
        activeEnvironmentId: { not: null },
        OR: [{ deploymentId: id }, { previousDeploymentId: id }, { sourceDeploymentId: id }],
      },
      select: { id: true },
    });
    if (promotion) {
      throw new UserError(
        "DEPLOYMENT_IN_USE",
        `deployment '${deployment.name}' is part of an active promotion; let it finish or cancel it first`,
        "id",
      );
    }
    const message = `deployment '${deployment.name}' deleted (was ${deployment.status})`;
    return (await markDeleted(tx, deployment, message, new Date(ctx.clock.now()))) ?? deployment;
  });
}

export async function updateAutoscalingSettings(
  ctx: RequestContext,
  id: string,
  patch: AutoscalingPatch,
): Promise<Deployment> {
  return transaction(ctx, async (tx) => {
    // The environments it serves are locked first (environment before deployment, as
    // updateEnvironment does): after ACTIVATE their settings are this deployment's.
    await tx.$queryRaw`
      SELECT id FROM "Environment"
      WHERE "currentDeploymentId" = ${id} AND "deletedAt" IS NULL ORDER BY id FOR UPDATE`;
    const deployment = await lockDeployment(tx, id);
    requireVisible(ctx, deployment.modelId, () => notFound("deployment", id));
    await requireDeploymentActions(tx, ctx, deployment, "change the autoscaling of");
    const merged = mergeAutoscaling(parseAutoscaling(deployment.autoscaling), patch, {
      development: deployment.kind === "DEVELOPMENT",
    });
    if ("problem" in merged)
      throw new UserError("INVALID_INPUT", merged.problem.message, merged.problem.field);
    const served = await writeAutoscaling(tx, id, merged.settings);
    await appendEvent(tx, {
      modelId: deployment.modelId,
      type: "AUTOSCALING_UPDATED",
      deploymentId: id,
      message: `autoscaling of '${deployment.name}': ${JSON.stringify(merged.settings)}`,
    });
    for (const environment of served) {
      await appendEvent(tx, {
        modelId: deployment.modelId,
        type: "ENVIRONMENT_UPDATED",
        environmentId: environment.id,
        deploymentId: id,
        message: `environment '${environment.name}' updated: autoscaling of its current deployment '${deployment.name}' ${JSON.stringify(merged.settings)}`,
      });
    }
    return tx.deployment.findUniqueOrThrow({ where: { id } });
  });
}

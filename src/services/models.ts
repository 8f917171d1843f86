import { notFound, UserError } from "../domain/errors.ts";
import { checkModelName } from "../domain/names.ts";
import { appendEvent } from "../events/log.ts";
import type { Model } from "../generated/prisma/client.ts";
import { markDeleted } from "../store/deployments.ts";
import { isUniqueViolation } from "../store/errors.ts";
import { insertModel } from "../store/models.ts";
import { endPromotion, lockPromotion } from "../store/promotions.ts";
import { requireUnrestricted, requireVisible } from "./authorize.ts";
import { type RequestContext, transaction } from "./context.ts";

export async function createModel(ctx: RequestContext, name: string): Promise<Model> {
  requireUnrestricted(ctx, "create models");
  checkModelName(name);
  try {
    return await transaction(ctx, (tx) => insertModel(tx, name));
  } catch (error) {
    if (isUniqueViolation(error)) throw new UserError("NAME_TAKEN", `a model named '${name}' exists`, "name");
    throw error;
  }
}

/** Deletes the model with all its deployments and environments (soft: records stay readable by ID). */
export async function deleteModel(ctx: RequestContext, id: string): Promise<Model> {
  return transaction(ctx, async (tx) => {
    const [locked] = await tx.$queryRaw<{ id: string }[]>`
      SELECT id FROM "Model" WHERE id = ${id} AND "deletedAt" IS NULL FOR UPDATE`;
    if (!locked) throw notFound("model", id);
    requireVisible(ctx, id, () => notFound("model", id));
    requireUnrestricted(ctx, "delete models");
    for (const active of await tx.promotion.findMany({
      where: { modelId: id, activeEnvironmentId: { not: null } },
    })) {
      const promotion = await lockPromotion(tx, active.id);
      if (promotion?.activeEnvironmentId)
        await endPromotion(tx, promotion, "CANCELED", "the model was deleted", ctx.clock.now());
    }
    const now = new Date(ctx.clock.now());
    // Environments before deployments, the order every writer of both takes (no deadlock).
    const environments = await tx.environment.findMany({ where: { modelId: id, deletedAt: null } });
    for (const environment of environments) {
      await tx.environment.update({
        where: { id: environment.id },
        data: { deletedAt: now, liveName: null },
      });
      await appendEvent(tx, {
        modelId: id,
        type: "ENVIRONMENT_DELETED",
        environmentId: environment.id,
        message: `environment '${environment.name}' deleted with its model`,
      });
    }
    const deployments = await tx.deployment.findMany({ where: { modelId: id, deletedAt: null } });
    for (const deployment of deployments) {
      await markDeleted(tx, deployment, `deployment '${deployment.name}' deleted with its model`, now);
    }
    const model = await tx.model.update({ where: { id }, data: { deletedAt: now, liveName: null } });
    await appendEvent(tx, { modelId: id, type: "MODEL_DELETED", message: `model '${model.name}' deleted` });
    return model;
  });
}

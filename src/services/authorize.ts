import type { Tx } from "../db/client.ts";
import {
  isUnrestricted,
  mayActInEnvironment,
  mayActOnDeployment,
  refusalMessage,
  seesModel,
} from "../domain/access.ts";
import type { UserError } from "../domain/errors.ts";
import type { RequestContext } from "./context.ts";

/**
 * An operation the caller's key may not do on something it can see. Not a
 * UserError: API.md section 7 makes it a GraphQL error (FORBIDDEN) and the
 * mutation's null, never a member of its result union.
 */
export class Forbidden extends Error {
  constructor(message: string) {
    super(message);
    this.name = "Forbidden";
  }
}

export function refuse(ctx: RequestContext, what: string): Forbidden {
  return new Forbidden(refusalMessage(ctx.access, what));
}

/** A model outside the key's scope does not exist for it: the same NOT_FOUND as a missing one. */
export function requireVisible(ctx: RequestContext, modelId: string, missing: () => UserError): void {
  if (!seesModel(ctx.access, modelId)) throw missing();
}

/** Creating or deleting models and environments needs a key limited to neither. */
export function requireUnrestricted(ctx: RequestContext, what: string): void {
  if (!isUnrestricted(ctx.access)) throw refuse(ctx, what);
}

export function requireEnvironment(ctx: RequestContext, environmentName: string, what: string): void {
  if (!mayActInEnvironment(ctx.access, environmentName)) {
    throw refuse(ctx, `${what} environment '${environmentName}'`);
  }
}

/**
 * Acting on a deployment (activate, deactivate, delete, autoscaling) needs
 * every environment it serves or is being promoted into to be the key's.
 */
export async function requireDeploymentActions(
  tx: Tx,
  ctx: RequestContext,
  deployment: { id: string; name: string },
  what: string,
): Promise<void> {
  if (ctx.access.environments === null) return;
  const serving = await tx.environment.findMany({
    where: { deletedAt: null, currentDeploymentId: deployment.id },
    select: { name: true },
  });
  const promoting = await tx.promotion.findMany({
    where: { activeEnvironmentId: { not: null }, deploymentId: deployment.id },
    select: { environment: { select: { name: true } } },
  });
  const names = [...serving.map((e) => e.name), ...promoting.map((p) => p.environment.name)];
  if (!mayActOnDeployment(ctx.access, names)) {
    const outside = names.filter((name) => !mayActInEnvironment(ctx.access, name));
    throw refuse(ctx, `${what} deployment '${deployment.name}', which is in environment '${outside[0]}'`);
  }
}

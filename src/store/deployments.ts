/**
 * The Deployment table: every read that locks a deployment and every write of
 * its status, autoscaling and creation goes through here, so the rules that
 * ride on those writes (an event per status change, an environment's
 * autoscaling being its current deployment's) are kept in one place.
 */
import type { PrismaClient, Tx } from "../db/client.ts";
import { type AutoscalingSettings, DEFAULT_AUTOSCALING } from "../domain/autoscaling.ts";
import { factReason, type LifecycleFact, nextStatus } from "../domain/deployment-lifecycle.ts";
import { notFound } from "../domain/errors.ts";
import { newId } from "../domain/ids.ts";
import { type Resources, storedResources } from "../domain/resources.ts";
import type { DeploymentStatus } from "../domain/status.ts";
import { announce } from "../events/bus.ts";
import { appendEvent } from "../events/log.ts";
import { type Deployment, Prisma } from "../generated/prisma/client.ts";
import type { DeploymentStatus as StoredStatus } from "../generated/prisma/enums.ts";

/** Compile-time proof that domain/status.ts lists exactly the database's statuses. */
type Same<A, B> = [A] extends [B] ? ([B] extends [A] ? true : false) : false;
const statusesMatch: Same<DeploymentStatus, StoredStatus> = true;
void statusesMatch;

/** Locks a live deployment row for the rest of the transaction, or refuses with NOT_FOUND. */
export async function lockDeployment(tx: Tx, id: string): Promise<Deployment> {
  const rows = await tx.$queryRaw<{ id: string }[]>`
    SELECT id FROM "Deployment" WHERE id = ${id} AND "deletedAt" IS NULL FOR UPDATE`;
  if (rows.length === 0) throw notFound("deployment", id);
  return tx.deployment.findUniqueOrThrow({ where: { id } });
}

/** Moves a deployment to a new status and records the event, in the caller's transaction. */
export async function setStatus(
  tx: Tx,
  deployment: Pick<Deployment, "id" | "modelId" | "status">,
  to: DeploymentStatus,
  reason?: string,
): Promise<void> {
  await tx.deployment.update({ where: { id: deployment.id }, data: { status: to } });
  await appendEvent(tx, {
    modelId: deployment.modelId,
    type: "DEPLOYMENT_STATUS_CHANGED",
    deploymentId: deployment.id,
    deploymentStatus: to,
    message: `${deployment.status} -> ${to}${reason ? `: ${reason}` : ""}`,
  });
}

/**
 * Applies a lifecycle fact to a locked deployment in the caller's transaction:
 * the transition table (domain/deployment-lifecycle.ts) says which status
 * follows; nothing is written when the fact changes nothing. Returns the new
 * status, or null.
 */
export async function applyFact(
  tx: Tx,
  deployment: Pick<Deployment, "id" | "modelId" | "status">,
  fact: LifecycleFact,
): Promise<DeploymentStatus | null> {
  const to = nextStatus(deployment.status, fact);
  if (to === null) return null;
  await setStatus(tx, deployment, to, factReason(fact));
  return to;
}

/**
 * Deletes a deployment (soft: the row stays, its live name is freed) with its
 * DEPLOYMENT_DELETED event, in the caller's transaction; the transition table
 * decides that it may go (a deleted one stays as it is).
 */
export async function markDeleted(
  tx: Tx,
  deployment: Pick<Deployment, "id" | "modelId" | "status">,
  message: string,
  at: Date,
): Promise<Deployment | null> {
  const to = nextStatus(deployment.status, { kind: "deleted" });
  if (to === null) return null;
  const deleted = await tx.deployment.update({
    where: { id: deployment.id },
    data: { status: to, deletedAt: at, liveName: null },
  });
  await appendEvent(tx, {
    modelId: deployment.modelId,
    type: "DEPLOYMENT_DELETED",
    deploymentStatus: to,
    deploymentId: deployment.id,
    message,
  });
  return deleted;
}

/**
 * A fact reported to a controller, applied to the deployment as it is now
 * (locked, live): a stale report changes nothing, since the table answers null
 * for it in the status a newer one moved to. Returns the new status, or null.
 */
export async function transition(
  prisma: PrismaClient,
  id: string,
  fact: LifecycleFact,
): Promise<DeploymentStatus | null> {
  return prisma.$transaction(async (tx) => {
    const rows = await tx.$queryRaw<{ id: string; modelId: string; status: DeploymentStatus }[]>`
      SELECT id, "modelId", status::text AS status FROM "Deployment"
      WHERE id = ${id} AND "deletedAt" IS NULL FOR UPDATE`;
    const row = rows[0];
    return row ? applyFact(tx, row, fact) : null;
  });
}

/** The first free `deployment-N` name of a model. */
export async function nextDeploymentName(tx: Tx, modelId: string): Promise<string> {
  const published = await tx.deployment.count({ where: { modelId, kind: "PUBLISHED" } });
  for (let n = published + 1; ; n++) {
    const name = `deployment-${n}`;
    const taken = await tx.deployment.findFirst({ where: { modelId, liveName: name }, select: { id: true } });
    if (!taken) return name;
  }
}

/**
 * A new deployment (pushed, or copied by a promotion), BUILDING with default autoscaling, and its
 * event. A copy passes its source's resources and keeps them; a push has none until its build.
 */
export async function insertDeployment(
  tx: Tx,
  input: {
    modelId: string;
    name: string;
    kind: "DEVELOPMENT" | "PUBLISHED";
    artifactHash: string;
    environmentName: string | null;
    promotionId?: string;
    resources?: Resources | null;
    message: string;
  },
): Promise<Deployment> {
  const deployment = await tx.deployment.create({
    data: {
      id: newId("Deployment"),
      modelId: input.modelId,
      name: input.name,
      liveName: input.name,
      kind: input.kind,
      status: "BUILDING",
      artifactHash: input.artifactHash,
      environmentName: input.environmentName,
      autoscaling: { ...DEFAULT_AUTOSCALING },
      ...(input.resources ? { resources: { ...input.resources } } : {}),
    },
  });
  await appendEvent(tx, {
    modelId: input.modelId,
    type: "DEPLOYMENT_CREATED",
    deploymentId: deployment.id,
    ...(input.promotionId ? { promotionId: input.promotionId } : {}),
    message: input.message,
  });
  return deployment;
}

/**
 * New code for a deployment (a push to the development deployment): its resources go with the old
 * code, and the build that follows resolves them again from the new hangar.json.
 */
export async function replaceCode(tx: Tx, deploymentId: string, artifactHash: string): Promise<void> {
  await tx.deployment.update({
    where: { id: deploymentId },
    data: { artifactHash, resources: Prisma.DbNull },
  });
}

/**
 * What a deployment runs with, once its build has resolved `built`: the resources its row holds (a
 * promotion's copy has its source's; a deployment keeps its own through rebuilds, whatever the
 * server's defaults have become), else `built`, which the row holds from then on.
 */
export async function keepResources(
  prisma: PrismaClient,
  deploymentId: string,
  built: Resources,
): Promise<Resources> {
  const { count } = await prisma.deployment.updateMany({
    where: { id: deploymentId, resources: { equals: Prisma.DbNull } },
    data: { resources: { ...built } },
  });
  if (count === 1) return built;
  const row = await prisma.deployment.findUnique({
    where: { id: deploymentId },
    select: { resources: true },
  });
  return storedResources(row?.resources) ?? built;
}

/**
 * The rule of API.md section 6 (Autoscaling on promotion): an environment's
 * autoscaling is its current deployment's. Writes the deployment's settings
 * and those of every environment it serves; returns those environments so
 * that the caller can say what changed.
 */
export async function writeAutoscaling(
  tx: Tx,
  deploymentId: string,
  settings: AutoscalingSettings,
): Promise<{ id: string; name: string }[]> {
  await tx.deployment.update({ where: { id: deploymentId }, data: { autoscaling: { ...settings } } });
  const served = await tx.environment.findMany({
    where: { currentDeploymentId: deploymentId, deletedAt: null },
    select: { id: true, name: true },
  });
  for (const environment of served) {
    await tx.environment.update({ where: { id: environment.id }, data: { autoscaling: { ...settings } } });
  }
  return served;
}

/** Announces a replica-count change (not an event, but deploymentStatus subscribers want it). */
export async function announceReplicas(
  tx: Tx,
  deployment: Pick<Deployment, "id" | "modelId">,
): Promise<void> {
  await announce(tx, { kind: "deployment", modelId: deployment.modelId, deploymentId: deployment.id });
}

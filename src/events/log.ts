import type { Tx } from "../db/client.ts";
import { newId } from "../domain/ids.ts";
import { Prisma } from "../generated/prisma/client.ts";
import type { DeploymentStatus, ModelEventType } from "../generated/prisma/enums.ts";
import { queueDeliveries } from "../store/webhooks.ts";
import { announce } from "./bus.ts";

export interface NewEvent {
  modelId: string;
  type: ModelEventType;
  message?: string | null;
  deploymentId?: string | null;
  environmentId?: string | null;
  /** For DEPLOYMENT_STATUS_CHANGED: the status moved to. */
  deploymentStatus?: DeploymentStatus | null;
  promotionId?: string | null;
  /** For PROMOTION_* events: the promotion as this change left it. */
  snapshot?: Prisma.InputJsonValue | null;
}

/** The key each use-case transaction runs for (services/context.ts `transaction`). */
const actors = new WeakMap<Tx, string>();

/** Marks a transaction as a client's: the events it appends name that key. */
export function withActor(tx: Tx, actor: string): Tx {
  actors.set(tx, actor);
  return tx;
}

/**
 * Appends a model event inside the caller's transaction. The per-model
 * sequence is taken by updating the model row, which holds its lock until
 * commit: events of one model therefore commit in sequence order, so a reader
 * that saw seq n never later finds a committed n-1 it skipped.
 */
export async function appendEvent(tx: Tx, event: NewEvent): Promise<number> {
  const model = await tx.model.update({
    where: { id: event.modelId },
    data: { eventSeq: { increment: 1 } },
    select: { eventSeq: true },
  });
  const id = newId("ModelEvent");
  await tx.modelEvent.create({
    data: {
      id,
      modelId: event.modelId,
      seq: model.eventSeq,
      type: event.type,
      message: event.message ?? null,
      deploymentId: event.deploymentId ?? null,
      environmentId: event.environmentId ?? null,
      deploymentStatus: event.deploymentStatus ?? null,
      promotionId: event.promotionId ?? null,
      snapshot: event.snapshot ?? Prisma.DbNull,
      actor: actors.get(tx) ?? null,
    },
  });
  // In this transaction: a delivery exists exactly when its event committed (store/webhooks.ts).
  await queueDeliveries(tx, { id, modelId: event.modelId, seq: model.eventSeq, type: event.type });
  await announce(tx, {
    kind: "event",
    modelId: event.modelId,
    seq: model.eventSeq,
    deploymentId: event.deploymentId ?? null,
    environmentId: event.environmentId ?? null,
    promotionId: event.promotionId ?? null,
    type: event.type,
    deploymentStatus: event.deploymentStatus ?? null,
  });
  return model.eventSeq;
}

/** Event cursors are opaque to clients; they carry the per-model sequence. */
export function encodeEventCursor(seq: number): string {
  return Buffer.from(`evt:${seq}`).toString("base64url");
}

export function decodeEventCursor(cursor: string): number | null {
  const text = Buffer.from(cursor, "base64url").toString();
  const match = /^evt:(\d{1,10})$/.exec(text);
  return match ? Number(match[1]) : null;
}

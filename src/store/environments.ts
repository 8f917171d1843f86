/** Environment rows as the use cases and controllers lock them. */
import type { Tx } from "../db/client.ts";
import { notFound, UserError } from "../domain/errors.ts";
import type { Environment } from "../generated/prisma/client.ts";

/**
 * Locks a live environment row for the rest of the transaction, or refuses
 * with NOT_FOUND. Whoever decides something about an environment (starting a
 * promotion in it, deleting it, changing its settings) takes this lock first,
 * so those decisions cannot interleave across processes. Lock order: the
 * environment before any deployment.
 */
export async function lockEnvironment(tx: Tx, id: string, field: string | null = "id"): Promise<Environment> {
  const rows = await tx.$queryRaw<{ id: string }[]>`
    SELECT id FROM "Environment" WHERE id = ${id} AND "deletedAt" IS NULL FOR UPDATE`;
  if (rows.length === 0) throw notFound("environment", id, field);
  return tx.environment.findUniqueOrThrow({ where: { id } });
}

/** A model's live environment by name, locked; NOT_FOUND on `environment` when there is none. */
export async function findEnvironment(tx: Tx, modelId: string, name: string): Promise<Environment> {
  const rows = await tx.$queryRaw<{ id: string }[]>`
    SELECT id FROM "Environment" WHERE "modelId" = ${modelId} AND "liveName" = ${name} FOR UPDATE`;
  const row = rows[0];
  if (!row) throw new UserError("NOT_FOUND", `no environment named '${name}'`, "environment");
  return tx.environment.findUniqueOrThrow({ where: { id: row.id } });
}

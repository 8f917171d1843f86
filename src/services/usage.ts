import type { PrismaClient } from "../generated/prisma/client.ts";

export interface UsageRow {
  deploymentId: string;
  replicaSeconds: number;
}

/**
 * Replica-seconds per deployment in [from, to): every replica's running time
 * (start to stop, or to now while it runs) clipped to the window. Deleted
 * deployments count too: replica rows are never deleted.
 */
export async function usage(
  prisma: PrismaClient,
  from: Date,
  to: Date,
  modelId: string | null,
): Promise<UsageRow[]> {
  const rows = await prisma.$queryRaw<{ deploymentId: string; seconds: number | string }[]>`
    SELECT r."deploymentId" AS "deploymentId",
           SUM(EXTRACT(EPOCH FROM (LEAST(COALESCE(r."stoppedAt", now()), ${to}::timestamptz)
                                 - GREATEST(r."startedAt", ${from}::timestamptz))))::float8 AS seconds
    FROM "Replica" r JOIN "Deployment" d ON d.id = r."deploymentId"
    WHERE r."startedAt" < ${to}::timestamptz
      AND COALESCE(r."stoppedAt", now()) > ${from}::timestamptz
      AND (${modelId}::text IS NULL OR d."modelId" = ${modelId}::text)
    GROUP BY r."deploymentId", d."createdAt"
    ORDER BY d."createdAt", r."deploymentId"`;
  return rows.map((row) => ({ deploymentId: row.deploymentId, replicaSeconds: Number(row.seconds) }));
}

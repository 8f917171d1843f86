import type { PrismaClient } from "../generated/prisma/client.ts";
import { MEMBER_STALE_MS } from "../store/members.ts";

export interface UsageRow {
  deploymentId: string;
  replicaSeconds: number;
}

/**
 * Replica-seconds per deployment in [from, to): every replica's running time
 * (start to stop, or to now while it runs) clipped to the window. Deleted
 * deployments count too: replica rows are never deleted. A replica not yet
 * marked stopped whose Hangar process stopped heartbeating ended with it, at
 * its last heartbeat (store/members.ts).
 */
export async function usage(
  prisma: PrismaClient,
  from: Date,
  to: Date,
  modelId: string | null,
): Promise<UsageRow[]> {
  const rows = await prisma.$queryRaw<{ deploymentId: string; seconds: number | string }[]>`
    WITH lifetimes AS (
      SELECT r."deploymentId", r."startedAt",
             COALESCE(
               r."stoppedAt",
               CASE WHEN m."lastSeenAt" < now() - make_interval(secs => ${MEMBER_STALE_MS}::float8 / 1000)
                    THEN GREATEST(m."lastSeenAt", r."startedAt") ELSE now() END
             ) AS "endedAt"
      FROM "Replica" r LEFT JOIN "Member" m ON m.id = r.owner
    )
    SELECT l."deploymentId" AS "deploymentId",
           SUM(EXTRACT(EPOCH FROM (LEAST(l."endedAt", ${to}::timestamptz)
                                 - GREATEST(l."startedAt", ${from}::timestamptz))))::float8 AS seconds
    FROM lifetimes l JOIN "Deployment" d ON d.id = l."deploymentId"
    WHERE l."startedAt" < ${to}::timestamptz
      AND l."endedAt" > ${from}::timestamptz
      AND (${modelId}::text IS NULL OR d."modelId" = ${modelId}::text)
    GROUP BY l."deploymentId", d."createdAt"
    ORDER BY d."createdAt", l."deploymentId"`;
  return rows.map((row) => ({ deploymentId: row.deploymentId, replicaSeconds: Number(row.seconds) }));
}

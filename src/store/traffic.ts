/**
 * The TrafficSecond table (API.md section 10): per member, per deployment, per second, what the member's
 * gateway counted of the requests that entered it. Each member writes only its own rows, so a write sets
 * a second's figures (it never adds to them) and writing a second again is harmless. Readers sum the
 * other members' rows; a member that is gone simply has no new rows (missing data, not zeros to trust).
 */
import type { PrismaClient } from "../generated/prisma/client.ts";
import type { TrafficSecond } from "../metrics/traffic.ts";

/** A member's in-flight figure counts while its last row is this fresh (it writes every second). */
export const IN_FLIGHT_FRESH_MS = 3_000;

export async function writeTrafficSeconds(
  prisma: PrismaClient,
  memberId: string,
  rows: readonly TrafficSecond[],
): Promise<void> {
  if (rows.length === 0) return;
  // A row's latency buckets go as an array literal in a text array: unnest() would flatten an int[][].
  await prisma.$executeRaw`
    INSERT INTO "TrafficSecond"
      ("memberId", "deploymentId", second, answered, failed, "busyMs", "inFlight", "latencyMs", latency, "writtenAt")
    SELECT ${memberId}, u.d, u.s, u.a, u.f, u.b, u.i, u.lm, u.l::int[], now()
    FROM unnest(${rows.map((r) => r.deploymentId)}::text[], ${rows.map((r) => r.second)}::bigint[],
                ${rows.map((r) => r.answered)}::int[], ${rows.map((r) => r.failed)}::int[],
                ${rows.map((r) => r.busyMs)}::float8[], ${rows.map((r) => r.inFlight)}::int[],
                ${rows.map((r) => r.latencyMs)}::float8[], ${rows.map((r) => `{${r.latency.join(",")}}`)}::text[])
      AS u(d, s, a, f, b, i, lm, l)
    ON CONFLICT ("memberId", "deploymentId", second) DO UPDATE SET
      answered = EXCLUDED.answered, failed = EXCLUDED.failed, "busyMs" = EXCLUDED."busyMs",
      "inFlight" = EXCLUDED."inFlight", "latencyMs" = EXCLUDED."latencyMs", latency = EXCLUDED.latency,
      "writtenAt" = EXCLUDED."writtenAt"`;
}

/** What the autoscaler asks of one deployment: seconds from `busySince` on, activity from `activeSince` on. */
export interface ConcurrencyQuery {
  deploymentId: string;
  busySince: number;
  activeSince: number;
}

/** The other members' figures for one deployment. */
export interface RemoteConcurrency {
  /** Request-milliseconds in flight in the seconds asked for. */
  busyMs: number;
  /** In flight at the members' last writes (those fresh enough to count). */
  inFlight: number;
  /** The end of the last second with a request in flight or answered (ms), 0 when none. */
  lastActivityAt: number;
}

export async function otherMembersConcurrency(
  prisma: PrismaClient,
  selfId: string,
  queries: readonly ConcurrencyQuery[],
): Promise<Map<string, RemoteConcurrency>> {
  const found = new Map<string, RemoteConcurrency>();
  if (queries.length === 0) return found;
  const rows = await prisma.$queryRaw<
    { deploymentId: string; busyMs: number | null; lastActive: bigint | null; inFlight: bigint | null }[]
  >`
    WITH q AS (
      SELECT * FROM unnest(${queries.map((q) => q.deploymentId)}::text[],
                           ${queries.map((q) => q.busySince)}::bigint[],
                           ${queries.map((q) => q.activeSince)}::bigint[]) AS q(id, busy_since, active_since)
    ),
    latest AS (
      SELECT DISTINCT ON (t."deploymentId", t."memberId") t."deploymentId", t."inFlight"
      FROM "TrafficSecond" t JOIN q ON t."deploymentId" = q.id
      WHERE t."memberId" <> ${selfId}
        AND t."writtenAt" > now() - make_interval(secs => ${IN_FLIGHT_FRESH_MS / 1000}::float8)
      ORDER BY t."deploymentId", t."memberId", t."writtenAt" DESC, t.second DESC
    )
    SELECT q.id AS "deploymentId",
      (SELECT sum(t."busyMs") FROM "TrafficSecond" t
        WHERE t."deploymentId" = q.id AND t."memberId" <> ${selfId} AND t.second >= q.busy_since) AS "busyMs",
      (SELECT max(t.second) FROM "TrafficSecond" t
        WHERE t."deploymentId" = q.id AND t."memberId" <> ${selfId} AND t.second >= q.active_since
          AND (t."busyMs" > 0 OR t.answered > 0 OR t."inFlight" > 0)) AS "lastActive",
      (SELECT sum(l."inFlight") FROM latest l WHERE l."deploymentId" = q.id) AS "inFlight"
    FROM q`;
  for (const row of rows) {
    found.set(row.deploymentId, {
      busyMs: Number(row.busyMs ?? 0),
      inFlight: Number(row.inFlight ?? 0),
      lastActivityAt: row.lastActive === null ? 0 : (Number(row.lastActive) + 1) * 1000,
    });
  }
  return found;
}

/** The other members' answers of one deployment from `sinceSecond` on, and what they have in flight. */
export async function otherMembersAnswers(
  prisma: PrismaClient,
  selfId: string,
  deploymentId: string,
  sinceSecond: number,
): Promise<{ answered: number; failed: number; inFlight: number }> {
  const rows = await prisma.$queryRaw<
    { answered: bigint | null; failed: bigint | null; inFlight: bigint | null }[]
  >`
    SELECT
      (SELECT sum(answered) FROM "TrafficSecond"
        WHERE "deploymentId" = ${deploymentId} AND "memberId" <> ${selfId} AND second >= ${sinceSecond}) AS answered,
      (SELECT sum(failed) FROM "TrafficSecond"
        WHERE "deploymentId" = ${deploymentId} AND "memberId" <> ${selfId} AND second >= ${sinceSecond}) AS failed,
      (SELECT sum(l."inFlight") FROM (
        SELECT DISTINCT ON ("memberId") "inFlight" FROM "TrafficSecond"
        WHERE "deploymentId" = ${deploymentId} AND "memberId" <> ${selfId}
          AND "writtenAt" > now() - make_interval(secs => ${IN_FLIGHT_FRESH_MS / 1000}::float8)
        ORDER BY "memberId", "writtenAt" DESC, second DESC) l) AS "inFlight"`;
  const row = rows[0];
  return {
    answered: Number(row?.answered ?? 0),
    failed: Number(row?.failed ?? 0),
    inFlight: Number(row?.inFlight ?? 0),
  };
}

/** Removes the rows of seconds before `beforeSecond`; answers how many went. */
export async function pruneTrafficSeconds(prisma: PrismaClient, beforeSecond: number): Promise<number> {
  return prisma.$executeRaw`DELETE FROM "TrafficSecond" WHERE second < ${beforeSecond}`;
}

/**
 * The TrafficSecond table (API.md section 10): per member, per deployment, per second, what the member's
 * gateway counted of the requests that entered it. Each member writes only its own rows, so a write sets
 * a second's figures (it never adds to them) and writing a second again is harmless. Readers sum the
 * other members' rows; a member that is gone simply has no new rows (missing data, not zeros to trust).
 */
import { newId } from "../domain/ids.ts";
import { Prisma, type PrismaClient } from "../generated/prisma/client.ts";
import { emptyLatencyCounts, type LatencyCounts } from "../metrics/latency.ts";
import type { ColdStart, TrafficSecond } from "../metrics/traffic.ts";

/** A member's in-flight figure counts while its last row is this fresh (it writes every second). */
export const IN_FLIGHT_FRESH_MS = 3_000;

export async function writeTrafficSeconds(
  prisma: PrismaClient,
  memberId: string,
  rows: readonly TrafficSecond[],
): Promise<void> {
  if (rows.length === 0) return;
  // A row's latency buckets go as an array literal in a text array: unnest() would flatten an int[][].
  const buckets = (counts: LatencyCounts) => `{${counts.join(",")}}`;
  await prisma.$executeRaw`
    INSERT INTO "TrafficSecond"
      ("memberId", "deploymentId", "environmentId", second, answered, failed, "busyMs", "inFlight",
       "latencyMs", latency, "coldStarts", "coldStartMs", "coldStartLatency", "writtenAt")
    SELECT ${memberId}, u.d, u.e, u.s, u.a, u.f, u.b, u.i, u.lm, u.l::int[], u.c, u.cm, u.cl::int[], now()
    FROM unnest(${rows.map((r) => r.deploymentId)}::text[], ${rows.map((r) => r.environmentId)}::text[],
                ${rows.map((r) => r.second)}::bigint[],
                ${rows.map((r) => r.answered)}::int[], ${rows.map((r) => r.failed)}::int[],
                ${rows.map((r) => r.busyMs)}::float8[], ${rows.map((r) => r.inFlight)}::int[],
                ${rows.map((r) => r.latencyMs)}::float8[], ${rows.map((r) => buckets(r.latency))}::text[],
                ${rows.map((r) => r.coldStarts)}::int[], ${rows.map((r) => r.coldStartMs)}::float8[],
                ${rows.map((r) => buckets(r.coldStartLatency))}::text[])
      AS u(d, e, s, a, f, b, i, lm, l, c, cm, cl)
    ON CONFLICT ("memberId", "deploymentId", "environmentId", second) DO UPDATE SET
      answered = EXCLUDED.answered, failed = EXCLUDED.failed, "busyMs" = EXCLUDED."busyMs",
      "inFlight" = EXCLUDED."inFlight", "latencyMs" = EXCLUDED."latencyMs", latency = EXCLUDED.latency,
      "coldStarts" = EXCLUDED."coldStarts", "coldStartMs" = EXCLUDED."coldStartMs",
      "coldStartLatency" = EXCLUDED."coldStartLatency", "writtenAt" = EXCLUDED."writtenAt"`;
}

/** `ARRAY[sum(column[1]), ...]`: a bucket column summed element by element (rows may have none). */
function bucketSums(column: "latency" | "coldStartLatency"): Prisma.Sql {
  const sums = emptyLatencyCounts().map((_, i) => `coalesce(sum("${column}"[${i + 1}]), 0)::int`);
  return Prisma.raw(`ARRAY[${sums.join(", ")}]`);
}

/**
 * Rolls this member's seconds from `fromSecond` on up into their minutes (TrafficMinute): each minute
 * touched is summed again from its seconds and set, so doing it twice is harmless.
 */
export async function rollUpTrafficMinutes(
  prisma: PrismaClient,
  memberId: string,
  fromSecond: number,
): Promise<void> {
  const fromMinute = Math.floor(fromSecond / 60);
  await prisma.$executeRaw`
    INSERT INTO "TrafficMinute"
      ("memberId", "deploymentId", "environmentId", minute, answered, failed, "latencyMs", latency,
       "coldStarts", "coldStartMs", "coldStartLatency", "writtenAt")
    SELECT "memberId", "deploymentId", "environmentId", second / 60, sum(answered), sum(failed),
      sum("latencyMs"), ${bucketSums("latency")}, sum("coldStarts"), sum("coldStartMs"),
      ${bucketSums("coldStartLatency")}, now()
    FROM "TrafficSecond"
    WHERE "memberId" = ${memberId} AND second >= ${fromMinute * 60}
    GROUP BY "memberId", "deploymentId", "environmentId", second / 60
    HAVING sum(answered) > 0 OR sum("coldStarts") > 0
    ON CONFLICT ("memberId", "deploymentId", "environmentId", minute) DO UPDATE SET
      answered = EXCLUDED.answered, failed = EXCLUDED.failed, "latencyMs" = EXCLUDED."latencyMs",
      latency = EXCLUDED.latency, "coldStarts" = EXCLUDED."coldStarts",
      "coldStartMs" = EXCLUDED."coldStartMs", "coldStartLatency" = EXCLUDED."coldStartLatency",
      "writtenAt" = EXCLUDED."writtenAt"`;
}

/** Removes the minutes before `beforeMinute`; answers how many went. */
export async function pruneTrafficMinutes(prisma: PrismaClient, beforeMinute: number): Promise<number> {
  return prisma.$executeRaw`DELETE FROM "TrafficMinute" WHERE minute < ${beforeMinute}`;
}

export async function insertColdStarts(
  prisma: PrismaClient,
  memberId: string,
  starts: readonly ColdStart[],
): Promise<void> {
  if (starts.length === 0) return;
  const at = (ms: number | null) => (ms === null ? null : new Date(ms));
  await prisma.coldStart.createMany({
    data: starts.map((start) => ({
      id: newId("ColdStart"),
      deploymentId: start.deploymentId,
      modelId: start.modelId,
      environmentId: start.environmentId,
      memberId,
      replicaId: start.replicaId,
      requestedAt: new Date(start.requestedAt),
      processStartedAt: at(start.processStartedAt),
      modelLoadedAt: at(start.modelLoadedAt),
      answeredAt: new Date(start.answeredAt),
      durationMs: Math.max(0, start.answeredAt - start.requestedAt),
    })),
  });
}

/** Cold starts answered before `before` go; answers how many. */
export async function pruneColdStarts(prisma: PrismaClient, before: Date): Promise<number> {
  const { count } = await prisma.coldStart.deleteMany({ where: { answeredAt: { lt: before } } });
  return count;
}

/** Whose traffic a figure is of: one deployment (every path), or the requests through one environment. */
export type TrafficScope = { deploymentId: string } | { environmentId: string };

/** Figures summed over every member. */
export interface TrafficSums {
  answered: number;
  failed: number;
  latency: LatencyCounts;
  coldStarts: number;
  coldStartLatency: LatencyCounts;
}

function scopeCondition(scope: TrafficScope): Prisma.Sql {
  return "deploymentId" in scope
    ? Prisma.sql`"deploymentId" = ${scope.deploymentId}`
    : Prisma.sql`"environmentId" = ${scope.environmentId}`;
}

interface SumRow {
  bucket: bigint;
  answered: bigint | null;
  failed: bigint | null;
  latency: number[];
  coldStarts: bigint | null;
  coldStartLatency: number[];
}

function sumsOf(row: SumRow | undefined): TrafficSums {
  const fill = (counts: number[] | undefined) => {
    const out = emptyLatencyCounts();
    counts?.forEach((n, i) => {
      if (i < out.length) out[i] = Number(n);
    });
    return out;
  };
  return {
    answered: Number(row?.answered ?? 0),
    failed: Number(row?.failed ?? 0),
    latency: fill(row?.latency),
    coldStarts: Number(row?.coldStarts ?? 0),
    coldStartLatency: fill(row?.coldStartLatency),
  };
}

/**
 * Every member's figures of the scope over [from, to) in steps of `step` (all in seconds; from the
 * seconds, or with `minutes` from the minute roll-up, whose from, to and step are multiples of 60),
 * bucket i covering [from + i * step, from + (i + 1) * step).
 */
export async function trafficSums(
  prisma: PrismaClient,
  scope: TrafficScope,
  window: { from: number; to: number; step: number; minutes: boolean },
): Promise<Map<number, TrafficSums>> {
  const { from, to, step, minutes } = window;
  const table = Prisma.raw(minutes ? `"TrafficMinute"` : `"TrafficSecond"`);
  const time = Prisma.raw(minutes ? "minute * 60" : "second");
  const rows = await prisma.$queryRaw<SumRow[]>`
    SELECT (${time} - ${from}) / ${step} AS bucket, sum(answered) AS answered, sum(failed) AS failed,
      ${bucketSums("latency")} AS latency, sum("coldStarts") AS "coldStarts",
      ${bucketSums("coldStartLatency")} AS "coldStartLatency"
    FROM ${table}
    WHERE ${scopeCondition(scope)} AND ${time} >= ${from} AND ${time} < ${to}
    GROUP BY 1`;
  return new Map(rows.map((row) => [Number(row.bucket), sumsOf(row)]));
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
      WHERE t."memberId" <> ${selfId} AND t."environmentId" = ''
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
        WHERE "deploymentId" = ${deploymentId} AND "memberId" <> ${selfId} AND "environmentId" = ''
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

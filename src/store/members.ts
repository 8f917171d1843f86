/**
 * The Member table: the members of one Hangar (API.md section 10) and each start of theirs. A start
 * heartbeats; one that stops heartbeating has stopped, however it stopped (SIGKILL, OOM, a lost
 * machine), and so have the replicas it ran: they never outlive it (API.md section 9). Its last
 * heartbeat is when they are taken to have stopped. Every time here is the database's clock (now()),
 * so that members whose clocks disagree still agree on who is alive.
 */
import type { PrismaClient } from "../generated/prisma/client.ts";

/** Between heartbeats (River's default): the deployment controller's tick. */
export const HEARTBEAT_MS = 5_000;
/** Three heartbeats missed: the start is gone, and another member may take its work over. */
export const MEMBER_STALE_MS = 3 * HEARTBEAT_MS;
/** How long a member that is gone is still listed by the `members` query. */
export const LISTED_AFTER_DEATH_MS = 60 * 60_000;

/** One start of a member, as it joins. */
export interface MemberStart {
  /** Unique per start (controllers/leases.ts leaseOwnerName): the owner of its leases and replicas. */
  id: string;
  name: string;
  url: string;
  host: string;
  pid: number;
  /** runtime/process-identity.ts machineOwnerOf: how a member on the same machine sees it end (none: never). */
  process?: string;
}

const STALE_SECONDS = MEMBER_STALE_MS / 1000;

/**
 * Records a start of the member and answers its epoch: one more than the name's last start, which a
 * restart under the same name supersedes at once (that start is over, whatever its last heartbeat said).
 */
export async function join(prisma: PrismaClient, start: MemberStart): Promise<number> {
  return prisma.$transaction(async (tx) => {
    // One start of a name at a time picks its epoch (the lock is released at commit).
    await tx.$executeRaw`SELECT pg_advisory_xact_lock(hashtext('hangar-member:' || ${start.name}))`;
    const rows = await tx.$queryRaw<{ epoch: number }[]>`
      INSERT INTO "Member" (id, name, url, host, pid, process, epoch, "startedAt", "lastSeenAt", "expiresAt")
      SELECT ${start.id}, ${start.name}, ${start.url}, ${start.host}, ${start.pid}, ${start.process ?? ""},
             COALESCE((SELECT max(epoch) FROM "Member" WHERE name = ${start.name}), 0) + 1,
             now(), now(), now() + make_interval(secs => ${STALE_SECONDS}::float8)
      ON CONFLICT (id) DO UPDATE SET "lastSeenAt" = now(), "expiresAt" = EXCLUDED."expiresAt"
      RETURNING epoch`;
    await tx.$executeRaw`
      UPDATE "Member" SET "expiresAt" = LEAST("expiresAt", now())
      WHERE name = ${start.name} AND id <> ${start.id}`;
    return Number(rows[0]?.epoch ?? 1);
  });
}

/**
 * A heartbeat of the start `id`: it is alive for MEMBER_STALE_MS more. False when it may no longer act:
 * a later start of its name superseded it, or its row is gone.
 */
export async function heartbeat(prisma: PrismaClient, id: string): Promise<boolean> {
  const updated = await prisma.$executeRaw`
    UPDATE "Member" m SET "lastSeenAt" = now(), "expiresAt" = now() + make_interval(secs => ${STALE_SECONDS}::float8)
    WHERE m.id = ${id}
      AND NOT EXISTS (SELECT 1 FROM "Member" later WHERE later.name = m.name AND later.epoch > m.epoch)`;
  return updated === 1;
}

/** A last heartbeat that says the start is over (its replicas ended then too). */
export async function leave(prisma: PrismaClient, id: string): Promise<void> {
  await prisma.$executeRaw`UPDATE "Member" SET "lastSeenAt" = now(), "expiresAt" = now() WHERE id = ${id}`;
}

/** When each of `ids` last heartbeat; an id with no row is missing from the map. */
export async function lastSeen(prisma: PrismaClient, ids: string[]): Promise<Map<string, Date>> {
  const rows = await prisma.member.findMany({
    where: { id: { in: ids } },
    select: { id: true, lastSeenAt: true },
  });
  return new Map(rows.map((row) => [row.id, row.lastSeenAt]));
}

/**
 * Which of the owners `ids` are gone by the database's clock: expired, superseded by a later start of
 * their name, or never recorded (nothing heartbeats for them).
 */
export async function goneOwners(prisma: PrismaClient, ids: string[]): Promise<Set<string>> {
  if (ids.length === 0) return new Set();
  const alive = await prisma.$queryRaw<{ id: string }[]>`
    SELECT m.id FROM "Member" m
    WHERE m.id = ANY(${ids}::text[]) AND m."expiresAt" > now()
      AND NOT EXISTS (SELECT 1 FROM "Member" later WHERE later.name = m.name AND later.epoch > m.epoch)`;
  const living = new Set(alive.map((row) => row.id));
  return new Set(ids.filter((id) => !living.has(id)));
}

/**
 * Of the starts `ids`, those alive by their expiry whose last heartbeat is older than `overdueMs` by the
 * database's clock (a heartbeat missed), with their URLs: candidates for an early verdict (membership.ts).
 */
export async function overdueStarts(
  prisma: PrismaClient,
  ids: string[],
  overdueMs: number,
): Promise<Map<string, string>> {
  if (ids.length === 0) return new Map();
  const rows = await prisma.$queryRaw<{ id: string; url: string }[]>`
    SELECT m.id, m.url FROM "Member" m
    WHERE m.id = ANY(${ids}::text[]) AND m."expiresAt" > now()
      AND m."lastSeenAt" < now() - make_interval(secs => ${overdueMs / 1000}::float8)`;
  return new Map(rows.map((row) => [row.id, row.url]));
}

/** The process names (MemberStart.process) of the starts `ids`, of those that recorded one. */
export async function processesOf(prisma: PrismaClient, ids: string[]): Promise<Map<string, string>> {
  if (ids.length === 0) return new Map();
  const rows = await prisma.member.findMany({
    where: { id: { in: ids } },
    select: { id: true, process: true },
  });
  return new Map(rows.filter((row) => row.process !== "").map((row) => [row.id, row.process]));
}

/**
 * Records that the starts `ids` have ended now (a member on their machine saw their process end), so
 * that every member goes by the same verdict without waiting for their expiry.
 */
export async function expireNow(prisma: PrismaClient, ids: string[]): Promise<void> {
  if (ids.length === 0) return;
  await prisma.$executeRaw`
    UPDATE "Member" SET "expiresAt" = LEAST("expiresAt", now()) WHERE id = ANY(${ids}::text[])`;
}

/** A member as the `members` query shows it: its latest start. */
export interface MemberView {
  name: string;
  url: string;
  startedAt: Date;
  lastSeenAt: Date;
  alive: boolean;
  replicaCount: number;
}

/** Every member alive or gone for less than LISTED_AFTER_DEATH_MS, by name, with its latest start. */
export async function listMembers(prisma: PrismaClient): Promise<MemberView[]> {
  const rows = await prisma.$queryRaw<
    { name: string; url: string; startedAt: Date; lastSeenAt: Date; alive: boolean; replicas: bigint }[]
  >`
    SELECT DISTINCT ON (m.name) m.name, m.url, m."startedAt", m."lastSeenAt",
           (m."expiresAt" > now()) AS alive,
           (SELECT count(*) FROM "Replica" r
             WHERE r.owner = m.id AND r.state IN ('STARTING', 'READY') AND m."expiresAt" > now()) AS replicas
    FROM "Member" m
    WHERE m."expiresAt" > now() - make_interval(secs => ${LISTED_AFTER_DEATH_MS / 1000}::float8)
    ORDER BY m.name, m.epoch DESC`;
  return rows.map((row) => ({
    name: row.name,
    url: row.url,
    startedAt: row.startedAt,
    lastSeenAt: row.lastSeenAt,
    alive: row.alive,
    replicaCount: Number(row.replicas),
  }));
}

/**
 * The replicas a gone start left recorded as running ended with it, at its last heartbeat (never before
 * they started). Returns how many rows it closed.
 */
export async function endReplicasOf(
  prisma: PrismaClient,
  owner: string,
  deploymentId?: string,
): Promise<number> {
  return prisma.$executeRaw`
    UPDATE "Replica" r
    SET state = 'STOPPED',
        "stoppedAt" = GREATEST(r."startedAt", COALESCE(m."lastSeenAt", now())),
        "exitReason" = COALESCE(r."exitReason", 'owner process died')
    FROM (SELECT ${owner}::text AS id) o LEFT JOIN "Member" m ON m.id = o.id
    WHERE r.owner = ${owner} AND r.state IN ('STARTING', 'READY', 'STOPPING')
      AND (${deploymentId ?? null}::text IS NULL OR r."deploymentId" = ${deploymentId ?? null}::text)`;
}

/** Another member's ready replicas of a deployment, as its gateway can be reached. */
export interface PeerReplicas {
  memberId: string;
  name: string;
  url: string;
  ready: number;
}

/** The alive members other than `selfId` with ready replicas of the deployment, and how many each. */
export async function readyElsewhere(
  prisma: PrismaClient,
  deploymentId: string,
  selfId: string,
): Promise<PeerReplicas[]> {
  const rows = await prisma.$queryRaw<{ memberId: string; name: string; url: string; ready: bigint }[]>`
    SELECT m.id AS "memberId", m.name, m.url, count(*) AS ready
    FROM "Replica" r JOIN "Member" m ON m.id = r.owner
    WHERE r."deploymentId" = ${deploymentId} AND r.state = 'READY' AND r."stoppedAt" IS NULL
      AND m.id <> ${selfId} AND m."expiresAt" > now()
    GROUP BY m.id, m.name, m.url`;
  return rows.map((row) => ({ ...row, ready: Number(row.ready) }));
}

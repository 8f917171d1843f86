/**
 * The Member table: each Hangar process's heartbeat. A process that stops heartbeating has stopped,
 * however it stopped (SIGKILL, OOM, a lost machine), and so have the replicas it ran: they never
 * outlive it (API.md section 9). Its last heartbeat is when they are taken to have stopped.
 */
import type { PrismaClient } from "../generated/prisma/client.ts";

/** Between heartbeats: the deployment controller's tick. */
export const HEARTBEAT_MS = 5_000;
/** Three heartbeats missed: the process is gone. */
export const MEMBER_STALE_MS = 3 * HEARTBEAT_MS;

/** Records that `id` runs at `now` (the first one records when it started). */
export async function heartbeat(prisma: PrismaClient, id: string, startedAt: Date, now: Date): Promise<void> {
  await prisma.member.upsert({
    where: { id },
    create: { id, startedAt, lastSeenAt: now },
    update: { lastSeenAt: now },
  });
}

/** When each of `ids` last heartbeat; an id with no row is missing from the map. */
export async function lastSeen(prisma: PrismaClient, ids: string[]): Promise<Map<string, Date>> {
  const rows = await prisma.member.findMany({
    where: { id: { in: ids } },
    select: { id: true, lastSeenAt: true },
  });
  return new Map(rows.map((row) => [row.id, row.lastSeenAt]));
}

/** Whether a member last seen at `seenAt` is gone at `now`. */
export function isStale(seenAt: Date, now: Date): boolean {
  return now.getTime() - seenAt.getTime() > MEMBER_STALE_MS;
}

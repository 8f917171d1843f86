// The usage query (services/usage.ts) on a real embedded database: how long a replica counts when the
// Hangar process that ran it stopped heartbeating without marking it stopped.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Database } from "../../src/db/client.ts";
import { newId } from "../../src/domain/ids.ts";
import { usage } from "../../src/services/usage.ts";
import { MEMBER_STALE_MS } from "../../src/store/members.ts";
import { scratchDatabase } from "../support/scratch-database.ts";

let scratch: Awaited<ReturnType<typeof scratchDatabase>>;
let db: Database;
let modelId: string;

beforeAll(async () => {
  scratch = await scratchDatabase();
  db = scratch.db;
  modelId = newId("Model");
  await db.prisma.model.create({ data: { id: modelId, name: "metered" } });
});

afterAll(async () => {
  await scratch?.dispose();
});

/** A deployment with one replica started `startedSecondsAgo`, never marked stopped, run by `member`. */
async function runningReplica(
  member: { id: string; lastSeenSecondsAgo: number } | null,
  startedSecondsAgo: number,
) {
  const now = Date.now();
  const deploymentId = newId("Deployment");
  await db.prisma.deployment.create({
    data: {
      id: deploymentId,
      modelId,
      name: deploymentId,
      kind: "PUBLISHED",
      artifactHash: "0".repeat(64),
      autoscaling: {},
      status: "ACTIVE",
    },
  });
  const owner = member?.id ?? "a process from before heartbeats";
  if (member) {
    await db.prisma.member.create({
      data: {
        id: member.id,
        name: member.id,
        startedAt: new Date(now - startedSecondsAgo * 1000),
        lastSeenAt: new Date(now - member.lastSeenSecondsAgo * 1000),
      },
    });
  }
  await db.prisma.replica.create({
    data: { id: newId("Replica"), deploymentId, owner, startedAt: new Date(now - startedSecondsAgo * 1000) },
  });
  return deploymentId;
}

async function secondsOf(deploymentId: string): Promise<number> {
  const rows = await usage(
    db.prisma,
    new Date(Date.now() - 3_600_000),
    new Date(Date.now() + 60_000),
    modelId,
  );
  const row = rows.find((r) => r.deploymentId === deploymentId);
  if (!row) throw new Error(`no usage for ${deploymentId}`);
  return row.replicaSeconds;
}

describe("usage of a replica not marked stopped", () => {
  it("counts up to now while its process heartbeats", async () => {
    const id = await runningReplica({ id: "alive", lastSeenSecondsAgo: 2 }, 600);
    expect(await secondsOf(id)).toBeGreaterThanOrEqual(600);
  });

  it("stops at its process's last heartbeat once that process has missed three", async () => {
    const gone = MEMBER_STALE_MS / 1000 + 60;
    const id = await runningReplica({ id: "gone", lastSeenSecondsAgo: gone }, 600);
    expect(await secondsOf(id)).toBeCloseTo(600 - gone, 0);
  });

  it("counts no time for a replica started after its process's last heartbeat", async () => {
    const id = await runningReplica({ id: "gone before it", lastSeenSecondsAgo: 900 }, 600);
    expect(await secondsOf(id)).toBe(0);
  });

  it("counts up to now when its process never heartbeat (rows from before heartbeats)", async () => {
    const id = await runningReplica(null, 300);
    expect(await secondsOf(id)).toBeGreaterThanOrEqual(300);
  });
});

/**
 * Active probes of the members a gateway hands requests to (API.md section 10): a member that stops
 * answering goes out of rotation though it refuses nothing, and comes back once it answers again. Real
 * HTTP servers stand in for the members; the replica registry is a real embedded database.
 */
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Database } from "../../src/db/client.ts";
import { DEFAULT_AUTOSCALING } from "../../src/domain/autoscaling.ts";
import { systemClock } from "../../src/domain/clock.ts";
import { newId } from "../../src/domain/ids.ts";
import { MemberSecret, PeerDirectory } from "../../src/gateway/peers.ts";
import { scratchDatabase } from "../support/scratch-database.ts";

let db: Database;
let dispose: () => Promise<void>;
const servers: Server[] = [];

beforeAll(async () => {
  ({ db, dispose } = await scratchDatabase());
});

afterAll(async () => {
  for (const server of servers) {
    server.closeAllConnections();
    server.close();
  }
  await dispose?.();
});

/** A member's listener: /healthz answers 200 while `answering` says so, and hangs otherwise. */
async function member(state: { answering: boolean }): Promise<string> {
  const server = createServer((req, res) => {
    if (req.url === "/healthz" && state.answering) res.end('{"status":"ok"}');
  });
  servers.push(server);
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

async function runs(memberId: string, url: string, deploymentId: string): Promise<void> {
  await db.prisma.member.create({
    data: {
      id: memberId,
      name: memberId,
      url,
      startedAt: new Date(),
      lastSeenAt: new Date(),
      expiresAt: new Date(Date.now() + 60_000),
    },
  });
  await db.prisma.replica.create({
    data: { id: newId("Replica"), deploymentId, owner: memberId, state: "READY", readyAt: new Date() },
  });
}

describe("member probes", () => {
  it("take a member that stops answering out of rotation, and bring it back once it answers", async () => {
    const modelId = newId("Model");
    await db.prisma.model.create({ data: { id: modelId, name: "probed", liveName: "probed" } });
    const deploymentId = newId("Deployment");
    await db.prisma.deployment.create({
      data: {
        id: deploymentId,
        modelId,
        name: "d",
        liveName: "d",
        kind: "PUBLISHED",
        status: "ACTIVE",
        artifactHash: "hash",
        autoscaling: { ...DEFAULT_AUTOSCALING },
      },
    });
    const steady = { answering: true };
    const flaky = { answering: true };
    await runs("steady", await member(steady), deploymentId);
    await runs("flaky", await member(flaky), deploymentId);
    const directory = new PeerDirectory(db.prisma, "self", new MemberSecret("s"), systemClock);
    const members = async () => (await directory.routes(deploymentId)).map((r) => r.memberId).sort();
    try {
      expect(await members()).toEqual(["flaky", "steady"]);
      await directory.probe();
      expect(await members()).toEqual(["flaky", "steady"]);
      flaky.answering = false; // it accepts connections and never answers: no error until a probe
      await directory.probe();
      expect(await members()).toEqual(["steady"]);
      flaky.answering = true;
      await directory.probe();
      expect(await members()).toEqual(["flaky", "steady"]);
    } finally {
      await directory.close();
    }
  });
});

// Webhooks with several members on one PostgreSQL (API.md sections 10 and 11): each event is sent by
// exactly one member, and a member killed while its delivery is in flight loses nothing.
import { randomBytes } from "node:crypto";
import { mkdtemp } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { gql } from "../support/client.ts";
import { startHangar, type TestHangar } from "../support/hangar.ts";
import { startPostgres } from "../support/postgres.ts";
import { createEnvironment } from "../support/promotions.ts";
import { waitFor } from "../support/wait.ts";
import { createWebhook, deliveriesOf, startReceiver, verifySignature } from "../support/webhook-receiver.ts";

const started: TestHangar[] = [];
afterAll(async () => {
  for (const hangar of started.reverse()) await hangar.dispose();
});

async function member(joining?: TestHangar): Promise<TestHangar> {
  const hangar = await startHangar(joining ? { joining } : {});
  started.push(hangar);
  return hangar;
}

async function createModel(hangar: TestHangar, name: string): Promise<string> {
  const data = await gql(
    hangar,
    `mutation($name: String!) { createModel(input: { name: $name }) { ... on Model { id } } }`,
    { name },
  );
  return data.createModel.id;
}

// Only PostgreSQL can have several members: vitest.config.ts runs this file in integration-postgres only.
describe("webhooks across members", () => {
  it("sends each event once, in order, whichever member wrote it", async () => {
    const receiver = await startReceiver();
    const a = await member();
    const b = await member(a);
    const modelId = await createModel(a, "clustered");
    // For every model (modelId null): the webhook whose row every member's events lock.
    const { id, secret } = await createWebhook(a, {
      url: `${receiver.url}/cluster`,
      events: ["ENVIRONMENT_CREATED"],
    });
    // Written through both members, one after the other: their order is the order of the events.
    const names = Array.from({ length: 8 }, (_, i) => `env-${i}`);
    for (const [i, name] of names.entries()) await createEnvironment(i % 2 === 0 ? a : b, { modelId, name });
    const deliveries = await waitFor(
      async () => {
        const list = await deliveriesOf(b, id);
        return list.length === names.length && list.every((d) => d.status === "DELIVERED") ? list : null;
      },
      { what: "every delivery to be DELIVERED", timeoutMs: 30_000 },
    );
    const got = receiver.to("/cluster");
    // Exactly one POST per delivery: no member sent one another had claimed.
    expect(got.map((r) => r.headers["x-hangar-delivery"])).toEqual(deliveries.map((d) => d.id).reverse());
    expect(got.map((r) => r.json.message)).toEqual(names.map((name) => `environment '${name}' created`));
    for (const request of got) verifySignature(request, secret);
    expect(deliveries.every((d) => d.attempts === 1)).toBe(true);
    await receiver.close();
  });

  it("has another member deliver what a member killed mid-delivery was sending", async () => {
    // The first request is held open (the member sending it is then killed); every later one gets 200.
    const receiver = await startReceiver((_path, n) => (n === 0 ? "hang" : 200));
    const a = await member();
    const modelId = await createModel(a, "killed-mid-delivery");
    const { id, secret } = await createWebhook(a, {
      url: `${receiver.url}/killed`,
      modelId,
      events: ["ENVIRONMENT_CREATED"],
    });
    // Alone, a claims it: the delivery is in flight at a when b joins.
    await createEnvironment(a, { modelId, name: "in-flight" });
    const [first] = await waitFor(() => (receiver.received.length === 1 ? receiver.received : null), {
      what: "a to send the delivery",
    });
    const b = await member(a);
    expect(receiver.received).toHaveLength(1);
    await a.kill();
    // b sees a gone, takes the delivery over and sends it again, under the same delivery ID.
    const [, second] = await waitFor(() => (receiver.received.length >= 2 ? receiver.received : null), {
      what: "b to send it again",
      timeoutMs: 30_000,
    });
    if (!first || !second) throw new Error("unreachable");
    expect(second.headers["x-hangar-delivery"]).toBe(first.headers["x-hangar-delivery"]);
    expect(second.body).toBe(first.body);
    verifySignature(second, secret);
    const [delivery] = await waitFor(async () => {
      const list = await deliveriesOf(b, id);
      return list[0]?.status === "DELIVERED" ? list : null;
    });
    // The killed attempt was never recorded: b's is the first the delivery knows of.
    expect(delivery).toMatchObject({ status: "DELIVERED", attempts: 1, lastStatus: 200 });
    expect(receiver.received).toHaveLength(2);
    await receiver.close();
  });

  it("goes on after PostgreSQL was away, with the retries that fell due meanwhile", async () => {
    // The receiver fails every attempt until PostgreSQL is back: retries fall due during the outage.
    let failing = true;
    const receiver = await startReceiver(() => (failing ? 500 : 200));
    const cluster = await startPostgres();
    try {
      const hangar = await startHangar({
        reuse: {
          dataDir: await mkdtemp(path.join(tmpdir(), "hangar-test-")),
          databaseUrl: cluster.url,
          key: `hk_test_${randomBytes(16).toString("hex")}`,
        },
      });
      started.push(hangar);
      const modelId = await createModel(hangar, "outage");
      const { id, secret } = await createWebhook(hangar, {
        url: `${receiver.url}/outage`,
        modelId,
        events: ["ENVIRONMENT_CREATED"],
      });
      await createEnvironment(hangar, { modelId, name: "before-outage" });
      await waitFor(() => receiver.received.length >= 1, { what: "the first attempt" });
      await cluster.pause();
      // Down for longer than the first retries' waits (1 s, 2 s): the worker's sweeps fail meanwhile.
      await new Promise((resolve) => setTimeout(resolve, 3000));
      await cluster.resume();
      failing = false;
      const [delivery] = await waitFor(
        async () => {
          const list = await deliveriesOf(hangar, id);
          return list[0]?.status === "DELIVERED" ? list : null;
        },
        { what: "a retry after the outage", timeoutMs: 30_000 },
      );
      expect(hangar.process.exitCode).toBeNull();
      // One delivery throughout; its last attempt is the 200. An attempt made as PostgreSQL went away
      // may have been sent but not recorded (then sent again: at least once), never the other way round.
      const ids = new Set(receiver.received.map((r) => r.headers["x-hangar-delivery"]));
      expect([...ids]).toEqual([delivery?.id]);
      expect(delivery).toMatchObject({ lastStatus: 200, lastError: null });
      expect(delivery?.attempts).toBeGreaterThanOrEqual(2);
      expect(delivery?.attempts).toBeLessThanOrEqual(receiver.received.length);
      // The worker said so in its log, never with the secret.
      expect(hangar.output()).toContain("webhooks: the worker failed");
      expect(hangar.output()).not.toContain(secret);
    } finally {
      await receiver.close();
      for (const hangar of started.splice(0)) await hangar.dispose();
      await cluster.stop();
    }
  });
});

import { afterEach, describe, expect, it } from "vitest";
import { gql, modelFolder, predict, pushFolder, waitForStatus } from "../support/client.ts";
import { startHangar, type TestHangar } from "../support/hangar.ts";
import { steadyClient, stopSteadyClients } from "../support/load.ts";
import { finished as waitForEnd } from "../support/promotions.ts";

const MODEL = (version: number, load = "") => ({
  "model.mjs": `export default class M {
  async load() { ${load} }
  async predict() { await new Promise((r) => setTimeout(r, 5)); return { version: ${version} }; }
}`,
});

const PROMOTE = `mutation($input: PromoteInput!) {
  promote(input: $input) { __typename ... on Promotion { id } ... on UserError { code message } } }`;

const servers: TestHangar[] = [];

afterEach(async () => {
  await stopSteadyClients();
  for (const server of servers.splice(0)) await server.dispose();
});

async function start(env: Record<string, string> = {}) {
  const server = await startHangar({ env: { HANGAR_AUTOSCALER_INTERVAL_MS: "100", ...env } });
  servers.push(server);
  return server;
}

const finished = (hangar: TestHangar, id: string) =>
  waitForEnd(hangar, id, {
    fields: "status errorMessage steps { status } deployment { id }",
    timeoutMs: 30_000,
  });

describe("zero downtime", () => {
  it("serves every request of a steady client through a promotion and through a cancel", async () => {
    const hangar = await start();
    const first = await pushFolder(hangar, "steady", await modelFolder(MODEL(1)));
    await waitForStatus(hangar, first.id, "ACTIVE");
    await finished(hangar, (await gql(hangar, PROMOTE, { input: { deploymentId: first.id } })).promote.id);
    const client = steadyClient(hangar, `/models/${first.model.id}/predict`);
    await client.more(20);

    const second = await pushFolder(hangar, "steady", await modelFolder(MODEL(2)));
    const promoted = await finished(
      hangar,
      (await gql(hangar, PROMOTE, { input: { deploymentId: second.id } })).promote.id,
    );
    expect(promoted.status).toBe("SUCCEEDED");
    await client.more(20);
    await waitForStatus(hangar, first.id, "SCALED_TO_ZERO");

    const slow = await pushFolder(
      hangar,
      "steady",
      await modelFolder(MODEL(3, "await new Promise((r) => setTimeout(r, 3000));")),
    );
    const p = (await gql(hangar, PROMOTE, { input: { deploymentId: slow.id } })).promote;
    const env = (
      await gql(hangar, `query($id: ID!) { model(id: $id) { productionEnvironment { id } } }`, {
        id: first.model.id,
      })
    ).model.productionEnvironment;
    await gql(hangar, `mutation($id: ID!) { cancelPromotion(environmentId: $id) { __typename } }`, {
      id: env.id,
    });
    expect((await finished(hangar, p.id)).status).toBe("CANCELED");
    await client.more(20);
    await client.stop();

    expect(client.answers.filter((a) => a.status !== 200)).toEqual([]);
    expect([...new Set(client.answers.map((a) => a.deploymentId))].sort()).toEqual(
      [first.id, second.id].sort(),
    );
  });
});

describe("durability", () => {
  it.each([
    ["promotion:create-deployment", "CREATE_DEPLOYMENT committed"],
    ["promotion:start-deployment", "START_DEPLOYMENT begun"],
    ["promotion:activate", "ACTIVATE begun"],
  ])(
    "resumes a promotion after Hangar is killed at %s (%s)",
    async (failpointName) => {
      const hangar = await start({ HANGAR_FAILPOINT: failpointName });
      const dev = await pushFolder(hangar, "durable", await modelFolder(MODEL(1)), { development: true });
      await waitForStatus(hangar, dev.id, "ACTIVE");
      const promotionId = (await gql(hangar, PROMOTE, { input: { deploymentId: dev.id } })).promote.id;
      // The failpoint kills the server with SIGKILL right after that step commits.
      expect(await hangar.exited).toBeNull();
      expect(hangar.process.signalCode).toBe("SIGKILL");
      const again = await startHangar({
        env: { HANGAR_AUTOSCALER_INTERVAL_MS: "100" },
        reuse: { dataDir: hangar.dataDir, databaseUrl: hangar.databaseUrl, key: hangar.key },
      });
      servers.push(again);
      const done = await finished(again, promotionId);
      expect(done.status).toBe("SUCCEEDED");
      expect(done.steps.map((s: { status: string }) => s.status)).toEqual([
        "SUCCEEDED",
        "SUCCEEDED",
        "SUCCEEDED",
      ]);
      const model = await gql(
        again,
        `query($id: ID!) { model(id: $id) { deployments { edges { node { id kind } } }
         events(first: 500) { edges { node { type message promotion { id } } } } } }`,
        { id: dev.model.id },
      );
      // Exactly one copy was made: the development deployment and the promoted one.
      const published = model.model.deployments.edges.filter(
        (e: { node: { kind: string } }) => e.node.kind === "PUBLISHED",
      );
      expect(published.map((e: { node: { id: string } }) => e.node.id)).toEqual([done.deployment.id]);
      const promotionEvents = model.model.events.edges
        .map((e: { node: { type: string; message: string; promotion: { id: string } | null } }) => e.node)
        .filter((e: { promotion: { id: string } | null }) => e.promotion?.id === promotionId)
        .map((e: { type: string; message: string }) => `${e.type}: ${e.message.split(":")[0]}`);
      expect(promotionEvents[0]).toMatch(/^PROMOTION_STARTED/);
      expect(promotionEvents.at(-1)).toMatch(/^PROMOTION_FINISHED/);
      // No step change recorded twice, none lost.
      expect(new Set(promotionEvents).size).toBe(promotionEvents.length);
      expect(promotionEvents.filter((e: string) => e.startsWith("PROMOTION_STEP_CHANGED"))).toHaveLength(4);
      const answer = await predict(again, `/models/${dev.model.id}/predict`, {});
      expect(answer).toMatchObject({ status: 200, deploymentId: done.deployment.id });
    },
    120_000,
  );
});

// Traffic across members (API.md section 10): a request is counted by the member it entered, and the
// autoscaler and the canary add up every member's counts; a ramp survives the member that ran it.
// PostgreSQL only (vitest.config.ts): only it can have several members.
import pg from "pg";
import { afterEach, describe, expect, it } from "vitest";
import { gql, modelFolder, predict, pushFolder, waitForStatus } from "../support/client.ts";
import { startHangar, type TestHangar } from "../support/hangar.ts";
import { steadyClient, stopSteadyClients } from "../support/load.ts";
import { defaultMemberName, runningOn } from "../support/members.ts";
import { createEnvironment, finished, promoteTo, reachedStage } from "../support/promotions.ts";
import { waitFor } from "../support/wait.ts";

/** A model answering its version after `delayMs`, or failing every request. */
const MODEL = (version: number, opts: { delayMs?: number; fail?: boolean } = {}) => ({
  "model.mjs": `export default class M {
  async predict(input) {
    ${opts.fail ? `throw new Error("candidate failure");` : ""}
    await new Promise((r) => setTimeout(r, (input && input.sleepMs) || ${opts.delayMs ?? 2}));
    return { version: ${version} };
  }
}`,
});

const ENV = { HANGAR_AUTOSCALER_INTERVAL_MS: "100" };

const started: TestHangar[] = [];
async function members(count: number): Promise<TestHangar[]> {
  const first = await startHangar({ env: ENV });
  started.push(first);
  for (let i = 1; i < count; i++) started.push(await startHangar({ env: ENV, joining: first }));
  return started.slice(-count);
}

afterEach(async () => {
  await stopSteadyClients();
  for (const hangar of started.splice(0).reverse()) await hangar.dispose();
});

/** The name of the member driving the promotion (its lease), as the database says. */
async function driverOf(hangar: TestHangar, promotionId: string): Promise<string | null> {
  const client = new pg.Client({ connectionString: hangar.databaseUrl ?? "" });
  await client.connect();
  try {
    const { rows } = await client.query<{ name: string }>(
      `SELECT m.name FROM "Promotion" p JOIN "Member" m ON m.id = p."leaseOwner" WHERE p.id = $1`,
      [promotionId],
    );
    return rows[0]?.name ?? null;
  } finally {
    await client.end();
  }
}

/** A model with v1 serving in environment "live", ramping promotions on. */
async function liveModel(hangar: TestHangar, name: string, promotionSettings: Record<string, unknown>) {
  const first = await pushFolder(hangar, name, await modelFolder(MODEL(1)));
  await createEnvironment(hangar, {
    modelId: first.model.id,
    name: "live",
    promotionSettings: { rampUpWhilePromoting: true, ...promotionSettings },
  });
  const initial = await promoteTo(hangar, first.id, "live");
  expect((await finished(hangar, initial.id, { timeoutMs: 90_000 })).status).toBe("SUCCEEDED");
  return { modelId: first.model.id as string, path: `/models/${first.model.id}/environments/live/predict` };
}

async function candidate(hangar: TestHangar, name: string, files: Record<string, string>): Promise<string> {
  const deployment = await pushFolder(hangar, name, await modelFolder(files));
  await waitForStatus(hangar, deployment.id, "ACTIVE", 60_000);
  return deployment.id;
}

describe("counts shared by the members", () => {
  it("sums every member's answers in Deployment.metrics and Environment.metrics, while /metrics counts each member's own", async () => {
    const [a, b] = (await members(2)) as [TestHangar, TestHangar];
    const dep = await pushFolder(a, "figures", await modelFolder(MODEL(1)));
    await waitForStatus(a, dep.id, "ACTIVE", 60_000);
    const promotion = await promoteTo(a, dep.id);
    expect((await finished(a, promotion.id, { timeoutMs: 90_000 })).status).toBe("SUCCEEDED");
    const production = `/models/${dep.model.id}/predict`;
    const direct = `/models/${dep.model.id}/deployments/${dep.id}/predict`;
    // 3 through a's production path, 2 through b's, 4 through b's deployment path.
    for (let i = 0; i < 3; i++) expect((await predict(a, production, {})).status).toBe(200);
    for (let i = 0; i < 2; i++) expect((await predict(b, production, {})).status).toBe(200);
    for (let i = 0; i < 4; i++) expect((await predict(b, direct, {})).status).toBe(200);
    const query = `query($id: ID!, $modelId: ID!) {
      deployment(id: $id) { metrics(windowSeconds: 600) { requests errors } }
      environment(modelId: $modelId, name: "production") { metrics(windowSeconds: 600) { requests } }
    }`;
    // Each member writes its counts about every second; the asking member writes its own first.
    for (const asked of [a, b]) {
      await waitFor(
        async () => {
          const figures = await gql(asked, query, { id: dep.id, modelId: dep.model.id });
          return figures.deployment.metrics.requests === 9 && figures.environment.metrics.requests === 5;
        },
        { what: `every member's answers in ${asked === a ? "a" : "b"}'s figures` },
      );
    }
    const counted = async (hangar: TestHangar) => {
      const text = await (
        await fetch(`${hangar.url}/metrics`, { headers: { authorization: `Bearer ${hangar.key}` } })
      ).text();
      return text
        .split("\n")
        .filter((line) => line.startsWith("hangar_gateway_requests_total{") && line.includes(dep.id))
        .reduce((sum, line) => sum + Number(line.split(" ").at(-1)), 0);
    };
    expect(await counted(a)).toBe(3);
    expect(await counted(b)).toBe(6);
  });

  it("rolls a ramp back on the error rate when its traffic enters only a member that neither runs nor drives it", async () => {
    const all = await members(3);
    const [a] = all as [TestHangar];
    const { path } = await liveModel(a, "rate-elsewhere", {
      rampUpDurationSeconds: 30,
      errorRateThresholdPercent: 20,
    });
    const bad = await candidate(a, "rate-elsewhere", MODEL(2, { fail: true }));
    const promotion = await promoteTo(a, bad, "live");
    const ramping = await reachedStage(a, promotion.id, 1);
    const newDeployment = ramping.deployment.id as string;
    const runner = (await waitFor(async () => (await runningOn(a, newDeployment))[0] ?? null, {
      what: "the candidate's replica",
    })) as string;
    const driver = await waitFor(() => driverOf(a, promotion.id), { what: "the promotion's driver" });
    const entry = all.find(
      (m) => defaultMemberName(m) !== runner && defaultMemberName(m) !== driver,
    ) as TestHangar;
    // Every request enters `entry`, which hands the candidate's share to `runner`; before the counts were
    // shared, `driver` saw no answers of the candidate at all and passed every stage on no evidence.
    const client = steadyClient(entry, path, 3);
    const ended = await finished(a, promotion.id, { timeoutMs: 90_000 });
    await client.stop();
    expect(ended.status).toBe("FAILED");
    expect(ended.errorMessage).toMatch(
      /^canary stage \d+ \(\d+% of traffic\): \d+\.\d% of the new deployment's requests failed \(\d+ of \d+\), over the 20% threshold/,
    );
    // The premise held throughout: the driver never changed, and the entry ran none of the candidate.
    expect(await driverOf(a, promotion.id)).not.toBe(defaultMemberName(entry));
    const failed = client.answers.filter((answer) => answer.status !== 200);
    expect(failed.length).toBeGreaterThan(0);
    for (const answer of failed) expect(answer).toMatchObject({ status: 500, deploymentId: newDeployment });
  }, 240_000);

  it("scales on the requests that entered every member, not only the runner's own", async () => {
    const [a, b] = (await members(2)) as [TestHangar, TestHangar];
    const dep = await pushFolder(a, "scaled-by-all", await modelFolder(MODEL(1)));
    await waitForStatus(a, dep.id, "ACTIVE", 60_000);
    const set = await gql(
      a,
      `mutation($id: ID!, $settings: AutoscalingSettingsInput!) {
        updateAutoscalingSettings(input: { deploymentId: $id, settings: $settings }) { __typename ... on UserError { message } }
      }`,
      {
        id: dep.id,
        settings: {
          minReplica: 1,
          maxReplica: 4,
          concurrencyTarget: 1,
          targetUtilizationPercentage: 100,
          autoscalingWindow: 2,
          scaleDownDelay: 60,
        },
      },
    );
    expect(set.updateAutoscalingSettings.__typename).toBe("Deployment");
    const path = `/models/${dep.model.id}/deployments/${dep.id}/predict`;
    // Three requests always in flight through each member: the runner alone sees three (three
    // replicas), the two together six (the maximum, four).
    let stop = false;
    const statuses: number[] = [];
    const loops = [a, b].flatMap((member) =>
      Array.from({ length: 3 }, async () => {
        while (!stop) statuses.push((await predict(member, path, { sleepMs: 200 })).status);
      }),
    );
    try {
      await waitFor(async () => (await runningOn(a, dep.id)).length === 4, {
        what: "four replicas ready",
        timeoutMs: 45_000,
      });
    } finally {
      stop = true;
      await Promise.all(loops);
    }
    expect(statuses.filter((s) => s !== 200)).toEqual([]);
  }, 180_000);
});

describe("a ramp whose member dies", () => {
  it("completes on the survivor after a SIGKILL mid-ramp: each stage once, no deployment made twice", async () => {
    const [a, b] = (await members(2)) as [TestHangar, TestHangar];
    const { modelId, path } = await liveModel(a, "ramp-survives", { rampUpDurationSeconds: 30 });
    const next = await candidate(a, "ramp-survives", MODEL(2));
    const promotion = await promoteTo(a, next, "live");
    const ramping = await reachedStage(a, promotion.id, 2);
    const newDeployment = ramping.deployment.id as string;
    const runner = await waitFor(async () => (await runningOn(a, newDeployment))[0] ?? null, {
      what: "the new deployment's replica",
    });
    const [dead, alive] = runner === defaultMemberName(a) ? [a, b] : [b, a];
    const deploymentsBefore = await deploymentIds(alive, modelId);
    await dead.kill();
    const killedAt = Date.now();
    // The survivor serves within 20 s (API.md section 10), whichever deployment a request is routed to.
    const client = steadyClient(alive, path, 2);
    await waitFor(
      async () => {
        const answer = await predict(alive, path, {});
        return (
          answer.status === 200 &&
          answer.deploymentId === newDeployment &&
          (await runningOn(alive, newDeployment)).includes(defaultMemberName(alive))
        );
      },
      { what: "the survivor serving the new deployment", timeoutMs: 20_000 },
    );
    expect(Date.now() - killedAt).toBeLessThan(20_000);
    const ended = await finished(alive, promotion.id, { timeoutMs: 120_000 });
    await client.stop();
    expect(ended.status).toBe("SUCCEEDED");
    expect(ended.deployment.id).toBe(newDeployment);
    // Each stage's event once, in order, whoever wrote it.
    const { model } = await gql(
      alive,
      `query($id: ID!) { model(id: $id) { events(first: 500) { edges { node { type message promotion { id } } } } } }`,
      { id: modelId },
    );
    const stages = model.events.edges
      .map((e: { node: { type: string; message: string; promotion: { id: string } | null } }) => e.node)
      .filter(
        (e: { type: string; promotion: { id: string } | null }) =>
          e.type === "CANARY_STAGE_CHANGED" && e.promotion?.id === promotion.id,
      )
      .map((e: { message: string }) => /(\d+)% of traffic/.exec(e.message)?.[1]);
    expect(stages).toEqual(["10", "20", "30", "40", "50", "60", "70", "80", "90", "100"]);
    // No deployment made twice: the survivor resumed the promotion, it did not create its deployment again.
    expect(await deploymentIds(alive, modelId)).toEqual(deploymentsBefore);
    expect(client.answers.at(-1)).toMatchObject({ status: 200, deploymentId: newDeployment });
  }, 240_000);
});

async function deploymentIds(hangar: TestHangar, modelId: string): Promise<string[]> {
  const { model } = await gql(
    hangar,
    `query($id: ID!) { model(id: $id) { deployments(first: 100) { edges { node { id } } } } }`,
    { id: modelId },
  );
  return model.deployments.edges.map((e: { node: { id: string } }) => e.node.id).sort();
}

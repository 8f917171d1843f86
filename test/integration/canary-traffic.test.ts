import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import {
  gql,
  modelFolder,
  predict,
  pushFolder,
  subscribe,
  waitForStatus,
  wsClient,
} from "../support/client.ts";
import { startHangar, type TestHangar } from "../support/hangar.ts";
import { type Answer, steadyClient, stopSteadyClients } from "../support/load.ts";
import {
  control,
  createEnvironment,
  finished,
  promoteTo,
  promotionOf,
  reachedStage,
} from "../support/promotions.ts";
import { waitFor } from "../support/wait.ts";

/** A model answering its version after `delayMs`; `failEvery` > 0 makes every n-th request after the `failAfter`-th throw. */
const MODEL = (
  version: number,
  opts: { delayMs?: number; failEvery?: number; failAfter?: number; crash?: boolean } = {},
) => ({
  "model.mjs": `let n = 0;
export default class M {
  async predict() {
    n++;
    ${opts.crash ? "process.exit(3);" : ""}
    if (${opts.failEvery ?? 0} > 0 && n > ${opts.failAfter ?? 0} && n % ${opts.failEvery ?? 0} === 0)
      throw new Error("candidate failure " + n);
    await new Promise((r) => setTimeout(r, ${opts.delayMs ?? 2}));
    return { version: ${version} };
  }
}`,
});

let hangar: TestHangar;

beforeAll(async () => {
  hangar = await startHangar({ env: { HANGAR_AUTOSCALER_INTERVAL_MS: "100" } });
});

afterEach(stopSteadyClients);

afterAll(async () => {
  await hangar?.dispose();
});

/** A model with v1 serving in environment "live" (ramp-up on), ready for a candidate. */
async function liveModel(
  name: string,
  settings: { promotionSettings: Record<string, unknown>; autoscalingSettings?: Record<string, unknown> },
  delayMs = 2,
) {
  const first = await pushFolder(hangar, name, await modelFolder(MODEL(1, { delayMs })));
  const envId = await createEnvironment(hangar, {
    modelId: first.model.id,
    name: "live",
    promotionSettings: { rampUpWhilePromoting: true, ...settings.promotionSettings },
    autoscalingSettings: settings.autoscalingSettings,
  });
  const initial = await promoteTo(hangar, first.id, "live");
  expect((await finished(hangar, initial.id)).status).toBe("SUCCEEDED");
  return {
    first,
    envId,
    modelId: first.model.id as string,
    path: `/models/${first.model.id}/environments/live/predict`,
  };
}

async function candidate(name: string, files: Record<string, string>) {
  const deployment = await pushFolder(hangar, name, await modelFolder(files));
  await waitForStatus(hangar, deployment.id, "ACTIVE");
  return deployment.id as string;
}

async function lastEventCursor(modelId: string): Promise<string> {
  const events = await gql(
    hangar,
    `query($id: ID!) { model(id: $id) { events(first: 500) { edges { cursor } } } }`,
    {
      id: modelId,
    },
  );
  return events.model.events.edges.at(-1).cursor;
}

const failures = (answers: Answer[]) => answers.filter((a) => a.status !== 200);

describe("canary under a steady client", () => {
  it("serves every request through a full ramp, a graceful cancel, a cancel and a pause/resume", async () => {
    const { first, envId, modelId, path } = await liveModel("steady-ramp", {
      promotionSettings: { rampUpDurationSeconds: 4 },
    });
    const client = steadyClient(hangar, path, 3);
    await client.more(20);

    // A full ramp, watched on modelEvents from a cursor: a CANARY_STAGE_CHANGED for every stage, in order.
    const ws = wsClient(hangar);
    const events = subscribe(
      ws,
      `subscription($id: ID!, $after: String) { modelEvents(modelId: $id, after: $after) { type message promotion { id } } }`,
      { id: modelId, after: await lastEventCursor(modelId) },
    );
    const second = await candidate("steady-ramp", MODEL(2));
    const ramp = await promoteTo(hangar, second, "live");
    expect((await finished(hangar, ramp.id)).status).toBe("SUCCEEDED");
    await events.until((items) => items.some((i) => i.modelEvents.type === "PROMOTION_FINISHED"));
    const stages = events.items
      .map((i) => i.modelEvents)
      .filter((e) => e.type === "CANARY_STAGE_CHANGED" && e.promotion?.id === ramp.id)
      .map((e) => /(\d+)% of traffic/.exec(e.message)?.[1]);
    expect(stages).toEqual(["10", "20", "30", "40", "50", "60", "70", "80", "90", "100"]);
    await ws.dispose();
    await client.more(20);

    // The rest acts at a stage the ramp has reached, before it ends: a longer ramp leaves seconds, not
    // a fraction of one, between the two, so a busy machine's slow poll does not see the ramp over.
    const slower = await gql(
      hangar,
      `mutation($id: ID!) { updateEnvironment(input: { environmentId: $id, promotionSettings: { rampUpDurationSeconds: 10 } }) { __typename } }`,
      { id: envId },
    );
    expect(slower.updateEnvironment.__typename).toBe("Environment");

    // A graceful cancel steps back down, stage by stage, to CANCELED.
    const third = await candidate("steady-ramp", MODEL(3));
    const graceful = await promoteTo(hangar, third, "live");
    const progressClient = wsClient(hangar);
    const progress = subscribe(
      progressClient,
      `subscription($id: ID!) { promotionProgress(promotionId: $id) { status canaryStage percentTrafficToNewVersion } }`,
      { id: graceful.id },
    );
    const at = (await reachedStage(hangar, graceful.id, 3)).canaryStage as number;
    const rampingDown = await control(hangar, "cancelPromotion", envId, ", graceful: true");
    expect(rampingDown.status).toBe("RAMPING_DOWN");
    expect(await finished(hangar, graceful.id)).toMatchObject({
      status: "CANCELED",
      percentTrafficToNewVersion: 0,
    });
    await waitFor(() => progress.completed, { what: "promotionProgress to complete" });
    const down = progress.items
      .map((i) => i.promotionProgress)
      .filter((p) => p.status === "RAMPING_DOWN")
      .map((p) => p.canaryStage);
    // From the stage it was in (or the next, had the ramp moved on meanwhile) down to 1, one at a time.
    expect(down[0]).toBeGreaterThanOrEqual(at);
    expect(down).toEqual(Array.from({ length: down[0] }, (_, k) => down[0] - k));
    await progressClient.dispose();
    await client.more(20);

    // An immediate cancel mid-ramp.
    const canceled = await promoteTo(hangar, third, "live");
    await reachedStage(hangar, canceled.id, 2);
    expect(await control(hangar, "cancelPromotion", envId)).toMatchObject({
      status: "CANCELED",
      percentTrafficToNewVersion: 0,
    });
    await client.more(20);

    // Pause holds the split; resume carries on from the same stage to the end.
    const paused = await promoteTo(hangar, third, "live");
    const stage = (await reachedStage(hangar, paused.id, 2)).canaryStage;
    const held = await control(hangar, "pausePromotion", envId);
    expect(held.status).toBe("PAUSED");
    await client.more(60);
    expect(await promotionOf(hangar, paused.id)).toMatchObject({
      status: "PAUSED",
      canaryStage: held.canaryStage,
    });
    expect(held.canaryStage).toBeGreaterThanOrEqual(stage);
    const resumed = await control(hangar, "resumePromotion", envId);
    expect(resumed).toMatchObject({ status: "RAMPING_UP", canaryStage: held.canaryStage });
    // The ramp's clock runs again (the full ramp above showed where it leads); rolled forward from there.
    await reachedStage(hangar, paused.id, held.canaryStage + 1);
    expect(await control(hangar, "forceRollForward", envId)).toMatchObject({ __typename: "Promotion" });
    expect((await finished(hangar, paused.id)).status).toBe("SUCCEEDED");
    await client.more(20);
    await client.stop();

    expect(failures(client.answers)).toEqual([]);
    const served = new Set(client.answers.map((a) => a.deploymentId));
    expect([...served].sort()).toEqual([first.id, second, third].sort());
    // After the last promotion, the newest deployment serves everything.
    expect((await predict(hangar, path, {})).deploymentId).toBe(third);
  }, 180_000); // four promotions in a row, each ramping over 4 s with traffic running
});

describe("automatic rollback", () => {
  it("fails the promotion when the candidate's error rate in a stage exceeds the threshold", async () => {
    const { first, path } = await liveModel("rollback-rate", {
      promotionSettings: { rampUpDurationSeconds: 10, errorRateThresholdPercent: 20 },
    });
    const client = steadyClient(hangar, path, 3);
    await client.more(20);
    const bad = await candidate("rollback-rate", MODEL(2, { failEvery: 2 }));
    const promotion = await promoteTo(hangar, bad, "live");
    const ended = await finished(hangar, promotion.id);
    expect(ended.status).toBe("FAILED");
    expect(ended.percentTrafficToNewVersion).toBe(0);
    // It says which stage and what rate: half of the candidate's answers failed.
    expect(ended.errorMessage).toMatch(
      /^canary stage (\d+) \((\d+)% of traffic\): (\d+\.\d)% of the new deployment's requests failed \(\d+ of \d+\), over the 20% threshold/,
    );
    const [, failedStage, , rate] =
      /^canary stage (\d+) \((\d+)%[^:]*: (\d+\.\d)%/.exec(ended.errorMessage) ?? [];
    expect(Number(failedStage)).toBeGreaterThanOrEqual(1);
    expect(Number(failedStage)).toBeLessThanOrEqual(10);
    expect(Number(rate)).toBeGreaterThan(20);
    const atEnd = client.answers.length;
    await client.more(30);
    await client.stop();
    // The only failures are the candidate's own, and once it failed everything is back on v1.
    for (const answer of failures(client.answers)) {
      expect(answer).toMatchObject({ status: 500, deploymentId: bad, errorCode: "application_error" });
    }
    expect(failures(client.answers).length).toBeGreaterThan(0);
    // Requests already routed when the promotion ended may still reach the candidate; after that, none.
    const later = client.answers.slice(atEnd + 6);
    expect(later.length).toBeGreaterThanOrEqual(20);
    expect(new Set(later.map((a) => a.deploymentId))).toEqual(new Set([first.id]));
  });

  it("lets a candidate through whose error rate stays under the threshold", async () => {
    // A stage is judged on every answer it had, however few: a stage whose only answer was a
    // failure would be 100%. Stages long enough, a client busy enough and the failures starting
    // after a few successes keep every judged stage at several answers even on a loaded machine.
    const { path } = await liveModel("rollback-under", {
      promotionSettings: { rampUpDurationSeconds: 6, errorRateThresholdPercent: 50 },
    });
    const client = steadyClient(hangar, path, 4);
    const flaky = await candidate("rollback-under", MODEL(2, { failEvery: 5, failAfter: 10 }));
    const promotion = await promoteTo(hangar, flaky, "live");
    expect((await finished(hangar, promotion.id)).status).toBe("SUCCEEDED");
    await client.stop();
    // It did fail now and then (so the threshold was what let it through), and only it did.
    expect(failures(client.answers).length).toBeGreaterThan(0);
    for (const answer of failures(client.answers)) expect(answer.deploymentId).toBe(flaky);
  });

  it("fails the promotion when the candidate becomes UNHEALTHY mid-ramp, threshold or not", async () => {
    const { first, path } = await liveModel("rollback-unhealthy", {
      promotionSettings: { rampUpDurationSeconds: 30 },
    });
    const client = steadyClient(hangar, path, 3);
    const crashing = await candidate("rollback-unhealthy", MODEL(2, { crash: true }));
    const promotion = await promoteTo(hangar, crashing, "live");
    const ended = await finished(hangar, promotion.id);
    expect(ended.status).toBe("FAILED");
    expect(ended.errorMessage).toMatch(/became UNHEALTHY during the ramp/);
    await client.more(30);
    await client.stop();
    for (const answer of failures(client.answers)) expect(answer.deploymentId).toBe(crashing);
    expect(client.answers.at(-1)?.deploymentId).toBe(first.id);
  });
});

describe("autoscaling while ramping", () => {
  it("scales both deployments on their own share of the traffic", async () => {
    const autoscalingSettings = {
      minReplica: 1,
      maxReplica: 4,
      concurrencyTarget: 1,
      targetUtilizationPercentage: 100,
      autoscalingWindow: 2,
      scaleDownDelay: 60,
    };
    const { first, envId, path } = await liveModel(
      "ramp-scaling",
      { promotionSettings: { rampUpDurationSeconds: 20 } },
      150,
    );
    // The serving deployment's settings (and so the environment's); the candidate takes them on promotion.
    const updated = await gql(
      hangar,
      `mutation($input: UpdateAutoscalingInput!) { updateAutoscalingSettings(input: $input) { __typename } }`,
      { input: { deploymentId: first.id, settings: autoscalingSettings } },
    );
    expect(updated.updateAutoscalingSettings.__typename).toBe("Deployment");
    const next = await candidate("ramp-scaling", MODEL(2, { delayMs: 150 }));
    const promotion = await promoteTo(hangar, next, "live");
    await reachedStage(hangar, promotion.id, 5);
    expect((await control(hangar, "pausePromotion", envId)).status).toBe("PAUSED");
    const paused = await promotionOf(hangar, promotion.id);
    // About six requests in flight, split by the stage's share: each side needs replicas of its own.
    const client = steadyClient(hangar, path, 6);
    const replicas = async (id: string) =>
      (await gql(hangar, `query($id: ID!) { deployment(id: $id) { activeReplicaCount } }`, { id })).deployment
        .activeReplicaCount as number;
    let last: number[] = [];
    const scaled = await waitFor(
      async () => {
        const counts = [await replicas(first.id), await replicas(next)];
        last = counts;
        return counts.every((n) => n >= 2) ? counts : null;
      },
      { what: "both deployments to scale up", timeoutMs: 45_000 },
    ).catch((error: Error) => {
      throw new Error(`${error.message}: replicas ${last.join(" / ")}, ${client.answers.length} answers`);
    });
    expect(scaled.every((n) => n <= autoscalingSettings.maxReplica)).toBe(true);
    const shareToNew =
      client.answers.filter((a) => a.deploymentId === next).length / Math.max(1, client.answers.length);
    expect(Math.abs(shareToNew * 100 - paused.percentTrafficToNewVersion)).toBeLessThanOrEqual(15);
    expect((await control(hangar, "cancelCanary", envId)).status).toBe("CANCELED");
    await client.stop();
    expect(failures(client.answers)).toEqual([]);
  }, 120_000);
});

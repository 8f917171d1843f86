import { afterAll, beforeAll, describe, expect, it } from "vitest";
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
import { eventsAfter, latestCursor } from "../support/history.ts";
import { control, createEnvironment, finished, promoteTo, reachedStage } from "../support/promotions.ts";
import { waitFor } from "../support/wait.ts";

const MODEL = (version: number) => ({
  "model.mjs": `export default class M { predict() { return { version: ${version} }; } }`,
});

let hangar: TestHangar;

beforeAll(async () => {
  hangar = await startHangar({ env: { HANGAR_AUTOSCALER_INTERVAL_MS: "100" } });
});

afterAll(async () => {
  await hangar?.dispose();
});

async function setup(name: string, rampUpDurationSeconds: number) {
  const first = await pushFolder(hangar, name, await modelFolder(MODEL(1)));
  const envId = await createEnvironment(hangar, {
    modelId: first.model.id,
    name: "live",
    promotionSettings: { rampUpWhilePromoting: true, rampUpDurationSeconds },
  });
  const initial = await promoteTo(hangar, first.id, "live");
  // Nothing served before: nothing to ramp from, traffic moves at once.
  expect(initial).toMatchObject({ canaryStage: null, canaryStages: null });
  await finished(hangar, initial.id);
  const second = await pushFolder(hangar, name, await modelFolder(MODEL(2)));
  await waitForStatus(hangar, second.id, "ACTIVE");
  return {
    first,
    second,
    envId,
    path: `/models/${first.model.id}/environments/live/predict`,
  };
}

describe("canary ramp", () => {
  it("moves traffic in ten stages, each in order, then activates", async () => {
    const { second } = await setup("canary-stages", 3);
    // Everything the promotion writes comes after this cursor: the whole ramp can be replayed.
    const cursor = await latestCursor(hangar, second.model.id);
    const started = await promoteTo(hangar, second.id, "live");
    expect(started).toMatchObject({ canaryStages: 10 });
    const client = wsClient(hangar);
    const progress = subscribe(
      client,
      `subscription($id: ID!) { promotionProgress(promotionId: $id) { status canaryStage percentTrafficToNewVersion } }`,
      { id: started.id },
    );
    await waitFor(() => progress.completed, { what: "the ramp to finish" });
    // Every stage once, in order (a step change within a stage, such as ACTIVATE starting, repeats it).
    const stages = progress.items
      .map((i) => i.promotionProgress)
      .filter((p) => p.status === "RAMPING_UP")
      .map((p) => [p.canaryStage, p.percentTrafficToNewVersion])
      .filter((stage, i, all) => i === 0 || stage[0] !== all[i - 1]?.[0]);
    const expected = Array.from({ length: 10 }, (_, k) => [k + 1, (k + 1) * 10]);
    // From the subscription's first message on, every stage in order (none, when it began after the
    // ramp on a loaded machine: the replay below checks the whole ramp from before it began).
    const first = stages[0]?.[0];
    expect(stages).toEqual(first === undefined ? [] : expected.slice(first - 1));
    expect(progress.items.at(-1).promotionProgress).toMatchObject({
      status: "SUCCEEDED",
      canaryStage: 10,
      percentTrafficToNewVersion: 100,
    });
    // Replayed from before the promotion began: each of the ten stages announced once, in order, then the end.
    const written = (await eventsAfter(hangar, second.model.id, cursor)).filter(
      (event) =>
        event.promotion?.id === started.id &&
        (event.type === "CANARY_STAGE_CHANGED" || event.type === "PROMOTION_FINISHED"),
    );
    expect(written.map((event) => event.message?.replace(/ of traffic.*/, ""))).toEqual([
      ...Array.from({ length: 10 }, (_, k) => `canary stage ${k + 1} of 10: ${(k + 1) * 10}%`),
      expect.stringMatching(/^promotion succeeded: 'live' serves /),
    ]);
    await client.dispose();
  });

  it("splits a paused stage's traffic by its percentage, then resumes to the end", async () => {
    const { first, second, envId, path } = await setup("canary-split", 20);
    const started = await promoteTo(hangar, second.id, "live");
    await reachedStage(hangar, started.id, 2);
    const paused = await control(hangar, "pausePromotion", envId);
    expect(paused.status).toBe("PAUSED");
    let toNew = 0;
    for (let batch = 0; batch < 20; batch++) {
      const answers = await Promise.all(Array.from({ length: 50 }, () => predict(hangar, path, {})));
      for (const answer of answers) {
        expect(answer.status).toBe(200);
        if (answer.deploymentId === second.id) toNew++;
        else expect(answer.deploymentId).toBe(first.id);
      }
    }
    expect(Math.abs(toNew / 10 - paused.percentTrafficToNewVersion)).toBeLessThanOrEqual(5);
    await control(hangar, "forceRollForward", envId);
    expect(await finished(hangar, started.id)).toMatchObject({
      status: "SUCCEEDED",
      percentTrafficToNewVersion: 100,
    });
    expect((await predict(hangar, path, {})).deploymentId).toBe(second.id);
  });

  it("cancels a ramp at once with cancelCanary, all traffic back on the previous deployment", async () => {
    const { first, second, envId, path } = await setup("canary-cancel", 20);
    const started = await promoteTo(hangar, second.id, "live");
    await reachedStage(hangar, started.id, 1);
    const canceled = await control(hangar, "cancelCanary", envId);
    expect(canceled).toMatchObject({ status: "CANCELED", percentTrafficToNewVersion: 0 });
    const answers = await Promise.all(Array.from({ length: 20 }, () => predict(hangar, path, {})));
    expect(new Set(answers.map((a) => a.deploymentId))).toEqual(new Set([first.id]));
  });
});

describe("graceful cancel", () => {
  it("steps back down over the ramp time spent so far, stage by stage", async () => {
    const { second, envId, first } = await setup("canary-ramp-down", 10);
    const started = await promoteTo(hangar, second.id, "live");
    await reachedStage(hangar, started.id, 4);
    const canceled = await control(hangar, "cancelPromotion", envId, ", graceful: true");
    expect(canceled.status).toBe("RAMPING_DOWN");
    expect((await finished(hangar, started.id)).status).toBe("CANCELED");
    // The server's own clock, from the events: ramp start, the cancel, the end.
    const { model } = await gql(
      hangar,
      "query($id: ID!) { model(id: $id) { events(first: 500) { edges { node { type at message promotion { id } } } } } }",
      { id: first.model.id },
    );
    const events = model.events.edges
      .map(
        (e: { node: { type: string; at: string; message: string; promotion: { id: string } | null } }) =>
          e.node,
      )
      .filter((e: { promotion: { id: string } | null }) => e.promotion?.id === started.id);
    const at = (match: (e: { type: string; message: string }) => boolean) =>
      Date.parse(events.find(match)?.at ?? "");
    const rampStart = at((e) => e.type === "CANARY_STAGE_CHANGED" && /stage 1\b/.test(e.message));
    const cancel = at((e) => e.message.startsWith("ramping down before cancelling"));
    const end = at((e) => e.type === "PROMOTION_FINISHED");
    const rampedMs = cancel - rampStart;
    const downMs = end - cancel;
    expect(rampedMs).toBeGreaterThan(2_500);
    // As long as the way up (each step waits for a controller tick, so a little longer, never shorter).
    expect(downMs).toBeGreaterThanOrEqual(rampedMs * 0.9);
    expect(downMs).toBeLessThan(rampedMs + 5_000);
  }, 90_000);
});

describe("canary durability", () => {
  it("resumes a ramp killed mid-stage at that stage, not from the start and not ahead", async () => {
    const killed = await startHangar({
      env: { HANGAR_AUTOSCALER_INTERVAL_MS: "100", HANGAR_FAILPOINT: "promotion:canary-stage-4" },
    });
    let again: TestHangar | null = null;
    try {
      const first = await pushFolder(killed, "canary-crash", await modelFolder(MODEL(1)));
      await createEnvironment(killed, {
        modelId: first.model.id,
        name: "live",
        promotionSettings: { rampUpWhilePromoting: true, rampUpDurationSeconds: 5 },
      });
      const succeeded = async (server: TestHangar, id: string) =>
        expect((await finished(server, id)).status).toBe("SUCCEEDED");
      await succeeded(killed, (await promoteTo(killed, first.id, "live")).id);
      const second = await pushFolder(killed, "canary-crash", await modelFolder(MODEL(2)));
      await waitForStatus(killed, second.id, "ACTIVE");
      const promotionId = (await promoteTo(killed, second.id, "live")).id;
      // The failpoint kills Hangar (SIGKILL) right after stage 4 is committed.
      expect(await killed.exited).toBeNull();
      again = await killed.restart();
      await succeeded(again, promotionId);
      const events = await gql(
        again,
        `query($id: ID!) { model(id: $id) { events(first: 500) { edges { node { type message promotion { id } } } } } }`,
        { id: first.model.id },
      );
      const stages = events.model.events.edges
        .map((e: { node: { type: string; message: string; promotion: { id: string } | null } }) => e.node)
        .filter(
          (e: { type: string; promotion: { id: string } | null }) =>
            e.type === "CANARY_STAGE_CHANGED" && e.promotion?.id === promotionId,
        )
        .map((e: { message: string }) => Number(/stage (\d+)/.exec(e.message)?.[1]));
      // Each stage exactly once, in order: the ramp went on from stage 4, neither starting over nor skipping.
      expect(stages).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
    } finally {
      await again?.dispose();
      await killed.dispose();
    }
  }, 120_000);
});

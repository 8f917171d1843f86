/**
 * Shared subscriptions over graphql-ws, against the real server: many clients watching one
 * promotion share one execution, and each still gets the promotion as it is when it joins (nested
 * objects included), then every later change in order, and the end; clients leaving do not disturb
 * the others; once all have left, a new subscriber starts from the state as it is then. (That the
 * execution itself stops is not visible to a client: test/unit/shared-subscriptions.test.ts.)
 */
import type { Client } from "graphql-ws";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { gql, modelFolder, pushFolder, subscribe, waitForStatus, wsClient } from "../support/client.ts";
import { startHangar, type TestHangar } from "../support/hangar.ts";
import { createEnvironment, finished, promoteTo } from "../support/promotions.ts";
import { waitFor } from "../support/wait.ts";

const MODEL = (version: number) => ({
  "model.mjs": `export default class M { predict() { return { version: ${version} }; } }`,
});

const PROGRESS = `subscription($id: ID!) {
  promotionProgress(promotionId: $id) { status canaryStage percentTrafficToNewVersion steps { name status } }
}`;

let hangar: TestHangar;
const clients: Client[] = [];

beforeAll(async () => {
  hangar = await startHangar({ env: { HANGAR_AUTOSCALER_INTERVAL_MS: "100" } });
});

afterAll(async () => {
  await Promise.all(clients.map((c) => c.dispose()));
  await hangar?.dispose();
});

function client(): Client {
  const c = wsClient(hangar);
  clients.push(c);
  return c;
}

/** A model served in environment "live" by v1, with v2 pushed and ready to be ramped in. */
async function rampReady(name: string, rampUpDurationSeconds: number) {
  const first = await pushFolder(hangar, name, await modelFolder(MODEL(1)));
  const environmentId = await createEnvironment(hangar, {
    modelId: first.model.id,
    name: "live",
    promotionSettings: { rampUpWhilePromoting: true, rampUpDurationSeconds },
  });
  await finished(hangar, (await promoteTo(hangar, first.id, "live")).id);
  const second = await pushFolder(hangar, name, await modelFolder(MODEL(2)));
  await waitForStatus(hangar, second.id, "ACTIVE");
  return { deploymentId: second.id as string, environmentId };
}

const stageOf = (item: { promotionProgress: { canaryStage: number | null } }) =>
  item.promotionProgress.canaryStage ?? 0;

describe("shared subscriptions", () => {
  it("gives 50 clients of one promotion, some joining mid-ramp, the state on joining then every stage in order", async () => {
    const { id } = await promoteTo(hangar, (await rampReady("shared-ramp", 8)).deploymentId, "live");
    const early = Array.from({ length: 30 }, () => subscribe(client(), PROGRESS, { id }));
    // Join once the early clients have been sent stage 3: the joiners must start there, not before.
    await early[0]?.until((items) => items.some((i) => stageOf(i) >= 3));
    const seenBeforeJoining = Math.max(...(early[0]?.items ?? []).map(stageOf));
    const late = Array.from({ length: 20 }, () => subscribe(client(), PROGRESS, { id }));
    // Five early clients leave mid-ramp; the rest must not notice.
    const leaving = early.slice(0, 5);
    for (const watcher of leaving) watcher.dispose();
    const staying = [...early.slice(5), ...late];
    await waitFor(() => staying.every((w) => w.completed), {
      timeoutMs: 60_000,
      what: "every client to end",
    });

    const json = (items: unknown[]) => items.map((i) => JSON.stringify(i));
    const longest = json(staying.reduce((a, b) => (b.items.length > a.items.length ? b : a)).items);
    for (const watcher of staying) {
      expect(watcher.errors).toEqual([]);
      // The state on joining, then every later change in order: a contiguous tail of the whole run.
      const items = json(watcher.items);
      expect(longest.slice(longest.length - items.length)).toEqual(items);
      expect(watcher.items.at(-1).promotionProgress).toMatchObject({ status: "SUCCEEDED", canaryStage: 10 });
      const stages = watcher.items.map(stageOf);
      const from = stages[0] ?? 0;
      expect(new Set(stages)).toEqual(new Set(Array.from({ length: 11 - from }, (_, k) => from + k)));
    }
    for (const watcher of late) expect(stageOf(watcher.items[0])).toBeGreaterThanOrEqual(seenBeforeJoining);

    // A subscriber after the end starts afresh and gets the final state, then the end.
    const after = subscribe(client(), PROGRESS, { id });
    await waitFor(() => after.completed, { what: "the late subscription to end" });
    expect(after.items.map((i) => i.promotionProgress.status)).toEqual(["SUCCEEDED"]);
  });

  it("gives a joiner the promotion's nested objects as they are when it joins, not as at its last change", async () => {
    const ready = await rampReady("shared-nested", 3600);
    const { id } = await promoteTo(hangar, ready.deploymentId, "live");
    const query = `subscription($id: ID!) {
      promotionProgress(promotionId: $id) { status deployment { id autoscalingSettings { maxReplica } } }
    }`;
    const first = subscribe(client(), query, { id });
    // Stage 1 of a ramp an hour long: no promotion change for the next six minutes.
    await first.until((items) => items.some((i) => i.promotionProgress.status === "RAMPING_UP"));
    const { deployment } = first.items.at(-1).promotionProgress;
    // The deployment being ramped in changes; the promotion does not (no promotion event).
    const maxReplica = deployment.autoscalingSettings.maxReplica + 2;
    const updated = await gql(
      hangar,
      `mutation($id: ID!, $settings: AutoscalingSettingsInput!) {
        updateAutoscalingSettings(input: { deploymentId: $id, settings: $settings }) {
          __typename ... on UserError { code message }
        }
      }`,
      { id: deployment.id, settings: { maxReplica } },
    );
    expect(updated.updateAutoscalingSettings).toEqual({ __typename: "Deployment" });
    const joiner = subscribe(client(), query, { id });
    await joiner.until((items) => items.length > 0);
    expect(joiner.items[0].promotionProgress).toEqual({
      status: "RAMPING_UP",
      deployment: { id: deployment.id, autoscalingSettings: { maxReplica } },
    });
    await gql(hangar, `mutation($id: ID!) { cancelPromotion(environmentId: $id) { __typename } }`, {
      id: ready.environmentId,
    });
    await waitFor(() => first.completed && joiner.completed, { what: "both subscriptions to end" });
    // The cancel reached both, the same, and nothing else was sent meanwhile.
    expect(joiner.items.slice(1)).toEqual(first.items.slice(first.items.length - (joiner.items.length - 1)));
    expect(joiner.items.at(-1).promotionProgress.status).toBe("CANCELED");
    expect(first.errors).toEqual([]);
    expect(joiner.errors).toEqual([]);
  });

  it("keeps serving the last subscriber when the others leave, and starts afresh once all have left", async () => {
    const first = await pushFolder(hangar, "shared-status", await modelFolder(MODEL(1)));
    await waitForStatus(hangar, first.id, "ACTIVE");
    const query = `subscription($id: ID!) { deploymentStatus(deploymentId: $id) { id status } }`;
    const watchers = Array.from({ length: 10 }, () => subscribe(client(), query, { id: first.id }));
    await Promise.all(watchers.map((w) => w.until((items) => items.length > 0)));
    for (const watcher of watchers) {
      expect(watcher.items[0].deploymentStatus).toEqual({ id: first.id, status: "ACTIVE" });
    }
    for (const watcher of watchers.slice(0, 9)) watcher.dispose();
    // The one left still gets changes.
    const last = watchers[9];
    const set = (state: "activate" | "deactivate") =>
      gql(hangar, `mutation($id: ID!) { ${state}Deployment(id: $id) { __typename } }`, { id: first.id });
    await set("deactivate");
    await last?.until((items) => items.some((i) => i.deploymentStatus.status === "INACTIVE"));
    last?.dispose();
    // With everyone gone, a change; a new subscriber then gets the deployment as it is now, then its changes.
    await set("activate");
    await waitForStatus(hangar, first.id, "ACTIVE");
    const again = subscribe(client(), query, { id: first.id });
    await again.until((items) => items.length > 0);
    expect(again.items[0].deploymentStatus).toEqual({ id: first.id, status: "ACTIVE" });
    await set("deactivate");
    await again.until((items) => items.some((i) => i.deploymentStatus.status === "INACTIVE"));
    expect(again.errors).toEqual([]);
  });
});

/**
 * Shared subscriptions over graphql-ws, against the real server: many clients watching one
 * promotion share one execution, and each still gets the promotion as it is when it joins, then
 * every later change in order, and the end; clients leaving do not disturb the others; the shared
 * execution stops when its last subscriber leaves (the server's debug log says so).
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
  // Debug level: the server logs when a shared execution starts and stops.
  hangar = await startHangar({ env: { HANGAR_AUTOSCALER_INTERVAL_MS: "100", HANGAR_LOG_LEVEL: "debug" } });
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

/** The server's debug lines about shared executions of one field. */
function sharedLog(field: string): { msg: string; reason?: string }[] {
  return hangar
    .output()
    .split("\n")
    .filter((line) => line.includes('"shared subscription'))
    .map((line) => JSON.parse(line) as { msg: string; field: string; reason?: string })
    .filter((entry) => entry.field === field);
}

/** A model served in environment "live" by v1, with v2 pushed and ready to be ramped in. */
async function rampReady(name: string, rampUpDurationSeconds: number): Promise<string> {
  const first = await pushFolder(hangar, name, await modelFolder(MODEL(1)));
  await createEnvironment(hangar, {
    modelId: first.model.id,
    name: "live",
    promotionSettings: { rampUpWhilePromoting: true, rampUpDurationSeconds },
  });
  await finished(hangar, (await promoteTo(hangar, first.id, "live")).id);
  const second = await pushFolder(hangar, name, await modelFolder(MODEL(2)));
  await waitForStatus(hangar, second.id, "ACTIVE");
  return second.id;
}

const stageOf = (item: { promotionProgress: { canaryStage: number | null } }) =>
  item.promotionProgress.canaryStage ?? 0;

describe("shared subscriptions", () => {
  it("gives 50 clients of one promotion, some joining mid-ramp, the state on joining then every stage in order", async () => {
    const { id } = await promoteTo(hangar, await rampReady("shared-ramp", 8), "live");
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
    // One shared execution served the 50 while it ran; the one after had its own.
    expect(
      sharedLog("promotionProgress").filter((e) => e.msg === "shared subscription started"),
    ).toHaveLength(2);
  });

  it("stops the shared execution when its last subscriber leaves, and not before", async () => {
    const first = await pushFolder(hangar, "shared-status", await modelFolder(MODEL(1)));
    await waitForStatus(hangar, first.id, "ACTIVE");
    const query = `subscription($id: ID!) { deploymentStatus(deploymentId: $id) { id status } }`;
    const watchers = Array.from({ length: 10 }, () => subscribe(client(), query, { id: first.id }));
    await Promise.all(watchers.map((w) => w.until((items) => items.length > 0)));
    for (const watcher of watchers) {
      expect(watcher.items[0].deploymentStatus).toEqual({ id: first.id, status: "ACTIVE" });
    }
    const log = () => sharedLog("deploymentStatus").map((e) => `${e.msg}: ${e.reason ?? ""}`);
    expect(log()).toEqual(["shared subscription started: "]);
    for (const watcher of watchers.slice(0, 9)) watcher.dispose();
    // The one left still gets changes.
    const last = watchers[9];
    await gql(hangar, `mutation($id: ID!) { deactivateDeployment(id: $id) { __typename } }`, {
      id: first.id,
    });
    await last?.until((items) => items.some((i) => i.deploymentStatus.status === "INACTIVE"));
    expect(log()).toEqual(["shared subscription started: "]);
    last?.dispose();
    await waitFor(() => log().length === 2, { what: "the shared execution to stop" });
    expect(log()).toEqual([
      "shared subscription started: ",
      "shared subscription stopped: its last subscriber left",
    ]);
  });
});

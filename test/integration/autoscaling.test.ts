import { mkdtemp, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  deploymentStatus,
  gql,
  modelFolder,
  predict,
  pushFolder,
  subscribe,
  waitForStatus,
  wsClient,
} from "../support/client.ts";
import { startHangar, type TestHangar } from "../support/hangar.ts";
import { waitFor } from "../support/wait.ts";

/** Answers after `sleepMs`, with its PID, so tests see which replica served them. */
const SLOW_MODEL = `
export default class M {
  async predict(input) {
    await new Promise((r) => setTimeout(r, (input && input.sleepMs) || 0));
    return { replica: process.env.HANGAR_REPLICA_ID };
  }
}`;

let hangar: TestHangar;

beforeAll(async () => {
  hangar = await startHangar({ env: { HANGAR_AUTOSCALER_INTERVAL_MS: "100" } });
});

afterAll(async () => {
  await hangar?.dispose();
});

const SETTINGS = `mutation($id: ID!, $settings: AutoscalingSettingsInput!) {
  updateAutoscalingSettings(input: { deploymentId: $id, settings: $settings }) { __typename ... on UserError { message } }
}`;

async function replicaCount(id: string): Promise<number> {
  const data = await gql(hangar, `query($id: ID!) { deployment(id: $id) { activeReplicaCount } }`, { id });
  return data.deployment.activeReplicaCount;
}

describe("autoscaling", () => {
  it("scales a burst from 1 replica to its maximum and back after the delay, failing no request", async () => {
    const dep = await pushFolder(hangar, "bursty", await modelFolder({ "model.mjs": SLOW_MODEL }));
    await waitForStatus(hangar, dep.id, "ACTIVE");
    const set = await gql(hangar, SETTINGS, {
      id: dep.id,
      settings: {
        minReplica: 1,
        maxReplica: 3,
        autoscalingWindow: 1,
        scaleDownDelay: 2,
        targetUtilizationPercentage: 100,
      },
    });
    expect(set.updateAutoscalingSettings.__typename).toBe("Deployment");
    const urlPath = `/models/${dep.model.id}/deployments/${dep.id}/predict`;
    const client = wsClient(hangar);
    const counts = subscribe(
      client,
      `subscription($id: ID!) { deploymentStatus(deploymentId: $id) { activeReplicaCount } }`,
      {
        id: dep.id,
      },
    );
    // Six clients, each keeping one request in flight, until three replicas serve.
    let stop = false;
    const statuses: number[] = [];
    const replicas = new Set<string>();
    const clients = Array.from({ length: 6 }, async () => {
      while (!stop) {
        const answer = await predict(hangar, urlPath, { sleepMs: 100 });
        statuses.push(answer.status);
        if (answer.status === 200) replicas.add(answer.body.replica);
      }
    });
    await waitFor(() => replicas.size === 3, { what: "three replicas serving", timeoutMs: 30_000 });
    stop = true;
    await Promise.all(clients);
    expect(statuses.every((s) => s === 200)).toBe(true);
    await waitFor(async () => (await replicaCount(dep.id)) === 1, { what: "scale back down to minReplica" });
    // The subscription streams the same counts, a moment behind the query.
    await counts.until(
      (items) =>
        items.some((i) => i.deploymentStatus.activeReplicaCount === 3) &&
        items.at(-1)?.deploymentStatus.activeReplicaCount === 1,
    );
    const seen = counts.items.map((i) => i.deploymentStatus.activeReplicaCount);
    expect(Math.max(...seen)).toBe(3);
    counts.dispose();
    await client.dispose();
    const answer = await predict(hangar, urlPath, {});
    expect(answer.status).toBe(200);
  });

  it("scales to zero without traffic and wakes on the next requests, starting one replica for all of them", async () => {
    const dep = await pushFolder(hangar, "sleepy", await modelFolder({ "model.mjs": SLOW_MODEL }));
    await waitForStatus(hangar, dep.id, "ACTIVE");
    await gql(hangar, SETTINGS, { id: dep.id, settings: { scaleDownDelay: 1 } });
    await waitForStatus(hangar, dep.id, "SCALED_TO_ZERO", 15_000);
    // The status moves first (a request from then on wakes it); the last replica drains after.
    await waitFor(async () => (await replicaCount(dep.id)) === 0, { what: "the last replica stopped" });
    // Still active: the path answers, it does not 404.
    const urlPath = `/models/${dep.model.id}/deployments/${dep.id}/predict`;
    const answers = await Promise.all(Array.from({ length: 8 }, () => predict(hangar, urlPath, {})));
    expect(answers.map((a) => a.status)).toEqual(Array(8).fill(200));
    expect(new Set(answers.map((a) => a.body.replica)).size).toBe(1);
    // The woken replica answers a moment before its ACTIVE is written.
    await waitForStatus(hangar, dep.id, "ACTIVE");
    const events = await gql(
      hangar,
      `query($id: ID!) { model(id: $id) { events(first: 100) { edges { node { type message } } } } }`,
      { id: dep.model.id },
    );
    const transitions = events.model.events.edges
      .map((e: { node: { message: string | null } }) => e.node.message ?? "")
      .filter((m: string) => /-> (SCALED_TO_ZERO|WAKING_UP|ACTIVE)/.test(m))
      .map((m: string) => m.split(":")[0]);
    expect(transitions.slice(-3)).toEqual([
      "ACTIVE -> SCALED_TO_ZERO",
      "SCALED_TO_ZERO -> WAKING_UP",
      "WAKING_UP -> ACTIVE",
    ]);
  });

  it("wakes on POST .../wake with 202, without a request", async () => {
    const dep = await pushFolder(hangar, "wakeable", await modelFolder({ "model.mjs": SLOW_MODEL }));
    await waitForStatus(hangar, dep.id, "ACTIVE");
    await gql(hangar, SETTINGS, { id: dep.id, settings: { scaleDownDelay: 0 } });
    await waitForStatus(hangar, dep.id, "SCALED_TO_ZERO", 15_000);
    // Keep it up once woken, so the test can see ACTIVE.
    await gql(hangar, SETTINGS, { id: dep.id, settings: { scaleDownDelay: 600 } });
    const wake = await fetch(`${hangar.url}/models/${dep.model.id}/deployments/${dep.id}/wake`, {
      method: "POST",
      headers: { authorization: `Bearer ${hangar.key}` },
    });
    expect(wake.status).toBe(202);
    await waitForStatus(hangar, dep.id, "ACTIVE");
    expect(await replicaCount(dep.id)).toBe(1);
  });

  it("answers 503 model_unavailable when a wake cannot produce a ready replica in time", async () => {
    const slowStart = await startHangar({
      // The model below learns from a file of the test's when to load slowly: a fenced replica sees no such file.
      env: { HANGAR_AUTOSCALER_INTERVAL_MS: "100", HANGAR_READY_TIMEOUT: "2", HANGAR_SANDBOX: "off" },
    });
    try {
      // Loads at once the first time; once the marker file exists, load() takes far longer than the timeout.
      const marker = path.join(await mkdtemp(path.join(tmpdir(), "hangar-marker-")), "slow");
      const dir = await modelFolder({
        "model.mjs": `import { existsSync } from "node:fs";
export default class M {
  constructor({ config }) { this.marker = config.marker; }
  async load() { if (existsSync(this.marker)) await new Promise((r) => setTimeout(r, 30000)); }
  predict() { return { ok: true }; }
}`,
        "hangar.json": JSON.stringify({ config: { marker } }),
      });
      const dep = await pushFolder(slowStart, "slow-waker", dir);
      await waitForStatus(slowStart, dep.id, "ACTIVE");
      await gql(slowStart, SETTINGS, { id: dep.id, settings: { scaleDownDelay: 0 } });
      await waitForStatus(slowStart, dep.id, "SCALED_TO_ZERO", 15_000);
      await writeFile(marker, "");
      const answer = await predict(slowStart, `/models/${dep.model.id}/deployments/${dep.id}/predict`, {});
      expect(answer).toMatchObject({
        status: 503,
        body: { error_code: "model_unavailable" },
        deploymentId: dep.id,
      });
      expect(await deploymentStatus(slowStart, dep.id)).toBe("WAKING_UP");
    } finally {
      await slowStart.dispose();
    }
  });
});

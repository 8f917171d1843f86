import path from "node:path";
import { fileURLToPath } from "node:url";
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
import { waitFor } from "../support/wait.ts";

const EXAMPLES = fileURLToPath(new URL("../../examples/", import.meta.url));

/** A model whose answers tell the tests what they need: which replica answered, and a chosen delay. */
const PROBE_MODEL = `
export default class Model {
  constructor({ environment }) { this.environment = environment; }
  async load() {}
  async predict(input) {
    if (input && input.fail) throw new Error("asked to fail: " + input.fail);
    if (input && input.crash) process.exit(3);
    if (input && input.sleepMs) {
      console.log("sleeping " + (input.tag || ""));
      await new Promise((r) => setTimeout(r, input.sleepMs));
    }
    return { replica: process.env.HANGAR_REPLICA_ID, input, environment: this.environment };
  }
}
`;

let hangar: TestHangar;
let probe: { id: string; model: { id: string } };

beforeAll(async () => {
  hangar = await startHangar({ env: { HANGAR_MAX_REQUEST_BYTES: "65536", HANGAR_PREDICT_TIMEOUT: "2" } });
  probe = await pushFolder(hangar, "probe", await modelFolder({ "model.mjs": PROBE_MODEL }));
  await waitForStatus(hangar, probe.id, "ACTIVE");
});

afterAll(async () => {
  await hangar?.dispose();
});

const deploymentPath = () => `/models/${probe.model.id}/deployments/${probe.id}/predict`;

describe("gateway errors", () => {
  it("passes a predict that throws on as 500 application_error with its message", async () => {
    const answer = await predict(hangar, deploymentPath(), { fail: "bad input" });
    expect(answer).toMatchObject({ status: 500, deploymentId: probe.id });
    expect(answer.body).toMatchObject({ error_code: "application_error" });
    expect(answer.body.error).toContain("asked to fail: bad input");
  });

  it("answers 400 client_error for a body that is not JSON", async () => {
    const answer = await predict(hangar, deploymentPath(), "{not json");
    expect(answer).toMatchObject({
      status: 400,
      body: { error_code: "client_error" },
      deploymentId: probe.id,
    });
  });

  it("answers 413 payload_too_large above the body limit", async () => {
    const answer = await predict(hangar, deploymentPath(), { blob: "x".repeat(70_000) });
    expect(answer).toMatchObject({ status: 413, body: { error_code: "payload_too_large" } });
  });

  it("answers 504 timeout when the model takes longer than the predict timeout", async () => {
    const answer = await predict(hangar, deploymentPath(), { sleepMs: 3_000 });
    expect(answer).toMatchObject({ status: 504, body: { error_code: "timeout" }, deploymentId: probe.id });
  });

  it("answers the 404s of API.md section 3", async () => {
    const modelId = probe.model.id;
    const cases: [string, string][] = [
      ["/models/mdl_AAAAAAAAAAAAAAAA/predict", "model_does_not_exist"],
      [`/models/${modelId}/deployments/dep_AAAAAAAAAAAAAAAA/predict`, "deployment_does_not_exist"],
      [`/models/${modelId}/deployments/nonsense/predict`, "deployment_does_not_exist"],
      [`/models/${modelId}/environments/staging/predict`, "environment_does_not_exist"],
      [`/models/${modelId}/predict`, "no_deployment"],
      [`/models/${modelId}/production/predict`, "no_deployment"],
      [`/models/${modelId}/development/predict`, "no_deployment"],
    ];
    for (const [urlPath, code] of cases) {
      const answer = await predict(hangar, urlPath, {});
      expect({ urlPath, status: answer.status, code: answer.body.error_code }).toEqual({
        urlPath,
        status: 404,
        code,
      });
    }
  });

  it("refuses a deployment of another model as deployment_does_not_exist", async () => {
    const other = (
      await gql(hangar, `mutation { createModel(input: { name: "other" }) { ... on Model { id } } }`)
    ).createModel;
    const answer = await predict(hangar, `/models/${other.id}/deployments/${probe.id}/predict`, {});
    expect(answer).toMatchObject({ status: 404, body: { error_code: "deployment_does_not_exist" } });
  });
});

describe("lifecycle", () => {
  it("holds requests sent while a deployment starts and serves them once it is ready", async () => {
    const slow = await modelFolder({
      "model.mjs": `export default class M { async load() { await new Promise((r) => setTimeout(r, 1500)); }
        predict(input) { return { ok: true, input }; } }`,
    });
    const deployment = await pushFolder(hangar, "slow-loader", slow);
    const urlPath = `/models/${deployment.model.id}/deployments/${deployment.id}/predict`;
    const answers = await Promise.all([1, 2, 3].map((n) => predict(hangar, urlPath, { n })));
    for (const [i, answer] of answers.entries()) {
      expect(answer.status).toBe(200);
      expect(answer.body).toEqual({ ok: true, input: { n: i + 1 } });
    }
  });

  it("retries a model whose load() throws twice, then marks it DEPLOY_FAILED with the error in its logs", async () => {
    const broken = await modelFolder({
      "model.mjs": `export default class M { async load() { throw new Error("weights missing"); } predict() {} }`,
    });
    const deployment = await pushFolder(hangar, "broken-load", broken);
    await waitForStatus(hangar, deployment.id, "DEPLOY_FAILED");
    const data = await gql(
      hangar,
      `query($id: ID!) { deployment(id: $id) { logs(last: 500) { replica line } } }`,
      {
        id: deployment.id,
      },
    );
    const lines: { replica: string | null; line: string }[] = data.deployment.logs;
    const failures = lines.filter((l) => l.line.includes("model failed to load: weights missing"));
    // On a failure, the lines and the server's output say which attempt did not fail the way it should.
    const explain = () => `${JSON.stringify(lines, null, 1)}\n${hangar.output().slice(-8000)}`;
    expect(new Set(failures.map((l) => l.replica)).size, explain()).toBe(3);
    const answer = await predict(
      hangar,
      `/models/${deployment.model.id}/deployments/${deployment.id}/predict`,
      {},
    );
    expect(answer).toMatchObject({ status: 503, body: { error_code: "model_unavailable" } });
  });

  it("restarts a replica that crashes after being ready", async () => {
    const crashy = await pushFolder(hangar, "crashy", await modelFolder({ "model.mjs": PROBE_MODEL }));
    await waitForStatus(hangar, crashy.id, "ACTIVE");
    const urlPath = `/models/${crashy.model.id}/deployments/${crashy.id}/predict`;
    const before = await predict(hangar, urlPath, {});
    const crash = await predict(hangar, urlPath, { crash: true });
    expect(crash.status).toBe(503);
    const after = await waitFor(
      async () => {
        const answer = await predict(hangar, urlPath, {});
        return answer.status === 200 ? answer : null;
      },
      { what: "the restarted replica" },
    );
    expect(after.body.replica).not.toBe(before.body.replica);
    await waitForStatus(hangar, crashy.id, "ACTIVE");
  });

  it("marks a deployment whose replica keeps crashing UNHEALTHY and stops restarting it", async () => {
    const looping = await pushFolder(hangar, "crash-loop", await modelFolder({ "model.mjs": PROBE_MODEL }));
    await waitForStatus(hangar, looping.id, "ACTIVE");
    const urlPath = `/models/${looping.model.id}/deployments/${looping.id}/predict`;
    for (let crash = 1; crash <= 3; crash++) {
      expect((await predict(hangar, urlPath, { crash: true })).status).toBe(503);
      if (crash < 3) {
        await waitFor(async () => (await predict(hangar, urlPath, {})).status === 200, { what: "a restart" });
      }
    }
    await waitForStatus(hangar, looping.id, "UNHEALTHY");
    expect(await predict(hangar, urlPath, {})).toMatchObject({
      status: 503,
      body: { error_code: "model_unavailable" },
    });
  });

  it("runs minReplica replicas and spreads requests across them", async () => {
    const scaled = await pushFolder(hangar, "two-replicas", await modelFolder({ "model.mjs": PROBE_MODEL }));
    await waitForStatus(hangar, scaled.id, "ACTIVE");
    await gql(
      hangar,
      `mutation($id: ID!) { updateAutoscalingSettings(input: { deploymentId: $id, settings: { minReplica: 2, maxReplica: 2 } }) { __typename } }`,
      { id: scaled.id },
    );
    await waitFor(
      async () =>
        (
          await gql(hangar, `query($id: ID!) { deployment(id: $id) { activeReplicaCount } }`, {
            id: scaled.id,
          })
        ).deployment.activeReplicaCount === 2,
      { what: "two ready replicas" },
    );
    const urlPath = `/models/${scaled.model.id}/deployments/${scaled.id}/predict`;
    const answers = await Promise.all(
      Array.from({ length: 20 }, () => predict(hangar, urlPath, { sleepMs: 50 })),
    );
    expect(new Set(answers.map((a) => a.body.replica)).size).toBe(2);
  });

  it("answers 202 on wake for a running deployment", async () => {
    const wake = await fetch(`${hangar.url}/models/${probe.model.id}/deployments/${probe.id}/wake`, {
      method: "POST",
      headers: { authorization: `Bearer ${hangar.key}` },
    });
    expect(wake.status).toBe(202);
    expect(wake.headers.get("x-hangar-deployment-id")).toBe(probe.id);
  });

  it("deactivates after in-flight requests finish (404 deployment_inactive), and activates again", async () => {
    const inflight = predict(hangar, deploymentPath(), { sleepMs: 1500, tag: "before-deactivate" });
    // Deactivate only once the request is inside the model.
    await waitFor(async () => {
      const data = await gql(hangar, `query($id: ID!) { deployment(id: $id) { logs { line } } }`, {
        id: probe.id,
      });
      return data.deployment.logs.some((l: { line: string }) => l.line === "sleeping before-deactivate");
    });
    const deactivated = await gql(
      hangar,
      `mutation($id: ID!) { deactivateDeployment(id: $id) { ... on Deployment { status } } }`,
      { id: probe.id },
    );
    expect(deactivated.deactivateDeployment.status).toBe("DEACTIVATING");
    expect((await inflight).status).toBe(200);
    await waitForStatus(hangar, probe.id, "INACTIVE");
    const refused = await predict(hangar, deploymentPath(), {});
    expect(refused).toMatchObject({ status: 404, body: { error_code: "deployment_inactive" } });
    const replicas = await gql(hangar, `query($id: ID!) { deployment(id: $id) { activeReplicaCount } }`, {
      id: probe.id,
    });
    expect(replicas.deployment.activeReplicaCount).toBe(0);
    await gql(hangar, `mutation($id: ID!) { activateDeployment(id: $id) { ... on Deployment { status } } }`, {
      id: probe.id,
    });
    const answer = await predict(hangar, deploymentPath(), { again: true });
    expect(answer.status).toBe(200);
    await waitForStatus(hangar, probe.id, "ACTIVE");
  });

  it("streams status changes and log lines over WebSocket", async () => {
    const client = wsClient(hangar);
    const dir = path.join(EXAMPLES, "sentiment");
    // The model first, so that a cursor taken before the push lets the whole life be replayed.
    const created = await gql(
      hangar,
      `mutation { createModel(input: { name: "streamed" }) { ... on Model { id } } }`,
    );
    const cursor = await latestCursor(hangar, created.createModel.id);
    const deployment = await pushFolder(hangar, "streamed", dir);
    const statuses = subscribe(
      client,
      `subscription($id: ID!) { deploymentStatus(deploymentId: $id) { id status activeReplicaCount } }`,
      { id: deployment.id },
    );
    await statuses.until((items) => items.some((i) => i.deploymentStatus.status === "ACTIVE"));
    const seen = statuses.items.map((i) => i.deploymentStatus.status);
    // The first item is the deployment as it was at subscription time; then every change in order.
    const order = ["BUILDING", "DEPLOYING", "LOADING_MODEL", "ACTIVE"];
    const changes = seen.filter((status, i) => status !== seen[i - 1]);
    expect(changes).toEqual(order.slice(order.indexOf(changes[0])));
    // Replayed from before the push: created BUILDING, then every status change in order.
    const written = (await eventsAfter(hangar, created.createModel.id, cursor)).filter(
      (event) =>
        event.deployment?.id === deployment.id &&
        (event.type === "DEPLOYMENT_CREATED" || event.type === "DEPLOYMENT_STATUS_CHANGED"),
    );
    expect(
      written.map((event) =>
        event.type === "DEPLOYMENT_CREATED" ? "BUILDING" : event.message?.match(/-> (\w+)/)?.[1],
      ),
    ).toEqual(order);
    await statuses.until((items) => items.some((i) => i.deploymentStatus.activeReplicaCount === 1));
    statuses.dispose();

    // Log lines written after subscribing arrive in order, with their stream. The protocol has no
    // "subscribed" acknowledgement, so write marker lines until one arrives, then the two to check.
    const logs = subscribe(
      client,
      `subscription($id: ID!) { deploymentLogs(deploymentId: $id) { stream line } }`,
      {
        id: probe.id,
      },
    );
    let marker = 0;
    await waitFor(async () => {
      await predict(hangar, deploymentPath(), { sleepMs: 1, tag: `marker-${marker++}` });
      return logs.items.length > 0;
    });
    for (const tag of ["first-line", "second-line"]) {
      expect((await predict(hangar, deploymentPath(), { sleepMs: 1, tag })).status).toBe(200);
    }
    await logs.until((items) => items.some((i) => i.deploymentLogs.line === "sleeping second-line"));
    const checked = logs.items.map((i) => i.deploymentLogs).filter((l) => !l.line.includes("marker-"));
    expect(checked).toEqual([
      { stream: "stdout", line: "sleeping first-line" },
      { stream: "stdout", line: "sleeping second-line" },
    ]);
    logs.dispose();
    await client.dispose();
  });
});

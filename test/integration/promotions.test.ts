import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { afterAll, beforeAll, describe, expect, it, onTestFinished } from "vitest";
import {
  gql,
  modelFolder,
  pack,
  predict,
  push,
  pushFolder,
  subscribe,
  waitForStatus,
  wsClient,
} from "../support/client.ts";
import { startHangar, type TestHangar } from "../support/hangar.ts";
import { eventsAfter, latestCursor } from "../support/history.ts";
import { control, finished as waitForEnd } from "../support/promotions.ts";
import { waitFor } from "../support/wait.ts";

/** Answers with its version, the environment it was created for and its PID. */
const MODEL = (version: number, load = "") => ({
  "model.mjs": `export default class M {
  constructor({ environment }) { this.environment = environment; }
  async load() { ${load} }
  predict() { return { version: ${version}, environment: this.environment, replica: process.env.HANGAR_REPLICA_ID }; }
}`,
});

const PROMOTION_FIELDS = `id status errorMessage percentTrafficToNewVersion canaryStage canaryStages
  steps { name status startedAt finishedAt message }
  sourceDeployment { id } deployment { id name environment { name } } previousDeployment { id status }
  environment { name }`;

const PROMOTE = `mutation($input: PromoteInput!) {
  promote(input: $input) { __typename ... on Promotion { ${PROMOTION_FIELDS} } ... on UserError { code message field } }
}`;

let hangar: TestHangar;

beforeAll(async () => {
  // Unfenced: loadGate's models wait for a server of the test's on the host's loopback, which a fenced
  // replica cannot reach (test/integration/isolation.test.ts checks that).
  hangar = await startHangar({ env: { HANGAR_AUTOSCALER_INTERVAL_MS: "100", HANGAR_SANDBOX: "off" } });
});

afterAll(async () => {
  await hangar?.dispose();
});

/**
 * A switch a model's load() waits on (over HTTP: a replica may open connections out), so that a
 * deployment is ready exactly when a test says and not when the machine happens to get there.
 */
async function loadGate() {
  let open = false;
  const server = createServer((_req, res) => res.writeHead(open ? 200 : 503).end());
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/`;
  return {
    /** The load() body that waits for the gate. */
    load: `while ((await fetch(${JSON.stringify(url)})).status !== 200) await new Promise((r) => setTimeout(r, 50));`,
    open: () => {
      open = true;
    },
    close: () => {
      open = true;
      server.close();
    },
  };
}

async function promotion(id: string) {
  return (await gql(hangar, `query($id: ID!) { promotion(id: $id) { ${PROMOTION_FIELDS} } }`, { id }))
    .promotion;
}

const finished = (id: string, timeoutMs = 30_000) =>
  waitForEnd(hangar, id, { fields: PROMOTION_FIELDS, timeoutMs });

async function lastPromotion(modelId: string): Promise<string> {
  const data = await gql(
    hangar,
    `query($id: ID!) { model(id: $id) { productionEnvironment { promotions(first: 1) { edges { node { id } } } } } }`,
    { id: modelId },
  );
  return data.model.productionEnvironment.promotions.edges[0].node.id;
}

async function environmentOf(modelId: string, name = "production") {
  return (
    await gql(
      hangar,
      `query($id: ID!, $name: String!) { environment(modelId: $id, name: $name) { id currentDeployment { id } inProgressPromotion { id } candidateDeployment { id } } }`,
      { id: modelId, name },
    )
  ).environment;
}

async function createEnvironment(
  modelId: string,
  name: string,
  promotionSettings: Record<string, unknown> = {},
) {
  const data = await gql(
    hangar,
    `mutation($input: CreateEnvironmentInput!) { createEnvironment(input: $input) { __typename ... on Environment { id } ... on UserError { code message } } }`,
    { input: { modelId, name, promotionSettings } },
  );
  expect(data.createEnvironment.__typename).toBe("Environment");
  return data.createEnvironment.id as string;
}

describe("promoting", () => {
  it("promotes the development deployment in three steps to a new deployment, leaving development as it was", async () => {
    const dev = await pushFolder(hangar, "promo-dev", await modelFolder(MODEL(1)), { development: true });
    await waitForStatus(hangar, dev.id, "ACTIVE");
    const started = (await gql(hangar, PROMOTE, { input: { deploymentId: dev.id } })).promote;
    expect(started).toMatchObject({
      __typename: "Promotion",
      status: "RELEASING",
      environment: { name: "production" },
    });
    expect(started.steps.map((s: { name: string }) => s.name)).toEqual([
      "CREATE_DEPLOYMENT",
      "START_DEPLOYMENT",
      "ACTIVATE",
    ]);
    const done = await finished(started.id);
    expect(done.status).toBe("SUCCEEDED");
    expect(done.steps.map((s: { status: string }) => s.status)).toEqual([
      "SUCCEEDED",
      "SUCCEEDED",
      "SUCCEEDED",
    ]);
    for (const step of done.steps)
      expect(Date.parse(step.finishedAt)).toBeGreaterThanOrEqual(Date.parse(step.startedAt));
    expect(done.percentTrafficToNewVersion).toBe(100);
    expect(done.deployment.id).not.toBe(dev.id);
    expect(done.deployment.environment).toEqual({ name: "production" });
    const answer = await predict(hangar, `/models/${dev.model.id}/predict`, {});
    expect(answer).toMatchObject({
      status: 200,
      deploymentId: done.deployment.id,
      body: { version: 1, environment: "production" },
    });
    const same = await predict(hangar, `/models/${dev.model.id}/production/predict`, {});
    expect(same.deploymentId).toBe(done.deployment.id);
    const devNow = (
      await gql(hangar, `query($id: ID!) { deployment(id: $id) { id status kind name } }`, { id: dev.id })
    ).deployment;
    expect(devNow).toEqual({ id: dev.id, status: "ACTIVE", kind: "DEVELOPMENT", name: "development" });
  });

  it("reuses a published deployment (CREATE_DEPLOYMENT skipped) and demotes the previous one to zero", async () => {
    const first = await pushFolder(hangar, "promo-pub", await modelFolder(MODEL(1)));
    await waitForStatus(hangar, first.id, "ACTIVE");
    const p1 = await finished((await gql(hangar, PROMOTE, { input: { deploymentId: first.id } })).promote.id);
    expect(p1.steps[0]).toMatchObject({ name: "CREATE_DEPLOYMENT", status: "SKIPPED" });
    expect(p1.deployment.id).toBe(first.id);
    // Give the first one distinctive settings: the next deployment must inherit them.
    await gql(
      hangar,
      `mutation($id: ID!) { updateAutoscalingSettings(input: { deploymentId: $id, settings: { maxReplica: 3, scaleDownDelay: 120 } }) { __typename } }`,
      { id: first.id },
    );
    const second = await pushFolder(hangar, "promo-pub", await modelFolder(MODEL(2)));
    await waitForStatus(hangar, second.id, "ACTIVE");
    const p2 = await finished(
      (await gql(hangar, PROMOTE, { input: { deploymentId: second.id } })).promote.id,
    );
    expect(p2.status).toBe("SUCCEEDED");
    expect(p2.previousDeployment.id).toBe(first.id);
    const answer = await predict(hangar, `/models/${first.model.id}/predict`, {});
    expect(answer).toMatchObject({ deploymentId: second.id, body: { version: 2, environment: null } });
    await waitForStatus(hangar, first.id, "SCALED_TO_ZERO");
    const settings = await gql(
      hangar,
      `query($a: ID!, $b: ID!) { a: deployment(id: $a) { autoscalingSettings { maxReplica scaleDownDelay } }
        b: deployment(id: $b) { autoscalingSettings { maxReplica scaleDownDelay } } }`,
      { a: first.id, b: second.id },
    );
    expect(settings.a.autoscalingSettings).toEqual({ maxReplica: 3, scaleDownDelay: 120 });
    expect(settings.b.autoscalingSettings).toEqual({ maxReplica: 3, scaleDownDelay: 120 });
    // The demoted deployment still answers on its own path (waking up).
    const own = await predict(hangar, `/models/${first.model.id}/deployments/${first.id}/predict`, {});
    expect(own).toMatchObject({ status: 200, body: { version: 1 } });
  });

  it("refuses what cannot be promoted, with the right codes", async () => {
    const dep = await pushFolder(hangar, "promo-rules", await modelFolder(MODEL(1)));
    await waitForStatus(hangar, dep.id, "ACTIVE");
    const cases: [Record<string, unknown>, string][] = [
      [{ deploymentId: "dep_AAAAAAAAAAAAAAAA" }, "NOT_FOUND"],
      [{ deploymentId: "nonsense" }, "NOT_FOUND"],
      [{ deploymentId: dep.id, environment: "staging" }, "NOT_FOUND"],
    ];
    for (const [input, code] of cases) {
      expect((await gql(hangar, PROMOTE, { input })).promote).toMatchObject({
        __typename: "UserError",
        code,
      });
    }
    await finished((await gql(hangar, PROMOTE, { input: { deploymentId: dep.id } })).promote.id);
    expect((await gql(hangar, PROMOTE, { input: { deploymentId: dep.id } })).promote).toMatchObject({
      code: "INVALID_STATE",
    });
    const other = await pushFolder(hangar, "promo-rules", await modelFolder(MODEL(2)));
    await gql(hangar, `mutation($id: ID!) { deactivateDeployment(id: $id) { __typename } }`, {
      id: other.id,
    });
    expect((await gql(hangar, PROMOTE, { input: { deploymentId: other.id } })).promote).toMatchObject({
      code: "DEPLOYMENT_NOT_ACTIVE",
    });
    // A deployment serving production cannot be deleted.
    const del = await gql(
      hangar,
      `mutation($id: ID!) { deleteDeployment(id: $id) { __typename ... on UserError { code } } }`,
      {
        id: dep.id,
      },
    );
    expect(del.deleteDeployment.code).toBe("DEPLOYMENT_IN_USE");
  });

  it("lets exactly one of 20 simultaneous promotions into one environment through", async () => {
    // Slow to load, so that the winner is still running while all twenty arrive.
    const slow = "await new Promise((r) => setTimeout(r, 10000));";
    const deps: { id: string; model: { id: string } }[] = [];
    for (let i = 0; i < 2; i++) {
      deps.push(await pushFolder(hangar, "promo-race", await modelFolder(MODEL(i, slow))));
    }
    const results = await Promise.all(
      Array.from({ length: 20 }, (_, i) =>
        gql(hangar, PROMOTE, { input: { deploymentId: deps[i % 2]!.id } }),
      ),
    );
    const started = results.filter((r) => r.promote.__typename === "Promotion");
    const refused = results.filter((r) => r.promote.__typename === "UserError");
    expect(started).toHaveLength(1);
    expect(refused.map((r) => r.promote.code)).toEqual(Array(19).fill("PROMOTION_IN_PROGRESS"));
    const history = await gql(
      hangar,
      `query($id: ID!) { model(id: $id) { productionEnvironment { promotions { edges { node { id } } } } } }`,
      { id: deps[0]!.model.id },
    );
    expect(history.model.productionEnvironment.promotions.edges).toHaveLength(1);
    const env = await environmentOf(deps[0]!.model.id);
    await gql(hangar, `mutation($id: ID!) { cancelPromotion(environmentId: $id) { __typename } }`, {
      id: env.id,
    });
  });

  it("streams the exact sequence of step states over promotionProgress, then completes", async () => {
    const dep = await pushFolder(hangar, "promo-stream", await modelFolder(MODEL(1)), { development: true });
    await waitForStatus(hangar, dep.id, "ACTIVE");
    // Everything the promotion writes comes after this cursor: the whole sequence can be replayed.
    const cursor = await latestCursor(hangar, dep.model.id);
    const client = wsClient(hangar);
    const started = (await gql(hangar, PROMOTE, { input: { deploymentId: dep.id } })).promote;
    const progress = subscribe(
      client,
      `subscription($id: ID!) { promotionProgress(promotionId: $id) { status steps { status } } }`,
      { id: started.id },
    );
    await waitFor(() => progress.completed, { what: "the subscription to complete" });
    const full = [
      "RELEASING:PPP",
      "RELEASING:SPP",
      "RELEASING:SRP",
      "RELEASING:SSP",
      "RELEASING:SSR",
      "SUCCEEDED:SSS",
    ];
    // The promotion's own events, replayed from before it began: one per state, every state, in order.
    const written = (await eventsAfter(hangar, dep.model.id, cursor)).filter(
      (event) => event.promotion?.id === started.id && event.type.startsWith("PROMOTION_"),
    );
    expect(written.map((event) => event.type)).toEqual([
      "PROMOTION_STARTED",
      "PROMOTION_STEP_CHANGED",
      "PROMOTION_STEP_CHANGED",
      "PROMOTION_STEP_CHANGED",
      "PROMOTION_STEP_CHANGED",
      "PROMOTION_FINISHED",
    ]);
    expect(written.map((event) => event.message?.replace(/:.*/, ""))).toEqual([
      "promoting 'development' to 'production'",
      "CREATE_DEPLOYMENT succeeded",
      "START_DEPLOYMENT running",
      "START_DEPLOYMENT succeeded",
      "ACTIVATE running",
      "promotion succeeded",
    ]);
    // The subscription began with the promotion as it was then, and from there saw every state in order.
    const states = progress.items.map(
      (i) =>
        `${i.promotionProgress.status}:${i.promotionProgress.steps.map((s: { status: string }) => s.status[0]).join("")}`,
    );
    expect(full).toContain(states[0]);
    expect(states).toEqual(full.slice(full.indexOf(states[0] as string)));
    await client.dispose();
  });

  it("publishes and promotes in one push with environment, refusing a second while it runs", async () => {
    const first = await pushFolder(hangar, "promo-push", await modelFolder(MODEL(1)));
    const modelId = first.model.id;
    await createEnvironment(modelId, "staging");
    // The pushed deployment is ready only once the second push has been refused: the promotion
    // cannot have ended first, however fast or slow the machine.
    const gate = await loadGate();
    onTestFinished(() => gate.close());
    const archive = await pack(await modelFolder(MODEL(2, gate.load)));
    const { body } = await push(
      hangar,
      { modelName: "promo-push", environment: "staging" } as never,
      archive,
    );
    const pushed = body.data.pushDeployment;
    expect(pushed.__typename).toBe("Deployment");
    const env = await environmentOf(modelId, "staging");
    expect(env.inProgressPromotion).not.toBeNull();
    const again = await push(
      hangar,
      { modelName: "promo-push", environment: "staging" } as never,
      await pack(await modelFolder(MODEL(3))),
    );
    expect(again.body.data.pushDeployment).toMatchObject({ code: "PROMOTION_IN_PROGRESS" });
    const missing = await push(hangar, { modelName: "promo-push", environment: "nowhere" } as never, archive);
    expect(missing.body.data.pushDeployment).toMatchObject({ code: "NOT_FOUND", field: "environment" });
    gate.open();
    const done = await finished(env.inProgressPromotion.id);
    expect(done.steps[0].status).toBe("SKIPPED");
    expect(done.deployment.id).toBe(pushed.id);
    const answer = await predict(hangar, `/models/${modelId}/environments/staging/predict`, {});
    expect(answer).toMatchObject({
      status: 200,
      deploymentId: pushed.id,
      body: { version: 2, environment: "staging" },
    });
    const deployments = await gql(
      hangar,
      `query($id: ID!) { model(id: $id) { deployments { edges { node { id } } } } }`,
      {
        id: modelId,
      },
    );
    expect(deployments.model.deployments.edges).toHaveLength(2);
  });
});

describe("ending early", () => {
  it("fails a promotion whose deployment fails its build, keeping the previous deployment serving", async () => {
    const good = await pushFolder(hangar, "promo-fail", await modelFolder(MODEL(1)));
    await waitForStatus(hangar, good.id, "ACTIVE");
    await finished((await gql(hangar, PROMOTE, { input: { deploymentId: good.id } })).promote.id);
    // Pushed straight into the environment: the promotion exists before the build can fail
    // (promoting an already BUILD_FAILED deployment is refused instead).
    const { body } = await push(
      hangar,
      { modelName: "promo-fail", environment: "production" } as never,
      await pack(await modelFolder({ "README.md": "no model here" })),
    );
    expect(body.data.pushDeployment.__typename).toBe("Deployment");
    const env = await environmentOf(good.model.id);
    const failed = await finished(env.inProgressPromotion?.id ?? (await lastPromotion(good.model.id)));
    expect(failed.status).toBe("FAILED");
    expect(failed.errorMessage).toContain("BUILD_FAILED");
    expect(failed.steps.map((s: { status: string }) => s.status)).toEqual(["SKIPPED", "FAILED", "SKIPPED"]);
    expect(failed.percentTrafficToNewVersion).toBe(0);
    expect((await predict(hangar, `/models/${good.model.id}/predict`, {})).deploymentId).toBe(good.id);
  });

  it("fails a promotion whose deployment is not ready within progressDeadlineSeconds", async () => {
    const first = await pushFolder(hangar, "promo-deadline", await modelFolder(MODEL(1)));
    await createEnvironment(first.model.id, "qa", { progressDeadlineSeconds: 1 });
    const slow = await pushFolder(
      hangar,
      "promo-deadline",
      await modelFolder(MODEL(2, "await new Promise((r) => setTimeout(r, 5000));")),
    );
    const p = (await gql(hangar, PROMOTE, { input: { deploymentId: slow.id, environment: "qa" } })).promote;
    const failed = await finished(p.id);
    expect(failed.status).toBe("FAILED");
    expect(failed.errorMessage).toContain("progress deadline");
    expect((await environmentOf(first.model.id, "qa")).currentDeployment).toBeNull();
  });

  it("does not count a pause during START_DEPLOYMENT against the progress deadline", async () => {
    // The new deployment's load() waits for the test's word, so it is ready only when told.
    const gate = await loadGate();
    try {
      const first = await pushFolder(hangar, "promo-paused-deadline", await modelFolder(MODEL(1)));
      const envId = await createEnvironment(first.model.id, "qa", { progressDeadlineSeconds: 4 });
      const gated = await pushFolder(hangar, "promo-paused-deadline", await modelFolder(MODEL(2, gate.load)));
      const p = (await gql(hangar, PROMOTE, { input: { deploymentId: gated.id, environment: "qa" } }))
        .promote;
      await waitFor(
        async () =>
          (await promotion(p.id)).steps.find((s: { name: string }) => s.name === "START_DEPLOYMENT")
            .status === "RUNNING",
        { what: "START_DEPLOYMENT to run" },
      );
      const paused = await control(hangar, "pausePromotion", envId);
      expect(paused.status).toBe("PAUSED");
      // Paused for longer than the whole deadline: the time must pass, so this waits on purpose.
      await new Promise((resolve) => setTimeout(resolve, 5_000));
      expect((await control(hangar, "resumePromotion", envId)).status).toBe("RELEASING");
      gate.open();
      const ended = await finished(p.id);
      expect(ended.errorMessage).toBeNull();
      expect(ended.status).toBe("SUCCEEDED");
    } finally {
      gate.close();
    }
  });

  it("cancels before ACTIVATE: CANCELED, the created deployment left scaled to zero, the environment unchanged", async () => {
    const good = await pushFolder(hangar, "promo-cancel", await modelFolder(MODEL(1)));
    await waitForStatus(hangar, good.id, "ACTIVE");
    await finished((await gql(hangar, PROMOTE, { input: { deploymentId: good.id } })).promote.id);
    const dev = await pushFolder(
      hangar,
      "promo-cancel",
      await modelFolder(MODEL(2, "await new Promise((r) => setTimeout(r, 3000));")),
      {
        development: true,
      },
    );
    const p = (await gql(hangar, PROMOTE, { input: { deploymentId: dev.id } })).promote;
    const env = await environmentOf(good.model.id);
    await waitFor(async () => (await promotion(p.id)).deployment !== null, { what: "the copy" });
    const canceled = await gql(
      hangar,
      `mutation($id: ID!) { cancelPromotion(environmentId: $id) { __typename ... on Promotion { status steps { status } deployment { id } } } }`,
      { id: env.id },
    );
    expect(canceled.cancelPromotion).toMatchObject({ __typename: "Promotion", status: "CANCELED" });
    expect(canceled.cancelPromotion.steps.map((s: { status: string }) => s.status)).toEqual([
      "SUCCEEDED",
      "SKIPPED",
      "SKIPPED",
    ]);
    await waitForStatus(hangar, canceled.cancelPromotion.deployment.id, "SCALED_TO_ZERO");
    expect((await predict(hangar, `/models/${good.model.id}/predict`, {})).deploymentId).toBe(good.id);
    const none = await gql(
      hangar,
      `mutation($id: ID!) { cancelPromotion(environmentId: $id) { __typename ... on UserError { code } } }`,
      { id: env.id },
    );
    expect(none.cancelPromotion.code).toBe("NO_PROMOTION_IN_PROGRESS");
  });
});

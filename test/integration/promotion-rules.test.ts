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
import { createEnvironment as createEnvironmentOf, finished as waitForEnd } from "../support/promotions.ts";
import { waitFor } from "../support/wait.ts";

const MODEL = (version: number, extra = "") => ({
  "model.mjs": `export default class M {
  constructor({ environment }) { this.environment = environment; }
  async load() { ${extra} }
  predict(input) {
    if (input && input.crash) process.exit(3);
    return { version: ${version}, environment: this.environment };
  }
}`,
});
const SLOW = "await new Promise((r) => setTimeout(r, 10000));";

const PROMOTE = `mutation($input: PromoteInput!) {
  promote(input: $input) { __typename ... on Promotion { id } ... on UserError { code message field } } }`;
const SETTINGS = "autoscalingSettings { minReplica maxReplica scaleDownDelay }";

let hangar: TestHangar;

beforeAll(async () => {
  hangar = await startHangar({ env: { HANGAR_AUTOSCALER_INTERVAL_MS: "100" } });
});

afterAll(async () => {
  await hangar?.dispose();
});

async function promoteTo(
  deploymentId: string,
  environment = "production",
  extra: Record<string, unknown> = {},
) {
  const data = await gql(hangar, PROMOTE, { input: { deploymentId, environment, ...extra } });
  expect(data.promote.__typename).toBe("Promotion");
  return data.promote.id as string;
}

const finished = (id: string) =>
  waitForEnd(hangar, id, {
    fields:
      "status errorMessage steps { name status } deployment { id environment { name } } previousDeployment { id }",
    timeoutMs: 30_000,
  });

function createEnvironment(modelId: string, name: string, extra: Record<string, unknown> = {}) {
  return createEnvironmentOf(hangar, { modelId, name, ...extra });
}

async function settingsOf(id: string) {
  return (await gql(hangar, `query($id: ID!) { deployment(id: $id) { ${SETTINGS} } }`, { id })).deployment
    .autoscalingSettings;
}

describe("which deployment serves, and with what environment name", () => {
  it("copies a deployment that serves another environment, naming the copy's environment; a reused one keeps its own", async () => {
    const dep = await pushFolder(hangar, "rules-copy", await modelFolder(MODEL(1)));
    await createEnvironment(dep.model.id, "staging");
    const toStaging = await finished(await promoteTo(dep.id, "staging"));
    expect(toStaging.steps[0].status).toBe("SKIPPED");
    const staging = await predict(hangar, `/models/${dep.model.id}/environments/staging/predict`, {});
    expect(staging.body).toMatchObject({ environment: null, version: 1 });
    const toProduction = await finished(await promoteTo(dep.id, "production"));
    expect(toProduction.steps[0].status).toBe("SUCCEEDED");
    expect(toProduction.deployment.id).not.toBe(dep.id);
    const production = await predict(hangar, `/models/${dep.model.id}/predict`, {});
    expect(production).toMatchObject({
      deploymentId: toProduction.deployment.id,
      body: { environment: "production" },
    });
  });

  it("with redeployOnPromotion always copies, so the environment name is right", async () => {
    const dep = await pushFolder(hangar, "rules-redeploy", await modelFolder(MODEL(1)));
    await createEnvironment(dep.model.id, "canary", { promotionSettings: { redeployOnPromotion: true } });
    const done = await finished(await promoteTo(dep.id, "canary"));
    expect(done.steps[0].status).toBe("SUCCEEDED");
    const answer = await predict(hangar, `/models/${dep.model.id}/environments/canary/predict`, {});
    expect(answer).toMatchObject({ deploymentId: done.deployment.id, body: { environment: "canary" } });
  });
});

describe("autoscaling on promotion", () => {
  it("gives a new deployment the environment's settings when nothing served before, and a reused one keeps its own", async () => {
    const dev = await pushFolder(hangar, "rules-scale", await modelFolder(MODEL(1)), { development: true });
    await createEnvironment(dev.model.id, "big", {
      autoscalingSettings: { maxReplica: 5, scaleDownDelay: 77 },
    });
    const fromDev = await finished(await promoteTo(dev.id, "big"));
    expect(await settingsOf(fromDev.deployment.id)).toEqual({
      minReplica: 0,
      maxReplica: 5,
      scaleDownDelay: 77,
    });
    const published = await pushFolder(hangar, "rules-scale", await modelFolder(MODEL(2)));
    await gql(
      hangar,
      `mutation($id: ID!) { updateAutoscalingSettings(input: { deploymentId: $id, settings: { maxReplica: 2 } }) { __typename } }`,
      { id: published.id },
    );
    await createEnvironment(dev.model.id, "small", { autoscalingSettings: { maxReplica: 9 } });
    await finished(await promoteTo(published.id, "small"));
    expect(await settingsOf(published.id)).toEqual({ minReplica: 0, maxReplica: 2, scaleDownDelay: 900 });
  });

  it("runs a deployment with the promotion's settings only until the promotion ends without ACTIVATE", async () => {
    const current = await pushFolder(hangar, "rules-revert", await modelFolder(MODEL(1)));
    await gql(
      hangar,
      `mutation($id: ID!) { updateAutoscalingSettings(input: { deploymentId: $id, settings: { minReplica: 2, maxReplica: 2 } }) { __typename } }`,
      { id: current.id },
    );
    await finished(await promoteTo(current.id));
    const slow = await pushFolder(hangar, "rules-revert", await modelFolder(MODEL(2, SLOW)));
    const id = await promoteTo(slow.id);
    // While it starts, it runs with the previous deployment's settings: two replicas come up.
    await waitFor(
      async () =>
        (await gql(hangar, `query($id: ID!) { deployment(id: $id) { replicas { id } } }`, { id: slow.id }))
          .deployment.replicas.length === 2,
      { what: "two replicas starting with the promotion's settings" },
    );
    expect(await settingsOf(slow.id)).toEqual({ minReplica: 0, maxReplica: 1, scaleDownDelay: 900 });
    const env = (
      await gql(hangar, `query($id: ID!) { model(id: $id) { productionEnvironment { id } } }`, {
        id: current.model.id,
      })
    ).model.productionEnvironment;
    await gql(hangar, `mutation($id: ID!) { cancelPromotion(environmentId: $id) { __typename } }`, {
      id: env.id,
    });
    expect((await finished(id)).status).toBe("CANCELED");
    expect(await settingsOf(slow.id)).toEqual({ minReplica: 0, maxReplica: 1, scaleDownDelay: 900 });
  });
});

describe("the previous deployment", () => {
  it.each([
    ["KEEP", true, "ACTIVE"],
    ["DEACTIVATE", true, "INACTIVE"],
    ["DEACTIVATE", false, "ACTIVE"],
  ])(
    "with cleanupStrategy %s and scaleDownPreviousDeployment %s ends %s",
    async (strategy, scaleDown, expected) => {
      const name = `rules-cleanup-${String(strategy).toLowerCase()}-${scaleDown}`;
      const first = await pushFolder(hangar, name, await modelFolder(MODEL(1)));
      const envName = "env";
      await createEnvironment(first.model.id, envName, { promotionSettings: { cleanupStrategy: strategy } });
      await finished(await promoteTo(first.id, envName));
      const second = await pushFolder(hangar, name, await modelFolder(MODEL(2)));
      await finished(await promoteTo(second.id, envName, { scaleDownPreviousDeployment: scaleDown }));
      await waitForStatus(hangar, first.id, expected);
      expect(
        (await predict(hangar, `/models/${first.model.id}/environments/${envName}/predict`, {})).deploymentId,
      ).toBe(second.id);
    },
  );
});

describe("failures and controls", () => {
  it("fails when the new deployment keeps crashing while it starts, keeping the previous one serving", async () => {
    const good = await pushFolder(hangar, "rules-crash", await modelFolder(MODEL(1)));
    await finished(await promoteTo(good.id));
    const crashing = await pushFolder(
      hangar,
      "rules-crash",
      await modelFolder({
        "model.mjs": "export default class M { async load() { process.exit(5); } predict() { return 2; } }",
      }),
    );
    const failed = await finished(await promoteTo(crashing.id));
    expect(failed.status).toBe("FAILED");
    expect(failed.errorMessage).toMatch(/UNHEALTHY|DEPLOY_FAILED/);
    expect((await predict(hangar, `/models/${good.model.id}/predict`, {})).deploymentId).toBe(good.id);
  });

  it("pauses, resumes and rolls forward, refusing controls that do not apply", async () => {
    const first = await pushFolder(hangar, "rules-controls", await modelFolder(MODEL(1)));
    await finished(await promoteTo(first.id));
    const env = (
      await gql(hangar, `query($id: ID!) { model(id: $id) { productionEnvironment { id } } }`, {
        id: first.model.id,
      })
    ).model.productionEnvironment;
    const control = async (name: string) =>
      (
        await gql(
          hangar,
          `mutation($id: ID!) { ${name}(environmentId: $id) { __typename ... on Promotion { status } ... on UserError { code } } }`,
          { id: env.id },
        )
      )[name];
    for (const name of [
      "pausePromotion",
      "resumePromotion",
      "forceRollForward",
      "cancelCanary",
      "cancelPromotion",
    ]) {
      expect(await control(name)).toMatchObject({
        __typename: "UserError",
        code: "NO_PROMOTION_IN_PROGRESS",
      });
    }
    const slow = await pushFolder(
      hangar,
      "rules-controls",
      await modelFolder(MODEL(2, "await new Promise((r) => setTimeout(r, 1500));")),
    );
    const id = await promoteTo(slow.id);
    expect(await control("pausePromotion")).toMatchObject({ status: "PAUSED" });
    expect(await control("pausePromotion")).toMatchObject({ code: "INVALID_STATE" });
    expect(await control("cancelCanary")).toMatchObject({ code: "INVALID_STATE" });
    expect(await control("resumePromotion")).toMatchObject({ status: "RELEASING" });
    expect(await control("resumePromotion")).toMatchObject({ code: "INVALID_STATE" });
    expect(await control("forceRollForward")).toMatchObject({ status: "RELEASING" });
    expect((await finished(id)).status).toBe("SUCCEEDED");
  });

  it("refuses to delete the deployments of an active promotion; deleting the model cancels it", async () => {
    const first = await pushFolder(hangar, "rules-delete", await modelFolder(MODEL(1)));
    await finished(await promoteTo(first.id));
    const slow = await pushFolder(hangar, "rules-delete", await modelFolder(MODEL(2, SLOW)));
    const id = await promoteTo(slow.id);
    // Subscribe from a known cursor: the subscription may only be set up after the mutations below.
    const history = await gql(
      hangar,
      `query($id: ID!) { model(id: $id) { events(first: 500) { edges { cursor } } } }`,
      { id: first.model.id },
    );
    const client = wsClient(hangar);
    const events = subscribe(
      client,
      `subscription($id: ID!, $after: String) { modelEvents(modelId: $id, after: $after) { type promotion { id } } }`,
      { id: first.model.id, after: history.model.events.edges.at(-1).cursor },
    );
    for (const target of [slow.id, first.id]) {
      const refused = await gql(
        hangar,
        `mutation($id: ID!) { deleteDeployment(id: $id) { __typename ... on UserError { code } } }`,
        {
          id: target,
        },
      );
      expect(refused.deleteDeployment.code).toBe("DEPLOYMENT_IN_USE");
    }
    await gql(hangar, `mutation($id: ID!) { deleteModel(id: $id) { __typename } }`, { id: first.model.id });
    expect((await finished(id)).status).toBe("CANCELED");
    await events.until((items) => items.some((i) => i.modelEvents.type === "MODEL_DELETED"));
    const types = events.items.map((i) => i.modelEvents.type);
    expect(types).toContain("PROMOTION_FINISHED");
    expect(
      events.items.find((i) => i.modelEvents.type === "PROMOTION_FINISHED").modelEvents.promotion.id,
    ).toBe(id);
    events.dispose();
    await client.dispose();
  });

  it("keeps the history newest first", async () => {
    const first = await pushFolder(hangar, "rules-history", await modelFolder(MODEL(1)));
    const a = await promoteTo(first.id);
    await finished(a);
    const second = await pushFolder(hangar, "rules-history", await modelFolder(MODEL(2)));
    const b = await promoteTo(second.id);
    await finished(b);
    const data = await gql(
      hangar,
      `query($id: ID!) { model(id: $id) { productionEnvironment { promotions { edges { node { id } } } } } }`,
      { id: first.model.id },
    );
    expect(
      data.model.productionEnvironment.promotions.edges.map((e: { node: { id: string } }) => e.node.id),
    ).toEqual([b, a]);
  });
});

import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { gql, modelFolder, predict, pushFolder } from "../support/client.ts";
import { startHangar, type TestHangar } from "../support/hangar.ts";
import { promoteTo, waitForPromotion } from "../support/promotions.ts";

let hangar: TestHangar;

beforeAll(async () => {
  hangar = await startHangar();
});

afterAll(async () => {
  await hangar?.dispose();
});

const SETTINGS = `
  promotionSettings { redeployOnPromotion rampUpWhilePromoting rampUpDurationSeconds cleanupStrategy
    progressDeadlineSeconds errorRateThresholdPercent }
  autoscalingSettings { minReplica maxReplica autoscalingWindow scaleDownDelay concurrencyTarget
    targetUtilizationPercentage }`;

const ENVIRONMENT = `id name isProduction createdAt deletedAt model { id } currentDeployment { id } predictUrl ${SETTINGS}`;

const CREATE = `mutation($input: CreateEnvironmentInput!) {
  createEnvironment(input: $input) {
    __typename
    ... on Environment { ${ENVIRONMENT} }
    ... on UserError { code message field }
  }
}`;

const UPDATE = `mutation($input: UpdateEnvironmentInput!) {
  updateEnvironment(input: $input) {
    __typename
    ... on Environment { ${ENVIRONMENT} }
    ... on UserError { code message field }
  }
}`;

const DELETE = `mutation($id: ID!) {
  deleteEnvironment(id: $id) {
    __typename
    ... on Environment { id name deletedAt }
    ... on UserError { code message field }
  }
}`;

const READ = `query($id: ID!) { node(id: $id) { ... on Environment { ${ENVIRONMENT} } } }`;

const DEFAULT_PROMOTION = {
  redeployOnPromotion: false,
  rampUpWhilePromoting: false,
  rampUpDurationSeconds: 600,
  cleanupStrategy: "SCALE_TO_ZERO",
  progressDeadlineSeconds: 600,
  errorRateThresholdPercent: null,
};

const DEFAULT_AUTOSCALING = {
  minReplica: 0,
  maxReplica: 1,
  autoscalingWindow: 60,
  scaleDownDelay: 900,
  concurrencyTarget: 1,
  targetUtilizationPercentage: 70,
};

let modelCount = 0;

/** Promotes a deployment to production and waits for the promotion to succeed. */
async function promoteAndWait(deploymentId: string): Promise<void> {
  await waitForPromotion(hangar, (await promoteTo(hangar, deploymentId)).id, "SUCCEEDED");
}

async function newModel(): Promise<{ id: string; productionId: string }> {
  modelCount += 1;
  const data = await gql(
    hangar,
    `mutation($name: String!) { createModel(input: { name: $name }) {
      ... on Model { id productionEnvironment { id } } ... on UserError { code message } } }`,
    { name: `env-model-${modelCount}` },
  );
  return { id: data.createModel.id, productionId: data.createModel.productionEnvironment.id };
}

async function create(input: Record<string, unknown>) {
  return (await gql(hangar, CREATE, { input })).createEnvironment;
}

async function update(input: Record<string, unknown>) {
  return (await gql(hangar, UPDATE, { input })).updateEnvironment;
}

async function remove(id: string) {
  return (await gql(hangar, DELETE, { id })).deleteEnvironment;
}

async function read(id: string) {
  return (await gql(hangar, READ, { id })).node;
}

async function environmentNames(modelId: string): Promise<string[]> {
  const data = await gql(hangar, `query($id: ID!) { model(id: $id) { environments { name } } }`, {
    id: modelId,
  });
  return data.model.environments.map((e: { name: string }) => e.name);
}

describe("createEnvironment", () => {
  it("creates an environment with every PromotionSettings and AutoscalingSettings default", async () => {
    const model = await newModel();
    const env = await create({ modelId: model.id, name: "staging" });
    expect(env).toMatchObject({
      __typename: "Environment",
      name: "staging",
      isProduction: false,
      deletedAt: null,
      model: { id: model.id },
      currentDeployment: null,
      predictUrl: `${hangar.url}/models/${model.id}/environments/staging/predict`,
    });
    expect(env.id).toMatch(/^env_/);
    expect(env.promotionSettings).toEqual(DEFAULT_PROMOTION);
    expect(env.autoscalingSettings).toEqual(DEFAULT_AUTOSCALING);
    expect(await environmentNames(model.id)).toEqual(["production", "staging"]);
    const byName = await gql(
      hangar,
      `query($id: ID!) { environment(modelId: $id, name: "staging") { id }
        model(id: $id) { environment(name: "staging") { id } } }`,
      { id: model.id },
    );
    expect(byName.environment.id).toBe(env.id);
    expect(byName.model.environment.id).toBe(env.id);
  });

  it("gives production the defaults too", async () => {
    const model = await newModel();
    const prod = await read(model.productionId);
    expect(prod).toMatchObject({ name: "production", isProduction: true });
    expect(prod.promotionSettings).toEqual(DEFAULT_PROMOTION);
    expect(prod.autoscalingSettings).toEqual(DEFAULT_AUTOSCALING);
  });

  it("creates an environment with the settings sent, defaults for the rest", async () => {
    const model = await newModel();
    const env = await create({
      modelId: model.id,
      name: "canary-1",
      promotionSettings: {
        rampUpWhilePromoting: true,
        rampUpDurationSeconds: 120,
        cleanupStrategy: "DEACTIVATE",
        errorRateThresholdPercent: 5,
      },
      autoscalingSettings: { minReplica: 1, maxReplica: 3, concurrencyTarget: 4 },
    });
    expect(env.__typename).toBe("Environment");
    expect(env.promotionSettings).toEqual({
      ...DEFAULT_PROMOTION,
      rampUpWhilePromoting: true,
      rampUpDurationSeconds: 120,
      cleanupStrategy: "DEACTIVATE",
      errorRateThresholdPercent: 5,
    });
    expect(env.autoscalingSettings).toEqual({
      ...DEFAULT_AUTOSCALING,
      minReplica: 1,
      maxReplica: 3,
      concurrencyTarget: 4,
    });
    expect(await read(env.id)).toMatchObject({
      promotionSettings: env.promotionSettings,
      autoscalingSettings: env.autoscalingSettings,
    });
  });

  it("refuses names that do not match the rule with INVALID_INPUT on name", async () => {
    const model = await newModel();
    for (const name of [
      "",
      "Staging",
      "-staging",
      "staging_1",
      "staging.1",
      "stag ing",
      "stag/ing",
      "a".repeat(64),
      "ünicode",
    ]) {
      const result = await create({ modelId: model.id, name });
      expect(result, `name '${name}'`).toMatchObject({
        __typename: "UserError",
        code: "INVALID_INPUT",
        field: "name",
      });
    }
    const longest = await create({ modelId: model.id, name: "a".repeat(63) });
    expect(longest.__typename).toBe("Environment");
    const short = await create({ modelId: model.id, name: "1" });
    expect(short.__typename).toBe("Environment");
    expect(await environmentNames(model.id)).toEqual(["production", "a".repeat(63), "1"]);
  });

  it("refuses 'production' with RESERVED_NAME", async () => {
    const model = await newModel();
    const result = await create({ modelId: model.id, name: "production" });
    expect(result).toMatchObject({ __typename: "UserError", code: "RESERVED_NAME", field: "name" });
    expect(await environmentNames(model.id)).toEqual(["production"]);
  });

  it("refuses a name already used by a live environment of the model with NAME_TAKEN", async () => {
    const model = await newModel();
    const other = await newModel();
    expect((await create({ modelId: model.id, name: "qa" })).__typename).toBe("Environment");
    const again = await create({ modelId: model.id, name: "qa" });
    expect(again).toMatchObject({ __typename: "UserError", code: "NAME_TAKEN", field: "name" });
    // Names are per model.
    expect((await create({ modelId: other.id, name: "qa" })).__typename).toBe("Environment");
  });

  it("gives NAME_TAKEN to all but one of concurrent creations of the same name", async () => {
    const model = await newModel();
    const results = await Promise.all(
      Array.from({ length: 6 }, () => create({ modelId: model.id, name: "race" })),
    );
    const created = results.filter((r) => r.__typename === "Environment");
    const refused = results.filter((r) => r.__typename === "UserError");
    expect(created).toHaveLength(1);
    for (const r of refused) expect(r).toMatchObject({ code: "NAME_TAKEN", field: "name" });
    expect(await environmentNames(model.id)).toEqual(["production", "race"]);
  });

  it("refuses an unknown, malformed or deleted model with NOT_FOUND on modelId", async () => {
    for (const modelId of ["mdl_AAAAAAAAAAAAAAAA", "garbage", "env_AAAAAAAAAAAAAAAA", ""]) {
      const result = await create({ modelId, name: "staging" });
      expect(result).toMatchObject({ __typename: "UserError", code: "NOT_FOUND", field: "modelId" });
    }
    const model = await newModel();
    await gql(hangar, `mutation($id: ID!) { deleteModel(id: $id) { __typename } }`, { id: model.id });
    const result = await create({ modelId: model.id, name: "staging" });
    expect(result).toMatchObject({ __typename: "UserError", code: "NOT_FOUND", field: "modelId" });
  });

  it("refuses invalid settings with INVALID_INPUT on the offending field and creates nothing", async () => {
    const model = await newModel();
    const cases: [Record<string, unknown>, string][] = [
      [{ promotionSettings: { rampUpDurationSeconds: 0 } }, "rampUpDurationSeconds"],
      [{ promotionSettings: { rampUpDurationSeconds: 86_401 } }, "rampUpDurationSeconds"],
      [{ promotionSettings: { progressDeadlineSeconds: 0 } }, "progressDeadlineSeconds"],
      [{ promotionSettings: { errorRateThresholdPercent: 0 } }, "errorRateThresholdPercent"],
      [{ promotionSettings: { errorRateThresholdPercent: 101 } }, "errorRateThresholdPercent"],
      [{ promotionSettings: { redeployOnPromotion: null } }, "redeployOnPromotion"],
      [{ autoscalingSettings: { maxReplica: 0 } }, "maxReplica"],
      [{ autoscalingSettings: { minReplica: 2, maxReplica: 1 } }, "minReplica"],
      [{ autoscalingSettings: { autoscalingWindow: 3601 } }, "autoscalingWindow"],
      [{ autoscalingSettings: { targetUtilizationPercentage: 0 } }, "targetUtilizationPercentage"],
    ];
    for (const [settings, field] of cases) {
      const result = await create({ modelId: model.id, name: "bad-settings", ...settings });
      expect(result, JSON.stringify(settings)).toMatchObject({
        __typename: "UserError",
        code: "INVALID_INPUT",
        field,
      });
    }
    expect(await environmentNames(model.id)).toEqual(["production"]);
  });
});

describe("updateEnvironment", () => {
  it("changes only the fields sent", async () => {
    const model = await newModel();
    const env = await create({ modelId: model.id, name: "staging" });
    const first = await update({
      environmentId: env.id,
      promotionSettings: { rampUpWhilePromoting: true, errorRateThresholdPercent: 10 },
    });
    expect(first.__typename).toBe("Environment");
    expect(first.promotionSettings).toEqual({
      ...DEFAULT_PROMOTION,
      rampUpWhilePromoting: true,
      errorRateThresholdPercent: 10,
    });
    expect(first.autoscalingSettings).toEqual(DEFAULT_AUTOSCALING);

    const second = await update({
      environmentId: env.id,
      promotionSettings: { cleanupStrategy: "KEEP", redeployOnPromotion: true },
      autoscalingSettings: { maxReplica: 4, scaleDownDelay: 0 },
    });
    expect(second.promotionSettings).toEqual({
      ...DEFAULT_PROMOTION,
      rampUpWhilePromoting: true,
      errorRateThresholdPercent: 10,
      cleanupStrategy: "KEEP",
      redeployOnPromotion: true,
    });
    expect(second.autoscalingSettings).toEqual({ ...DEFAULT_AUTOSCALING, maxReplica: 4, scaleDownDelay: 0 });

    // Only autoscaling sent: promotion settings stay; an empty update changes nothing.
    const third = await update({ environmentId: env.id, autoscalingSettings: { minReplica: 2 } });
    expect(third.promotionSettings).toEqual(second.promotionSettings);
    expect(third.autoscalingSettings).toEqual({ ...second.autoscalingSettings, minReplica: 2 });
    const empty = await update({ environmentId: env.id });
    expect(empty.promotionSettings).toEqual(third.promotionSettings);
    expect(empty.autoscalingSettings).toEqual(third.autoscalingSettings);
    expect(await read(env.id)).toMatchObject({
      promotionSettings: third.promotionSettings,
      autoscalingSettings: third.autoscalingSettings,
    });
  });

  it("turns errorRateThresholdPercent off with an explicit null, and leaves it when absent", async () => {
    const model = await newModel();
    const env = await create({
      modelId: model.id,
      name: "staging",
      promotionSettings: { errorRateThresholdPercent: 25 },
    });
    expect(env.promotionSettings.errorRateThresholdPercent).toBe(25);
    const absent = await update({ environmentId: env.id, promotionSettings: { rampUpDurationSeconds: 30 } });
    expect(absent.promotionSettings).toMatchObject({
      errorRateThresholdPercent: 25,
      rampUpDurationSeconds: 30,
    });
    const off = await update({
      environmentId: env.id,
      promotionSettings: { errorRateThresholdPercent: null },
    });
    expect(off.promotionSettings).toEqual({ ...DEFAULT_PROMOTION, rampUpDurationSeconds: 30 });
    // Through a variable too: a null inside the input object is "explicit".
    await update({ environmentId: env.id, promotionSettings: { errorRateThresholdPercent: 50 } });
    const literal = await gql(
      hangar,
      `mutation($id: ID!) { updateEnvironment(input: { environmentId: $id,
        promotionSettings: { errorRateThresholdPercent: null } }) {
        ... on Environment { promotionSettings { errorRateThresholdPercent rampUpDurationSeconds } } } }`,
      { id: env.id },
    );
    expect(literal.updateEnvironment.promotionSettings).toEqual({
      errorRateThresholdPercent: null,
      rampUpDurationSeconds: 30,
    });
  });

  it("refuses out-of-range values with INVALID_INPUT on the field and changes nothing", async () => {
    const model = await newModel();
    const env = await create({
      modelId: model.id,
      name: "staging",
      promotionSettings: { rampUpDurationSeconds: 100 },
      autoscalingSettings: { maxReplica: 2 },
    });
    const before = await read(env.id);
    const cases: [Record<string, unknown>, string][] = [
      [{ promotionSettings: { rampUpDurationSeconds: -1 } }, "rampUpDurationSeconds"],
      [{ promotionSettings: { progressDeadlineSeconds: 86_401 } }, "progressDeadlineSeconds"],
      [{ promotionSettings: { errorRateThresholdPercent: 101 } }, "errorRateThresholdPercent"],
      [{ promotionSettings: { rampUpWhilePromoting: null } }, "rampUpWhilePromoting"],
      [{ promotionSettings: { cleanupStrategy: null } }, "cleanupStrategy"],
      [{ promotionSettings: { progressDeadlineSeconds: null } }, "progressDeadlineSeconds"],
      [{ autoscalingSettings: { minReplica: 3 } }, "minReplica"],
      [{ autoscalingSettings: { scaleDownDelay: 3601 } }, "scaleDownDelay"],
      [{ autoscalingSettings: { concurrencyTarget: 0 } }, "concurrencyTarget"],
      [{ autoscalingSettings: { maxReplica: null } }, "maxReplica"],
      // A valid half does not go through when the other half is refused.
      [
        { promotionSettings: { rampUpDurationSeconds: 5 }, autoscalingSettings: { minReplica: -1 } },
        "minReplica",
      ],
      [
        { promotionSettings: { errorRateThresholdPercent: 0 }, autoscalingSettings: { maxReplica: 5 } },
        "errorRateThresholdPercent",
      ],
    ];
    for (const [settings, field] of cases) {
      const result = await update({ environmentId: env.id, ...settings });
      expect(result, JSON.stringify(settings)).toMatchObject({
        __typename: "UserError",
        code: "INVALID_INPUT",
        field,
      });
    }
    expect(await read(env.id)).toEqual(before);
  });

  it("updates production's settings too", async () => {
    const model = await newModel();
    const prod = await update({
      environmentId: model.productionId,
      promotionSettings: { redeployOnPromotion: true },
      autoscalingSettings: { concurrencyTarget: 8 },
    });
    expect(prod).toMatchObject({
      __typename: "Environment",
      name: "production",
      promotionSettings: { ...DEFAULT_PROMOTION, redeployOnPromotion: true },
      autoscalingSettings: { ...DEFAULT_AUTOSCALING, concurrencyTarget: 8 },
    });
  });

  it("refuses unknown, malformed and deleted environments with NOT_FOUND on environmentId", async () => {
    const model = await newModel();
    const env = await create({ modelId: model.id, name: "gone" });
    await remove(env.id);
    for (const environmentId of ["env_AAAAAAAAAAAAAAAA", "garbage", model.id, "", env.id]) {
      const result = await update({ environmentId, promotionSettings: { redeployOnPromotion: true } });
      expect(result, environmentId).toMatchObject({
        __typename: "UserError",
        code: "NOT_FOUND",
        field: "environmentId",
      });
    }
  });

  it("with a current deployment, keeps the environment's and the deployment's autoscaling settings one", async () => {
    const dep = await pushFolder(
      hangar,
      "env-sync",
      await modelFolder({ "model.mjs": "export default class M { predict() { return 1; } }" }),
    );
    const env = (
      await gql(hangar, `query($id: ID!) { model(id: $id) { productionEnvironment { id } } }`, {
        id: dep.model.id,
      })
    ).model.productionEnvironment;
    await promoteAndWait(dep.id);
    const updated = await update({ environmentId: env.id, autoscalingSettings: { maxReplica: 4 } });
    expect(updated.autoscalingSettings.maxReplica).toBe(4);
    const read1 = await gql(
      hangar,
      `query($id: ID!) { deployment(id: $id) { autoscalingSettings { maxReplica scaleDownDelay } } }`,
      {
        id: dep.id,
      },
    );
    expect(read1.deployment.autoscalingSettings.maxReplica).toBe(4);
    await gql(
      hangar,
      `mutation($id: ID!) { updateAutoscalingSettings(input: { deploymentId: $id, settings: { scaleDownDelay: 33 } }) { __typename } }`,
      { id: dep.id },
    );
    const envNow = await read(env.id);
    expect(envNow.autoscalingSettings).toMatchObject({ maxReplica: 4, scaleDownDelay: 33 });
  });
});

describe("deleteEnvironment", () => {
  it("refuses to delete production with PRODUCTION_ENVIRONMENT_PROTECTED", async () => {
    const model = await newModel();
    const result = await remove(model.productionId);
    expect(result).toMatchObject({
      __typename: "UserError",
      code: "PRODUCTION_ENVIRONMENT_PROTECTED",
      field: "id",
    });
    expect(await read(model.productionId)).toMatchObject({ name: "production", deletedAt: null });
    expect(await environmentNames(model.id)).toEqual(["production"]);
  });

  it("answers NOT_FOUND for unknown, malformed and already deleted environments", async () => {
    const model = await newModel();
    const env = await create({ modelId: model.id, name: "twice" });
    expect((await remove(env.id)).__typename).toBe("Environment");
    for (const id of ["env_AAAAAAAAAAAAAAAA", "garbage", "env_short", model.id, "", env.id]) {
      const result = await remove(id);
      expect(result, id).toMatchObject({ __typename: "UserError", code: "NOT_FOUND", field: "id" });
    }
  });

  it("soft-deletes: the environment leaves lists and names, stays readable by ID, its path answers 404", async () => {
    const model = await newModel();
    const env = await create({ modelId: model.id, name: "preview" });
    const path = `/models/${model.id}/environments/preview/predict`;
    const before = await predict(hangar, path, { x: 1 });
    expect(before.status).toBe(404);
    expect(before.body).toMatchObject({ error_code: "no_deployment" });

    const deleted = await remove(env.id);
    expect(deleted).toMatchObject({ __typename: "Environment", id: env.id, name: "preview" });
    expect(Number.isNaN(Date.parse(deleted.deletedAt))).toBe(false);

    expect(await environmentNames(model.id)).toEqual(["production"]);
    const byName = await gql(
      hangar,
      `query($id: ID!) { environment(modelId: $id, name: "preview") { id }
        model(id: $id) { environment(name: "preview") { id } } }`,
      { id: model.id },
    );
    expect(byName).toEqual({ environment: null, model: { environment: null } });
    expect(await read(env.id)).toMatchObject({
      id: env.id,
      name: "preview",
      deletedAt: deleted.deletedAt,
      promotionSettings: DEFAULT_PROMOTION,
      autoscalingSettings: DEFAULT_AUTOSCALING,
    });

    const after = await predict(hangar, path, { x: 1 });
    expect(after.status).toBe(404);
    expect(after.body).toMatchObject({ error_code: "environment_does_not_exist" });
    const wake = await predict(hangar, `/models/${model.id}/environments/preview/wake`, {});
    expect(wake.status).toBe(404);
    expect(wake.body).toMatchObject({ error_code: "environment_does_not_exist" });
  });

  it("frees the name: a new environment of that name is a different one", async () => {
    const model = await newModel();
    const first = await create({
      modelId: model.id,
      name: "reuse",
      promotionSettings: { rampUpWhilePromoting: true },
    });
    await remove(first.id);
    const second = await create({ modelId: model.id, name: "reuse" });
    expect(second.__typename).toBe("Environment");
    expect(second.id).not.toBe(first.id);
    expect(second.promotionSettings).toEqual(DEFAULT_PROMOTION);
    expect(await environmentNames(model.id)).toEqual(["production", "reuse"]);
    const path = await predict(hangar, `/models/${model.id}/environments/reuse/predict`, {});
    expect(path.body).toMatchObject({ error_code: "no_deployment" });
    expect((await read(first.id)).deletedAt).not.toBeNull();
  });

  it("refuses an environment with an active promotion with PROMOTION_IN_PROGRESS", async () => {
    const dep = await pushFolder(
      hangar,
      "env-busy",
      await modelFolder({
        "model.mjs":
          "export default class M { async load() { await new Promise((r) => setTimeout(r, 10000)); } predict() { return 1; } }",
      }),
    );
    const env = (await create({ modelId: dep.model.id, name: "busy" })) as { id: string };
    const started = await gql(
      hangar,
      `mutation($id: ID!) { promote(input: { deploymentId: $id, environment: "busy" }) { __typename } }`,
      { id: dep.id },
    );
    expect(started.promote.__typename).toBe("Promotion");
    expect(await remove(env.id)).toMatchObject({ __typename: "UserError", code: "PROMOTION_IN_PROGRESS" });
    await gql(hangar, `mutation($id: ID!) { cancelPromotion(environmentId: $id) { __typename } }`, {
      id: env.id,
    });
    expect((await remove(env.id)).__typename).toBe("Environment");
  });
});

describe("events", () => {
  it("records ENVIRONMENT_CREATED, ENVIRONMENT_UPDATED and ENVIRONMENT_DELETED with the environment", async () => {
    const model = await newModel();
    const env = await create({ modelId: model.id, name: "audited" });
    await update({ environmentId: env.id, promotionSettings: { rampUpDurationSeconds: 60 } });
    // Refusals and updates that send nothing leave no event.
    await update({ environmentId: env.id });
    await update({ environmentId: env.id, promotionSettings: { rampUpDurationSeconds: 0 } });
    await create({ modelId: model.id, name: "audited" });
    await remove(model.productionId);
    await remove(env.id);
    const data = await gql(
      hangar,
      `query($id: ID!) { model(id: $id) { events(first: 100) { edges { node {
        type message environment { id name deletedAt } } } } } }`,
      { id: model.id },
    );
    const events = data.model.events.edges
      .map((e: { node: { type: string } }) => e.node)
      .filter((e: { type: string }) => e.type.startsWith("ENVIRONMENT_"));
    expect(
      events.map((e: { type: string; environment: { name: string } }) => [e.type, e.environment.name]),
    ).toEqual([
      ["ENVIRONMENT_CREATED", "production"],
      ["ENVIRONMENT_CREATED", "audited"],
      ["ENVIRONMENT_UPDATED", "audited"],
      ["ENVIRONMENT_DELETED", "audited"],
    ]);
    for (const event of events.slice(1)) {
      expect(event.environment.id).toBe(env.id);
      expect(event.message).toContain("audited");
    }
    expect(events[2].message).toContain("rampUpDurationSeconds");
    expect(events[3].environment.deletedAt).not.toBeNull();
  });
});

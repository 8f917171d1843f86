import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  type GqlResult,
  gqlRaw,
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
import { asKey, createKey, type KeyInput } from "../support/keys.ts";
import { createEnvironment, finished, promoteTo } from "../support/promotions.ts";

/**
 * The permission matrix of API.md section 7, end to end: every role and scope
 * against every kind of operation (query, list, node, mutation, subscription,
 * each gateway path kind), asserting the exact outcome a client sees.
 */

const MODEL = `export default class Model {
  async load() {}
  async predict(input) { return { ok: true, input }; }
}`;

// biome-ignore lint/suspicious/noExplicitAny: test data is inspected loosely.
type Json = any;

let hangar: TestHangar;
let alpha: { modelId: string; deploymentId: string; stagingId: string; productionId: string };
let beta: { modelId: string; deploymentId: string; productionId: string };
const secrets = new Map<string, string>();

const KEYS: (KeyInput & { label: string })[] = [
  { label: "deployer", name: "deployer", role: "DEPLOYER" },
  { label: "deployerAlpha", name: "deployer-alpha", role: "DEPLOYER" },
  { label: "deployerStaging", name: "deployer-staging", role: "DEPLOYER", environments: ["staging"] },
  { label: "viewer", name: "viewer", role: "VIEWER" },
  { label: "viewerAlpha", name: "viewer-alpha", role: "VIEWER" },
  { label: "inference", name: "inference", role: "INFERENCE" },
  { label: "inferenceProd", name: "inference-prod", role: "INFERENCE", environments: ["production"] },
  { label: "inferenceAlpha", name: "inference-alpha", role: "INFERENCE" },
];
const ALPHA_SCOPED = new Set(["deployerAlpha", "viewerAlpha", "inferenceAlpha"]);

beforeAll(async () => {
  hangar = await startHangar();
  const folder = await modelFolder({ "model.mjs": MODEL });
  const a = await pushFolder(hangar, "alpha", folder);
  const b = await pushFolder(hangar, "beta", folder);
  await waitForStatus(hangar, a.id, "ACTIVE");
  await waitForStatus(hangar, b.id, "ACTIVE");
  for (const d of [a, b]) {
    const promotion = await promoteTo(hangar, d.id, "production");
    expect((await finished(hangar, promotion.id)).status).toBe("SUCCEEDED");
  }
  const stagingId = await createEnvironment(hangar, { modelId: a.model.id, name: "staging" });
  const ids = await gqlRaw(
    hangar,
    "query($a: ID!, $b: ID!) { a: model(id: $a) { productionEnvironment { id } } b: model(id: $b) { productionEnvironment { id } } }",
    { a: a.model.id, b: b.model.id },
  );
  alpha = {
    modelId: a.model.id,
    deploymentId: a.id,
    stagingId,
    productionId: ids.body.data.a.productionEnvironment.id,
  };
  beta = { modelId: b.model.id, deploymentId: b.id, productionId: ids.body.data.b.productionEnvironment.id };
  for (const key of KEYS) {
    const { label, ...input } = key;
    const scoped = ALPHA_SCOPED.has(label) ? { ...input, modelIds: [alpha.modelId] } : input;
    secrets.set(label, (await createKey(hangar, scoped)).secret);
  }
  secrets.set("admin", hangar.key);
}, 180_000);

afterAll(async () => {
  await hangar?.dispose();
});

/** The outcome of one GraphQL call: an error's code, or what the named field answered. */
function outcome(body: GqlResult<Json>, field: string, read: (value: Json) => string = () => "data"): string {
  const error = body.errors?.[0];
  if (error) return String(error.extensions?.code ?? "error");
  const value = body.data?.[field];
  return value == null ? "null" : read(value);
}

let created = 0;

type Operation = (h: TestHangar) => Promise<string>;

const typename = (value: Json) => String(value.__typename === "UserError" ? value.code : value.__typename);

const updateEnvironment =
  (environmentId: () => string): Operation =>
  async (h) => {
    const { body } = await gqlRaw(
      h,
      `mutation($id: ID!) { updateEnvironment(input: { environmentId: $id, promotionSettings: { rampUpDurationSeconds: 30 } }) {
      __typename ... on UserError { code } } }`,
      { id: environmentId() },
    );
    return outcome(body, "updateEnvironment", typename);
  };

/** The first answer of a subscription: data, or the error's code. */
function firstMessage(h: TestHangar, query: string, variables: Record<string, unknown>): Promise<string> {
  const client = wsClient(h);
  return new Promise<string>((resolve) => {
    const dispose = client.subscribe<Json>(
      { query, variables },
      {
        next: (value) => {
          resolve(value.errors ? String(value.errors[0]?.extensions?.code ?? "error") : "data");
          dispose();
        },
        error: (error: Json) => resolve(String(error?.[0]?.extensions?.code ?? "error")),
        complete: () => resolve("complete"),
      },
    );
  }).finally(() => client.dispose());
}

async function gateway(h: TestHangar, path: string): Promise<string> {
  const answer = await predict(h, path, { x: 1 });
  return answer.status === 200 ? "200" : `${answer.status} ${answer.body?.error_code}`;
}

const OPERATIONS: Record<string, Operation> = {
  "query model out of alpha": async (h) =>
    outcome(
      (await gqlRaw(h, "query($id: ID!) { model(id: $id) { name } }", { id: beta.modelId })).body,
      "model",
    ),
  "list models": async (h) =>
    outcome((await gqlRaw(h, "{ models { edges { node { name } } } }")).body, "models", (value) =>
      value.edges
        .map((e: Json) => e.node.name)
        .filter((n: string) => n === "alpha" || n === "beta")
        .join(","),
    ),
  "node of beta": async (h) =>
    outcome((await gqlRaw(h, "query($id: ID!) { node(id: $id) { id } }", { id: beta.modelId })).body, "node"),
  "update staging": updateEnvironment(() => alpha.stagingId),
  "update alpha production": updateEnvironment(() => alpha.productionId),
  "update beta production": updateEnvironment(() => beta.productionId),
  "create model": async (h) => {
    created += 1;
    const { body } = await gqlRaw(
      h,
      `mutation($name: String!) { createModel(input: { name: $name }) { __typename ... on UserError { code } } }`,
      { name: `created-${created}` },
    );
    return outcome(body, "createModel", typename);
  },
  "autoscale alpha's production deployment": async (h) => {
    const { body } = await gqlRaw(
      h,
      `mutation($id: ID!) { updateAutoscalingSettings(input: { deploymentId: $id, settings: { scaleDownDelay: 900 } }) {
        __typename ... on UserError { code } } }`,
      { id: alpha.deploymentId },
    );
    return outcome(body, "updateAutoscalingSettings", typename);
  },
  "list keys": async (h) =>
    outcome((await gqlRaw(h, "{ apiKeys { edges { node { name } } } }")).body, "apiKeys"),
  viewer: async (h) =>
    outcome((await gqlRaw(h, "{ viewer { role } }")).body, "viewer", (value) => value.role),
  "server info": async (h) =>
    outcome((await gqlRaw(h, "{ serverInfo { version member } }")).body, "serverInfo"),
  "subscribe to beta's deployment": (h) =>
    firstMessage(h, "subscription($id: ID!) { deploymentStatus(deploymentId: $id) { id status } }", {
      id: beta.deploymentId,
    }),
  "gateway alpha production": (h) => gateway(h, `/models/${alpha.modelId}/predict`),
  "gateway alpha staging": (h) => gateway(h, `/models/${alpha.modelId}/environments/staging/predict`),
  "gateway alpha deployment": (h) =>
    gateway(h, `/models/${alpha.modelId}/deployments/${alpha.deploymentId}/predict`),
  "gateway alpha development": (h) => gateway(h, `/models/${alpha.modelId}/development/predict`),
  "gateway beta production": (h) => gateway(h, `/models/${beta.modelId}/production/predict`),
};

const F = "FORBIDDEN";
const G403 = "403 forbidden";
const GONE = "404 model_does_not_exist";
const NODEP = "404 no_deployment";

/** Expected outcomes, one column per key (admin is the bootstrap key). */
const COLUMNS = [
  "admin",
  "deployer",
  "deployerAlpha",
  "deployerStaging",
  "viewer",
  "viewerAlpha",
  "inference",
  "inferenceProd",
  "inferenceAlpha",
] as const;
const MATRIX: Record<string, string[]> = {
  //                                  admin        deployer      deployerAlpha deployerStaging viewer   viewerAlpha inference inferenceProd inferenceAlpha
  "query model out of alpha": ["data", "data", "null", "data", "data", "null", F, F, F],
  "list models": ["alpha,beta", "alpha,beta", "alpha", "alpha,beta", "alpha,beta", "alpha", F, F, F],
  "node of beta": ["data", "data", "null", "data", "data", "null", F, F, F],
  "update staging": ["Environment", "Environment", "Environment", "Environment", F, F, F, F, F],
  "update alpha production": ["Environment", "Environment", "Environment", F, F, F, F, F, F],
  "update beta production": ["Environment", "Environment", "NOT_FOUND", F, F, F, F, F, F],
  "create model": ["Model", "Model", F, F, F, F, F, F, F],
  "autoscale alpha's production deployment": ["Deployment", "Deployment", "Deployment", F, F, F, F, F, F],
  "list keys": ["data", F, F, F, F, F, F, F, F],
  viewer: [
    "ADMIN",
    "DEPLOYER",
    "DEPLOYER",
    "DEPLOYER",
    "VIEWER",
    "VIEWER",
    "INFERENCE",
    "INFERENCE",
    "INFERENCE",
  ],
  "server info": ["data", "data", "data", "data", "data", "data", "data", "data", "data"],
  "subscribe to beta's deployment": ["data", "data", "error", "data", "data", "error", F, F, F],
  "gateway alpha production": ["200", "200", "200", "200", G403, G403, "200", "200", "200"],
  "gateway alpha staging": [NODEP, NODEP, NODEP, NODEP, G403, G403, NODEP, G403, NODEP],
  "gateway alpha deployment": ["200", "200", "200", "200", G403, G403, "200", G403, "200"],
  "gateway alpha development": [NODEP, NODEP, NODEP, NODEP, G403, G403, NODEP, G403, NODEP],
  "gateway beta production": ["200", "200", GONE, "200", G403, GONE, "200", "200", GONE],
};

describe("the permission matrix", () => {
  for (const [operation, expected] of Object.entries(MATRIX)) {
    it(operation, async () => {
      const run = OPERATIONS[operation];
      if (!run) throw new Error(`no operation '${operation}'`);
      const seen: Record<string, string> = {};
      for (const column of COLUMNS) {
        seen[column] = await run(asKey(hangar, secrets.get(column) as string));
      }
      expect(seen).toEqual(Object.fromEntries(COLUMNS.map((column, i) => [column, expected[i]])));
    });
  }
});

async function pushAs(label: string, input: { modelName: string; environment?: string }) {
  const { body } = await push(
    asKey(hangar, secrets.get(label) as string),
    input,
    await pack(await modelFolder({ "model.mjs": MODEL })),
  );
  const result = body.data?.pushDeployment;
  if (result) return result.__typename === "UserError" ? result.code : result.__typename;
  return String(body.errors?.[0]?.extensions?.code ?? JSON.stringify(body));
}

describe("uploads", () => {
  it("lets only keys that may push to that model push", async () => {
    expect(await pushAs("viewer", { modelName: "alpha" })).toBe(F);
    expect(await pushAs("inference", { modelName: "alpha" })).toBe(F);
    expect(await pushAs("deployerAlpha", { modelName: "alpha" })).toBe("Deployment");
    // Outside its models: refused whether or not the model exists.
    expect(await pushAs("deployerAlpha", { modelName: "beta" })).toBe(F);
    expect(await pushAs("deployerAlpha", { modelName: "gamma" })).toBe(F);
    // Limited to environments: may push to an existing model, into listed environments only.
    expect(await pushAs("deployerStaging", { modelName: "gamma" })).toBe(F);
    expect(await pushAs("deployerStaging", { modelName: "alpha", environment: "production" })).toBe(F);
    expect(await pushAs("deployerStaging", { modelName: "alpha" })).toBe("Deployment");
    const models = await gqlRaw(hangar, `{ model(name: "gamma") { id } }`);
    expect(models.body.data.model).toBeNull();
  });

  it("lets a key limited to staging promote into staging but not into production", async () => {
    const h = asKey(hangar, secrets.get("deployerStaging") as string);
    const promote = (environment: string) =>
      gqlRaw(
        h,
        `mutation($id: ID!, $env: String!) { promote(input: { deploymentId: $id, environment: $env }) {
          __typename ... on Promotion { id } ... on UserError { code } } }`,
        { id: alpha.deploymentId, env: environment },
      );
    const production = await promote("production");
    expect(production.body.errors?.[0]?.extensions?.code).toBe(F);
    expect(production.body.errors?.[0]?.message).toContain("environment 'production'");
    const staging = await promote("staging");
    expect(staging.body.data.promote.__typename).toBe("Promotion");
    expect((await finished(hangar, staging.body.data.promote.id)).status).toBe("SUCCEEDED");
    // Now the deployment serves staging and production: acting on it needs both.
    const deactivate = await gqlRaw(
      h,
      `mutation($id: ID!) { deactivateDeployment(id: $id) { __typename } }`,
      { id: alpha.deploymentId },
    );
    expect(deactivate.body.errors?.[0]?.extensions?.code).toBe(F);
  });
});

describe("events", () => {
  it("name the key whose mutation wrote them, and none for the controllers' own", async () => {
    const h = asKey(hangar, secrets.get("deployer") as string);
    const update = await gqlRaw(
      h,
      `mutation($id: ID!) { updateEnvironment(input: { environmentId: $id, promotionSettings: { rampUpDurationSeconds: 31 } }) { __typename } }`,
      { id: beta.productionId },
    );
    expect(update.body.data.updateEnvironment.__typename).toBe("Environment");
    const { body } = await gqlRaw(
      hangar,
      "query($id: ID!) { model(id: $id) { events(first: 500) { edges { node { type actor message } } } } }",
      { id: beta.modelId },
    );
    const events = body.data.model.events.edges.map((e: Json) => e.node);
    const updated = events.filter((e: Json) => e.type === "ENVIRONMENT_UPDATED" && e.message.includes("31"));
    expect(updated.map((e: Json) => e.actor)).toEqual(["deployer"]);
    // The push (by the bootstrap key) and the controllers' status changes.
    expect(events.find((e: Json) => e.type === "DEPLOYMENT_CREATED").actor).toBe("admin");
    const ready = events.find(
      (e: Json) => e.type === "DEPLOYMENT_STATUS_CHANGED" && e.message.includes("-> ACTIVE"),
    );
    expect(ready.actor).toBeNull();
  });
});

describe("shared subscriptions", () => {
  it("never share an execution between keys that see different things", async () => {
    const query = "subscription($id: ID!) { deploymentStatus(deploymentId: $id) { id status } }";
    // The admin's subscription is running: an identical one would join it if sharing ignored the key.
    const adminClient = wsClient(hangar);
    const held = subscribe(adminClient, query, { id: beta.deploymentId });
    await held.until((items) => items.length >= 1);
    try {
      expect(
        await firstMessage(asKey(hangar, secrets.get("viewerAlpha") as string), query, {
          id: beta.deploymentId,
        }),
      ).toBe("error");
      expect(
        await firstMessage(asKey(hangar, secrets.get("inference") as string), query, {
          id: beta.deploymentId,
        }),
      ).toBe(F);
      expect(
        await firstMessage(asKey(hangar, secrets.get("viewer") as string), query, { id: beta.deploymentId }),
      ).toBe("data");
    } finally {
      held.dispose();
      await adminClient.dispose();
    }
  });
});

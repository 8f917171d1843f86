import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { cliEnv, runCli, runCliJson } from "../support/cli.ts";
import { gql, modelFolder, pushFolder, waitForStatus } from "../support/client.ts";
import { startHangar, type TestHangar } from "../support/hangar.ts";
import { waitFor } from "../support/wait.ts";

// biome-ignore lint/suspicious/noExplicitAny: --json output is inspected loosely.
type Json = any;

let hangar: TestHangar;
let env: Record<string, string>;

beforeAll(async () => {
  hangar = await startHangar();
  env = cliEnv(hangar);
});

afterAll(async () => {
  await hangar?.dispose();
});

const MODEL = { "model.mjs": "export default class M { predict() { return { ok: true }; } }" };

describe("listings", () => {
  let modelId: string;
  let published: Json;
  let development: Json;

  beforeAll(async () => {
    published = await pushFolder(hangar, "listed", await modelFolder(MODEL), { deploymentName: "v1" });
    development = await pushFolder(hangar, "listed", await modelFolder(MODEL), { development: true });
    modelId = published.model.id;
    await waitForStatus(hangar, published.id, "ACTIVE");
    const promoted = await gql(
      hangar,
      `mutation($id: ID!) { promote(input: { deploymentId: $id }) { ... on Promotion { id } } }`,
      { id: published.id },
    );
    expect(promoted.promote.id).toBeTruthy();
    await gql(
      hangar,
      `mutation($id: ID!) { createEnvironment(input: { modelId: $id, name: "staging" }) { __typename } }`,
      { id: modelId },
    );
    // Wait for production to be served, so that the listings below see a settled state.
    await waitFor(
      async () =>
        (
          await gql(
            hangar,
            `query($id: ID!) { model(id: $id) { productionEnvironment { currentDeployment { id } } } }`,
            { id: modelId },
          )
        ).model.productionEnvironment.currentDeployment,
      { what: "production to be served" },
    );
  });

  it("models --json: every model with its id, as the API lists them", async () => {
    const listed = await runCliJson(["models"], { env });
    const api = await gql(hangar, "{ models(first: 500) { edges { node { id name } } } }");
    expect(listed.map((m: Json) => ({ id: m.id, name: m.name }))).toEqual(
      api.models.edges.map((e: Json) => e.node),
    );
    expect(listed.find((m: Json) => m.id === modelId)).toMatchObject({
      name: "listed",
      productionDeploymentId: published.id,
      developmentDeploymentId: development.id,
      environments: expect.arrayContaining(["production", "staging"]),
    });
  });

  it("deployments MODEL --json, by name or by ID, matches the API", async () => {
    const byName = await runCliJson(["deployments", "listed"], { env });
    expect(await runCliJson(["deployments", modelId], { env })).toEqual(byName);
    const api = await gql(
      hangar,
      `query($id: ID!) { model(id: $id) { deployments(first: 500) { edges { node { id name kind status environment { name } } } } } }`,
      { id: modelId },
    );
    expect(byName.map((d: Json) => d.id)).toEqual(api.model.deployments.edges.map((e: Json) => e.node.id));
    const v1 = byName.find((d: Json) => d.id === published.id);
    expect(v1).toMatchObject({ name: "v1", kind: "PUBLISHED", modelId, environment: "production" });
    expect(byName.find((d: Json) => d.id === development.id)).toMatchObject({
      name: "development",
      kind: "DEVELOPMENT",
    });
  });

  it("environments MODEL --json matches the API", async () => {
    const listed = await runCliJson(["environments", "listed"], { env });
    expect(listed.map((e: Json) => e.name).sort()).toEqual(["production", "staging"]);
    const production = listed.find((e: Json) => e.name === "production");
    expect(production).toMatchObject({
      isProduction: true,
      currentDeployment: { id: published.id, name: "v1" },
      inProgressPromotion: null,
    });
    expect(production.id).toMatch(/^env_/);
    expect(production.predictUrl).toContain(`/models/${modelId}/`);
  });

  it("prints tables with headers and the rows' values", async () => {
    const models = await runCli(["models"], { env });
    expect(models.code).toBe(0);
    expect(models.stdout.split("\n")[0]).toMatch(/^NAME\s+ID\s+PRODUCTION/);
    expect(models.stdout).toMatch(new RegExp(`listed\\s+${modelId}\\s+v1 \\(ACTIVE\\)`));
    const deployments = await runCli(["deployments", "listed"], { env });
    expect(deployments.stdout.split("\n")[0]).toMatch(/^NAME\s+ID\s+KIND\s+STATUS\s+REPLICAS\s+ENVIRONMENT/);
    expect(deployments.stdout).toMatch(
      new RegExp(`v1\\s+${published.id}\\s+published\\s+ACTIVE\\s+\\d+\\s+production`),
    );
    const environments = await runCli(["environments", "listed"], { env });
    expect(environments.stdout.split("\n")[0]).toMatch(/^NAME\s+ID\s+CURRENT DEPLOYMENT\s+PROMOTION\s+URL/);
    expect(environments.stdout).toMatch(/production\s+env_\S+\s+v1 \(ACTIVE\)/);
    expect(environments.stdout).toMatch(/staging\s+env_\S+\s+-\s+-\s+http/);
  });

  it("an unknown model is a failed operation with a clear message", async () => {
    for (const command of ["deployments", "environments"]) {
      const result = await runCli([command, "no-such-model"], { env });
      expect(result.code).toBe(1);
      expect(result.stderr).toMatch(/no model named or with ID 'no-such-model'/);
    }
  });

  it("follows pagination past the first page", async () => {
    const names = Array.from({ length: 105 }, (_, i) => `page-${String(i).padStart(3, "0")}`);
    for (const name of names) {
      const created = await gql(
        hangar,
        `mutation($name: String!) { createModel(input: { name: $name }) { __typename } }`,
        { name },
      );
      expect(created.createModel.__typename).toBe("Model");
    }
    const listed: Json[] = await runCliJson(["models"], { env });
    expect(listed.filter((m) => m.name.startsWith("page-")).map((m) => m.name)).toEqual(names);
    expect(new Set(listed.map((m) => m.id)).size).toBe(listed.length);
  });
});

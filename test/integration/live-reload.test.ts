import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { gql, modelFolder, pack, patch, predict, pushFolder, waitForStatus } from "../support/client.ts";
import { startHangar, type TestHangar } from "../support/hangar.ts";

const version = (v: number, extra = "") => ({
  "model.mjs": `import { label } from "./lib.mjs";
export default class M {
  async load() { ${extra} }
  predict() { return { version: ${v}, label, replica: process.env.HANGAR_REPLICA_ID }; }
}`,
  "lib.mjs": `export const label = "v${v}";`,
  "hangar.json": JSON.stringify({ name: "live" }),
});

let hangar: TestHangar;
let modelId: string;
let deploymentId: string;
let devPath: string;

beforeAll(async () => {
  hangar = await startHangar({ env: { HANGAR_AUTOSCALER_INTERVAL_MS: "100" } });
  const dep = await pushFolder(hangar, "live", await modelFolder(version(1)), { development: true });
  modelId = dep.model.id;
  deploymentId = dep.id;
  devPath = `/models/${modelId}/development/predict`;
  await waitForStatus(hangar, dep.id, "ACTIVE");
});

afterAll(async () => {
  await hangar?.dispose();
});

async function answer() {
  const result = await predict(hangar, devPath, {});
  expect(result.status).toBe(200);
  expect(result.deploymentId).toBe(deploymentId);
  return result.body as { version: number; label: string; replica: string };
}

describe("live reload of the development deployment", () => {
  it("swaps code in place: same deployment, same process, new answers", async () => {
    const before = await answer();
    expect(before).toMatchObject({ version: 1, label: "v1" });
    const result = await patch(hangar, modelId, await pack(await modelFolder(version(2))));
    expect(result).toMatchObject({
      applied: true,
      needsFullDeploy: false,
      error: null,
      deployment: { id: deploymentId },
    });
    const after = await answer();
    expect(after).toEqual({ version: 2, label: "v2", replica: before.replica });
  });

  it("does nothing for identical code", async () => {
    const before = await answer();
    const result = await patch(hangar, modelId, await pack(await modelFolder(version(2))));
    expect(result).toMatchObject({ applied: false, needsFullDeploy: false, error: null });
    expect(await answer()).toEqual(before);
  });

  it("keeps the old code serving when the new code fails to load, and says why", async () => {
    const before = await answer();
    const broken = version(3, `throw new Error("tokenizer missing");`);
    const result = await patch(hangar, modelId, await pack(await modelFolder(broken)));
    expect(result).toMatchObject({ applied: false, needsFullDeploy: false });
    expect(result.error).toContain("tokenizer missing");
    expect(await answer()).toEqual(before);
  });

  it("answers needsFullDeploy for a change to hangar.json's env or to dependencies, changing nothing", async () => {
    const before = await answer();
    const withEnv = { ...version(4), "hangar.json": JSON.stringify({ name: "live", env: { MODE: "fast" } }) };
    const envResult = await patch(hangar, modelId, await pack(await modelFolder(withEnv)));
    expect(envResult).toMatchObject({ applied: false, needsFullDeploy: true, error: null });
    const withDeps = {
      ...version(4),
      "package.json": JSON.stringify({ dependencies: { "left-pad": "1.3.0" } }),
    };
    const depsResult = await patch(hangar, modelId, await pack(await modelFolder(withDeps)));
    expect(depsResult).toMatchObject({ applied: false, needsFullDeploy: true });
    expect(await answer()).toEqual(before);
  });

  it("refuses a model without a development deployment and a broken archive", async () => {
    const other = (
      await gql(hangar, `mutation { createModel(input: { name: "no-dev" }) { ... on Model { id } } }`)
    ).createModel;
    const archive = await pack(await modelFolder(version(5)));
    expect(await patch(hangar, other.id, archive)).toMatchObject({
      __typename: "UserError",
      code: "NOT_FOUND",
    });
    expect(await patch(hangar, "mdl_AAAAAAAAAAAAAAAA", archive)).toMatchObject({ code: "NOT_FOUND" });
    expect(await patch(hangar, modelId, Buffer.from("not an archive"))).toMatchObject({
      code: "INVALID_INPUT",
      field: "source",
    });
  });

  it("gives a scaled-to-zero development deployment the new code at its next start", async () => {
    const before = await answer();
    await gql(
      hangar,
      `mutation($id: ID!) { updateAutoscalingSettings(input: { deploymentId: $id, settings: { scaleDownDelay: 0 } }) { __typename } }`,
      { id: deploymentId },
    );
    await waitForStatus(hangar, deploymentId, "SCALED_TO_ZERO", 15_000);
    const result = await patch(hangar, modelId, await pack(await modelFolder(version(6))));
    expect(result).toMatchObject({ applied: true, needsFullDeploy: false });
    const after = await answer();
    expect(after).toMatchObject({ version: 6, label: "v6" });
    expect(after.replica).not.toBe(before.replica);
  });
});

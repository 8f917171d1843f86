import path from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { gql, modelFolder, predict, pushFolder, waitForStatus } from "../support/client.ts";
import { startHangar, type TestHangar } from "../support/hangar.ts";

const EXAMPLES = fileURLToPath(new URL("../../examples/", import.meta.url));

let hangar: TestHangar;

beforeAll(async () => {
  hangar = await startHangar();
});

afterAll(async () => {
  await hangar?.dispose();
});

describe("pushing and calling models", () => {
  it("runs the JavaScript example through BUILDING -> DEPLOYING -> LOADING_MODEL -> ACTIVE and answers predictions", async () => {
    const deployment = await pushFolder(hangar, "sentiment", path.join(EXAMPLES, "sentiment"));
    expect(deployment).toMatchObject({ kind: "PUBLISHED", status: "BUILDING", name: "deployment-1" });
    await waitForStatus(hangar, deployment.id, "ACTIVE");
    const answer = await predict(
      hangar,
      `/models/${deployment.model.id}/deployments/${deployment.id}/predict`,
      { text: "what a wonderful, great day" },
    );
    expect(answer.status).toBe(200);
    expect(answer.deploymentId).toBe(deployment.id);
    expect(answer.body.label).toBe("positive");
    const data = await gql(
      hangar,
      `query($id: ID!) { model(id: $id) { events(first: 50) { edges { node { type message } } } } }`,
      { id: deployment.model.id },
    );
    const statuses = data.model.events.edges
      .filter((e: { node: { type: string } }) => e.node.type === "DEPLOYMENT_STATUS_CHANGED")
      .map((e: { node: { message: string } }) => e.node.message.split(":")[0]);
    expect(statuses).toEqual([
      "BUILDING -> DEPLOYING",
      "DEPLOYING -> LOADING_MODEL",
      "LOADING_MODEL -> ACTIVE",
    ]);
  });

  it("runs a model served by its own command (python3)", async () => {
    const deployment = await pushFolder(hangar, "python-echo", path.join(EXAMPLES, "python-echo"));
    await waitForStatus(hangar, deployment.id, "ACTIVE");
    const answer = await predict(
      hangar,
      `/models/${deployment.model.id}/deployments/${deployment.id}/predict`,
      { hello: "world" },
    );
    expect(answer.status).toBe(200);
    expect(answer.body.echo).toEqual({ hello: "world" });
    expect(answer.body.environment).toBeNull();
  });

  it("marks a folder without a model BUILD_FAILED with the reason in its logs", async () => {
    const dir = await modelFolder({ "README.md": "nothing to run" });
    const deployment = await pushFolder(hangar, "empty-model", dir);
    await waitForStatus(hangar, deployment.id, "BUILD_FAILED");
    const data = await gql(hangar, `query($id: ID!) { deployment(id: $id) { logs { stream line } } }`, {
      id: deployment.id,
    });
    expect(data.deployment.logs.map((l: { line: string }) => l.line).join("\n")).toContain(
      "neither model.mjs / model.js nor a server command",
    );
  });
});

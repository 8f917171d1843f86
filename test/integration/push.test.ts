import { randomBytes } from "node:crypto";
import { readdir } from "node:fs/promises";
import path from "node:path";
import { gzipSync } from "node:zlib";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { gql, modelFolder, pack, predict, push, pushFolder, waitForStatus } from "../support/client.ts";
import { startHangar, type TestHangar } from "../support/hangar.ts";

const MODEL = (answer: string) =>
  `export default class M { predict(input) { return { answer: ${JSON.stringify(answer)}, input }; } }`;

let hangar: TestHangar;

beforeAll(async () => {
  hangar = await startHangar({ env: { HANGAR_MAX_UPLOAD_BYTES: "200000" } });
});

afterAll(async () => {
  await hangar?.dispose();
});

/** A tar entry written by hand, for archives that tar's own writer refuses to produce. */
function rawTar(entries: { name: string; type?: string; body?: string | Buffer; link?: string }[]): Buffer {
  const blocks: Buffer[] = [];
  for (const entry of entries) {
    const body = Buffer.isBuffer(entry.body) ? entry.body : Buffer.from(entry.body ?? "");
    const header = Buffer.alloc(512);
    header.write(entry.name, 0, 100);
    header.write("0000644\0", 100);
    header.write("0000000\0", 108);
    header.write("0000000\0", 116);
    header.write(`${body.length.toString(8).padStart(11, "0")}\0`, 124);
    header.write("00000000000\0", 136);
    header.write("        ", 148);
    header.write(entry.type ?? "0", 156);
    if (entry.link) header.write(entry.link, 157, 100);
    header.write("ustar\0", 257);
    header.write("00", 263);
    let sum = 0;
    for (const byte of header) sum += byte;
    header.write(`${sum.toString(8).padStart(6, "0")}\0 `, 148);
    blocks.push(header, body, Buffer.alloc((512 - (body.length % 512)) % 512));
  }
  blocks.push(Buffer.alloc(1024));
  return gzipSync(Buffer.concat(blocks));
}

async function pushError(modelName: string, archive: Buffer) {
  const { body } = await push(hangar, { modelName }, archive);
  return body.data?.pushDeployment;
}

async function artifactCount(): Promise<number> {
  const names = await readdir(path.join(hangar.dataDir, "artifacts")).catch(() => []);
  return names.length;
}

describe("uploads", () => {
  it.each([
    ["not gzip at all", () => Buffer.from("just some text"), "not a gzip'd tar"],
    ["gzip but not tar", () => gzipSync(Buffer.from("plain text, no tar headers here")), "not a gzip'd tar"],
    [
      "an entry escaping with ..",
      () => rawTar([{ name: "../evil.mjs", body: "x" }]),
      "escapes the model folder",
    ],
    ["an absolute path", () => rawTar([{ name: "/etc/evil", body: "x" }]), "absolute"],
    [
      "a symlink pointing outside",
      () => rawTar([{ name: "model.mjs", type: "2", link: "../../../etc/passwd" }]),
      "outside",
    ],
    ["a device file", () => rawTar([{ name: "dev", type: "3" }]), "device"],
  ])("refuses %s with INVALID_INPUT on source and creates nothing", async (_what, archive, message) => {
    const before = await artifactCount();
    const result = await pushError("refused", archive());
    expect(result).toMatchObject({ __typename: "UserError", code: "INVALID_INPUT", field: "source" });
    expect(result.message).toContain(message);
    expect((await gql(hangar, `{ model(name: "refused") { id } }`)).model).toBeNull();
    expect(await artifactCount()).toBe(before);
  });

  it("refuses an archive above the upload limit", async () => {
    const archive = rawTar([
      { name: "model.mjs", body: MODEL("x") },
      { name: "weights.bin", body: randomBytes(300_000) },
    ]);
    expect(archive.length).toBeGreaterThan(200_000);
    const result = await pushError("too-big", archive);
    expect(result).toMatchObject({ __typename: "UserError", code: "INVALID_INPUT", field: "source" });
    expect(result.message).toContain("limit");
  });

  it("stores the same upload once", async () => {
    const archive = await pack(await modelFolder({ "model.mjs": MODEL("same") }));
    const before = await artifactCount();
    const first = await pushError("dedupe", archive);
    const second = await pushError("dedupe", archive);
    expect(first.__typename).toBe("Deployment");
    expect(second.__typename).toBe("Deployment");
    expect(second.id).not.toBe(first.id);
    // One archive and one extracted folder.
    expect(await artifactCount()).toBe(before + 2);
  });
});

describe("deployments", () => {
  it("names published deployments, refuses taken, invalid and reserved names", async () => {
    const dir = await modelFolder({ "model.mjs": MODEL("named") });
    const first = await pushFolder(hangar, "naming", dir, { deploymentName: "v1" });
    expect(first.name).toBe("v1");
    const auto = await pushFolder(hangar, "naming", dir);
    expect(auto.name).toMatch(/^deployment-\d+$/);
    const archive = await pack(dir);
    const cases: [string, string][] = [
      ["v1", "NAME_TAKEN"],
      ["has space", "INVALID_INPUT"],
      ["development", "RESERVED_NAME"],
    ];
    for (const [deploymentName, code] of cases) {
      const { body } = await push(hangar, { modelName: "naming", deploymentName }, archive);
      expect(body.data.pushDeployment).toMatchObject({
        __typename: "UserError",
        code,
        field: "deploymentName",
      });
    }
    const invalidModel = await push(hangar, { modelName: "Bad Name" }, archive);
    expect(invalidModel.body.data.pushDeployment).toMatchObject({
      code: "INVALID_INPUT",
      field: "modelName",
    });
  });

  it("keeps one development deployment per model and replaces its code in place", async () => {
    const first = await pushFolder(hangar, "dev-model", await modelFolder({ "model.mjs": MODEL("one") }), {
      development: true,
    });
    expect(first).toMatchObject({ name: "development", kind: "DEVELOPMENT" });
    await waitForStatus(hangar, first.id, "ACTIVE");
    const devPath = `/models/${first.model.id}/development/predict`;
    expect((await predict(hangar, devPath, {})).body.answer).toBe("one");
    const second = await pushFolder(hangar, "dev-model", await modelFolder({ "model.mjs": MODEL("two") }), {
      development: true,
    });
    expect(second.id).toBe(first.id);
    await waitForStatus(hangar, first.id, "ACTIVE");
    const answer = await predict(hangar, devPath, {});
    expect(answer).toMatchObject({ status: 200, deploymentId: first.id, body: { answer: "two" } });
    const model = await gql(
      hangar,
      `query($id: ID!) { model(id: $id) { developmentDeployment { id } deployments { edges { node { id } } } } }`,
      { id: first.model.id },
    );
    expect(model.model.developmentDeployment.id).toBe(first.id);
    expect(model.model.deployments.edges).toHaveLength(1);
  });

  it("validates autoscaling updates, changing only the fields sent", async () => {
    const dep = await pushFolder(hangar, "scaling", await modelFolder({ "model.mjs": MODEL("s") }));
    const update = `mutation($input: UpdateAutoscalingInput!) { updateAutoscalingSettings(input: $input) {
      __typename ... on Deployment { autoscalingSettings { minReplica maxReplica scaleDownDelay concurrencyTarget } }
      ... on UserError { code field } } }`;
    const ok = await gql(hangar, update, { input: { deploymentId: dep.id, settings: { maxReplica: 3 } } });
    expect(ok.updateAutoscalingSettings.autoscalingSettings).toEqual({
      minReplica: 0,
      maxReplica: 3,
      scaleDownDelay: 900,
      concurrencyTarget: 1,
    });
    const bad = await gql(hangar, update, { input: { deploymentId: dep.id, settings: { minReplica: 4 } } });
    expect(bad.updateAutoscalingSettings).toMatchObject({ code: "INVALID_INPUT", field: "minReplica" });
    const unknown = await gql(hangar, update, {
      input: { deploymentId: "dep_AAAAAAAAAAAAAAAA", settings: {} },
    });
    expect(unknown.updateAutoscalingSettings).toMatchObject({ code: "NOT_FOUND" });
    const dev = await pushFolder(hangar, "scaling", await modelFolder({ "model.mjs": MODEL("d") }), {
      development: true,
    });
    const pinned = await gql(hangar, update, {
      input: { deploymentId: dev.id, settings: { maxReplica: 2 } },
    });
    expect(pinned.updateAutoscalingSettings).toMatchObject({ code: "INVALID_INPUT", field: "maxReplica" });
  });

  it("deletes softly: gone from lists and paths, readable by ID, replicas stopped", async () => {
    const dep = await pushFolder(hangar, "deleting", await modelFolder({ "model.mjs": MODEL("d") }));
    await waitForStatus(hangar, dep.id, "ACTIVE");
    const urlPath = `/models/${dep.model.id}/deployments/${dep.id}/predict`;
    expect((await predict(hangar, urlPath, {})).status).toBe(200);
    const deleted = await gql(
      hangar,
      `mutation($id: ID!) { deleteDeployment(id: $id) { ... on Deployment { status deletedAt } } }`,
      { id: dep.id },
    );
    expect(deleted.deleteDeployment.status).toBe("DELETED");
    expect(deleted.deleteDeployment.deletedAt).toBeTruthy();
    expect(await predict(hangar, urlPath, {})).toMatchObject({
      status: 404,
      body: { error_code: "deployment_does_not_exist" },
    });
    const data = await gql(
      hangar,
      `query($id: ID!, $model: ID!) { deployment(id: $id) { status activeReplicaCount }
        model(id: $model) { live: deployments { edges { node { id } } }
          all: deployments(includeDeleted: true) { edges { node { id } } } } }`,
      { id: dep.id, model: dep.model.id },
    );
    expect(data.deployment.status).toBe("DELETED");
    expect(data.model.live.edges).toHaveLength(0);
    expect(data.model.all.edges).toHaveLength(1);
    const again = await gql(
      hangar,
      `mutation($id: ID!) { deleteDeployment(id: $id) { ... on UserError { code } } }`,
      {
        id: dep.id,
      },
    );
    expect(again.deleteDeployment.code).toBe("NOT_FOUND");
  });
});

// Replica resources and serverInfo (API.md section 9) through the real server: hangar.json's
// `resources`, the server's defaults (HANGAR_REPLICA_MEMORY_MB), what a deployment keeps through a
// restart and a promotion's copy, a bad value failing the build, and who may read serverInfo.
import { readFileSync } from "node:fs";
import { hostname } from "node:os";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { gql, gqlRaw, modelFolder, predict, pushFolder, waitForStatus } from "../support/client.ts";
import { startHangar, type TestHangar } from "../support/hangar.ts";
import { asKey, createKey } from "../support/keys.ts";
import { createEnvironment, finished, promoteTo } from "../support/promotions.ts";

const MODEL = "export default class M { predict(input) { return { ok: true, input }; } }";
const VERSION = (
  JSON.parse(readFileSync(new URL("../../package.json", import.meta.url), "utf8")) as {
    version: string;
  }
).version;
const SERVER_INFO = "{ serverInfo { version database sandbox limits member } }";

let hangar: TestHangar;

beforeAll(async () => {
  hangar = await startHangar();
});

afterAll(async () => {
  await hangar?.dispose();
});

async function resourcesOf(h: TestHangar, id: string) {
  const data = await gql(h, "query($id: ID!) { deployment(id: $id) { resources { cpu memoryMb pids } } }", {
    id,
  });
  return data.deployment.resources;
}

async function logsOf(h: TestHangar, id: string): Promise<string> {
  const data = await gql(h, "query($id: ID!) { deployment(id: $id) { logs { line } } }", { id });
  return data.deployment.logs.map((l: { line: string }) => l.line).join("\n");
}

function folder(manifest?: unknown) {
  return modelFolder({
    "model.mjs": MODEL,
    ...(manifest === undefined ? {} : { "hangar.json": JSON.stringify(manifest) }),
  });
}

describe("Deployment.resources", () => {
  it("shows hangar.json's resources, which the replica runs with", async () => {
    const dep = await pushFolder(hangar, "sized", await folder({ resources: { cpu: 0.5, memoryMb: 256 } }));
    await waitForStatus(hangar, dep.id, "ACTIVE");
    expect(await resourcesOf(hangar, dep.id)).toEqual({ cpu: 0.5, memoryMb: 256, pids: 256 });
    expect(await logsOf(hangar, dep.id)).toContain("resources: 0.5 cpu, 256 MB of memory, 256 processes");
    const answer = await predict(hangar, `/models/${dep.model.id}/deployments/${dep.id}/predict`, { x: 1 });
    expect(answer.status).toBe(200);
  });

  it("shows the server's defaults for a deployment whose hangar.json does not set them", async () => {
    const bare = await pushFolder(hangar, "unsized", await folder());
    const partial = await pushFolder(hangar, "half-sized", await folder({ resources: { cpu: 2 } }));
    await waitForStatus(hangar, bare.id, "ACTIVE");
    await waitForStatus(hangar, partial.id, "ACTIVE");
    expect(await resourcesOf(hangar, bare.id)).toEqual({ cpu: 1, memoryMb: 1024, pids: 256 });
    expect(await resourcesOf(hangar, partial.id)).toEqual({ cpu: 2, memoryMb: 1024, pids: 256 });
  });

  it("follows new code pushed to the development deployment", async () => {
    const dev = await pushFolder(hangar, "resized", await folder({ resources: { cpu: 0.5 } }), {
      development: true,
    });
    await waitForStatus(hangar, dev.id, "ACTIVE");
    expect(await resourcesOf(hangar, dev.id)).toEqual({ cpu: 0.5, memoryMb: 1024, pids: 256 });
    const again = await pushFolder(
      hangar,
      "resized",
      await folder({ resources: { cpu: 2, memoryMb: 512 } }),
      {
        development: true,
      },
    );
    expect(again.id).toBe(dev.id);
    await waitForStatus(hangar, dev.id, "ACTIVE");
    expect(await resourcesOf(hangar, dev.id)).toEqual({ cpu: 2, memoryMb: 512, pids: 256 });
  });

  it("fails the build of a bad value, with the field and the bound in the deployment's logs", async () => {
    const dep = await pushFolder(hangar, "undersized", await folder({ resources: { memoryMb: 16 } }));
    await waitForStatus(hangar, dep.id, "BUILD_FAILED");
    expect(await logsOf(hangar, dep.id)).toContain(
      "build failed: hangar.json: resources.memoryMb must be at least 64 MB (a replica cannot start in less), got 16",
    );
    const typo = await pushFolder(hangar, "undersized", await folder({ resources: { memory: 512 } }));
    await waitForStatus(hangar, typo.id, "BUILD_FAILED");
    expect(await logsOf(hangar, typo.id)).toContain(
      "hangar.json: resources.memory is not a resource: resources takes cpu and memoryMb",
    );
  });
});

describe("HANGAR_REPLICA_MEMORY_MB and HANGAR_REPLICA_PIDS", () => {
  it("sets the default of deployments built from then on; built ones, and a promotion's copy of one, keep theirs", {
    timeout: 180_000,
  }, async () => {
    const first = await startHangar();
    const built = await pushFolder(first, "kept", await folder({ resources: { cpu: 0.5 } }));
    await waitForStatus(first, built.id, "ACTIVE");
    expect(await resourcesOf(first, built.id)).toEqual({ cpu: 0.5, memoryMb: 1024, pids: 256 });
    await createEnvironment(first, {
      modelId: built.model.id,
      name: "canary",
      promotionSettings: { redeployOnPromotion: true },
    });
    expect(await first.stop()).toBe(0);

    const second = await startHangar({
      env: { HANGAR_REPLICA_MEMORY_MB: "768", HANGAR_REPLICA_PIDS: "128" },
      reuse: { dataDir: first.dataDir, databaseUrl: first.databaseUrl, key: first.key },
    });
    const fresh = await pushFolder(second, "kept", await folder({ resources: { cpu: 0.5 } }));
    await waitForStatus(second, fresh.id, "ACTIVE");
    expect(await resourcesOf(second, fresh.id)).toEqual({ cpu: 0.5, memoryMb: 768, pids: 128 });
    // Rebuilt by the new process, the old deployment runs with what it was built with.
    await waitForStatus(second, built.id, "ACTIVE");
    expect(await resourcesOf(second, built.id)).toEqual({ cpu: 0.5, memoryMb: 1024, pids: 256 });

    const promotion = await promoteTo(second, built.id, "canary");
    const done = await finished(second, promotion.id, { fields: "status errorMessage deployment { id }" });
    expect(done.status).toBe("SUCCEEDED");
    expect(done.deployment.id).not.toBe(built.id);
    expect(await resourcesOf(second, done.deployment.id)).toEqual({ cpu: 0.5, memoryMb: 1024, pids: 256 });
    await second.dispose();
  });

  it("stops a server whose setting is out of bounds, saying why", async () => {
    await expect(startHangar({ env: { HANGAR_REPLICA_MEMORY_MB: "32" } })).rejects.toThrow(
      "HANGAR_REPLICA_MEMORY_MB must be at least 64 MB (a replica cannot start in less), got '32'",
    );
  });
});

describe("serverInfo", () => {
  it("answers an admin key with this process's version, database, isolation and member name", async () => {
    const { serverInfo } = await gql(hangar, SERVER_INFO);
    expect(serverInfo.version).toBe(VERSION);
    expect(serverInfo.database).toBe(inject("database") === "postgres" ? "postgresql" : "pglite");
    expect(["FENCED", "UNAVAILABLE", "OFF"]).toContain(serverInfo.sandbox);
    expect(typeof serverInfo.limits).toBe("boolean");
    // The member name: HANGAR_MEMBER_NAME, or this host and the port it listens on.
    expect(serverInfo.member).toBe(`${hostname()}:${new URL(hangar.url).port}`);
  });

  it("answers a VIEWER key the same", async () => {
    const viewer = await createKey(hangar, { name: "info-viewer", role: "VIEWER" });
    const mine = await gql(hangar, SERVER_INFO);
    expect(await gql(asKey(hangar, viewer.secret), SERVER_INFO)).toEqual(mine);
  });

  it("refuses a request without a key, like every other field (401)", async () => {
    const response = await fetch(`${hangar.url}/graphql`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ query: SERVER_INFO }),
    });
    expect(response.status).toBe(401);
    expect(await response.text()).not.toContain(VERSION);
    const wrong = await gqlRaw(asKey(hangar, "hk_not_a_key_at_all_0000000000000000"), SERVER_INFO);
    expect(wrong.status).toBe(401);
  });
});

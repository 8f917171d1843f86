/**
 * Retention as the server runs it (API.md section 8): at start, log lines older than
 * HANGAR_RETENTION_DAYS, artifacts no deployment referenced for that long and the leftovers of a killed
 * process are removed; what a live deployment runs stays, however old.
 */
import { mkdir, readdir, readFile, utimes, writeFile } from "node:fs/promises";
import path from "node:path";
import { afterAll, expect, it } from "vitest";
import { gql, modelFolder, pushFolder, waitForStatus } from "../support/client.ts";
import { startHangar, type TestHangar } from "../support/hangar.ts";
import { waitFor } from "../support/wait.ts";

const MODEL = (tag: string) => ({ "model.mjs": `export default class M { predict() { return "${tag}"; } }` });

let first: TestHangar | undefined;
let second: TestHangar | undefined;

afterAll(async () => {
  await first?.stop();
  await second?.dispose();
});

async function artifactNames(hangar: TestHangar): Promise<string[]> {
  return readdir(path.join(hangar.dataDir, "artifacts"));
}

async function logLines(hangar: TestHangar, id: string): Promise<string[]> {
  const data = await gql(hangar, `query($id: ID!) { deployment(id: $id) { logs(last: 500) { line } } }`, {
    id,
  });
  return data.deployment.logs.map((l: { line: string }) => l.line);
}

it("removes old log lines, artifacts of deployments deleted long enough ago and leftovers at start; keeps live code", async () => {
  first = await startHangar();
  const kept = await pushFolder(first, "retained", await modelFolder(MODEL("kept")));
  const dropped = await pushFolder(first, "retained", await modelFolder(MODEL("dropped")));
  await Promise.all([waitForStatus(first, kept.id, "ACTIVE"), waitForStatus(first, dropped.id, "ACTIVE")]);
  await gql(first, `mutation($id: ID!) { deleteDeployment(id: $id) { __typename } }`, { id: dropped.id });
  await waitForStatus(first, dropped.id, "DELETED");
  const before = await artifactNames(first);
  expect(before.filter((n) => n.endsWith(".tar.gz"))).toHaveLength(2);
  // Which artifact is the kept deployment's: its folder holds its code.
  const dataDir = first.dataDir;
  const folders = before.filter((n) => /^[0-9a-f]{64}$/.test(n));
  const sources = await Promise.all(
    folders.map((n) => readFile(path.join(dataDir, "artifacts", n, "model.mjs"), "utf8")),
  );
  const keptHash = folders[sources.findIndex((source) => source.includes('"kept"'))];
  const FOUND = "found model.mjs; serving it with Hangar's JavaScript model server";
  expect(await logLines(first, kept.id)).toEqual(expect.arrayContaining([FOUND, "replica ready"]));
  await first.stop();

  // What a process killed mid-upload leaves: an old one goes at start, a fresh one may be another's work.
  const artifacts = path.join(first.dataDir, "artifacts");
  await mkdir(path.join(artifacts, ".tmp-0123456789abcdef"));
  await writeFile(path.join(artifacts, ".tmp-upload-0123456789abcdef"), "partial");
  await writeFile(path.join(artifacts, ".tmp-upload-fedcba9876543210"), "in progress");
  const longAgo = new Date(Date.now() - 2 * 60 * 60 * 1000);
  await utimes(path.join(artifacts, ".tmp-0123456789abcdef"), longAgo, longAgo);
  await utimes(path.join(artifacts, ".tmp-upload-0123456789abcdef"), longAgo, longAgo);

  // A retention of about a second: everything the first run wrote is older than that by now.
  await new Promise((resolve) => setTimeout(resolve, 1500));
  second = await startHangar({
    reuse: { dataDir: first.dataDir, databaseUrl: first.databaseUrl, key: first.key },
    env: { HANGAR_RETENTION_DAYS: "0.00001" },
  });
  const hangar = second;
  await waitFor(async () => (await artifactNames(hangar)).length === 3, {
    what: "the sweep at start",
  });
  const after = await artifactNames(hangar);
  // The live deployment's archive and folder, and the fresh leftover.
  expect(after.sort()).toEqual([keptHash, `${keptHash}.tar.gz`, ".tmp-upload-fedcba9876543210"].sort());
  // The first run's lines are gone; the live deployment runs again and logs anew.
  await waitForStatus(hangar, kept.id, "ACTIVE");
  const lines = await logLines(hangar, kept.id);
  expect(lines).not.toContain(FOUND);
  expect(await logLines(hangar, dropped.id)).toEqual([]);
});

// PostgreSQL stopped under a running Hangar, then started again (API.md section 10): no exit, the
// gateway keeps serving running deployments, API calls say DATABASE_UNAVAILABLE, then everything goes
// on without a restart. On a cluster of its own, which this file stops and starts.
import { randomBytes } from "node:crypto";
import { mkdtemp } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { modelFolder, predict, pushFolder, waitForStatus } from "../support/client.ts";
import { startHangar, type TestHangar } from "../support/hangar.ts";
import { startPostgres, type ThrowawayPostgres } from "../support/postgres.ts";
import { waitFor } from "../support/wait.ts";

const MODEL = (n: number) => ({
  "model.mjs": `export default class M { predict(input) { return { n: ${n}, echo: input }; } }`,
});

async function graphqlStatus(hangar: TestHangar, key: string) {
  const response = await fetch(`${hangar.url}/graphql`, {
    method: "POST",
    headers: { "content-type": "application/json", authorization: `Bearer ${key}` },
    body: JSON.stringify({ query: "{ models { edges { node { id } } } }" }),
  });
  const text = await response.text();
  let body: { errors?: { extensions?: { code?: string } }[] } | null = null;
  try {
    body = JSON.parse(text);
  } catch {
    body = null;
  }
  return { status: response.status, code: body?.errors?.[0]?.extensions?.code ?? null };
}

describe("a database outage", () => {
  let cluster: ThrowawayPostgres;
  let hangar: TestHangar;

  beforeAll(async () => {
    cluster = await startPostgres();
    hangar = await startHangar({
      reuse: {
        dataDir: await mkdtemp(path.join(tmpdir(), "hangar-test-")),
        databaseUrl: cluster.url,
        key: `hk_test_${randomBytes(16).toString("hex")}`,
      },
    });
  }, 120_000);

  afterAll(async () => {
    await hangar?.dispose();
    await cluster?.stop();
  });

  it("keeps serving, says DATABASE_UNAVAILABLE, and goes on once PostgreSQL is back", async () => {
    const dep = await pushFolder(hangar, "through-outage", await modelFolder(MODEL(1)));
    await waitForStatus(hangar, dep.id, "ACTIVE", 60_000);
    const urlPath = `/models/${dep.model.id}/deployments/${dep.id}/predict`;
    expect((await predict(hangar, urlPath, {})).status).toBe(200);

    // Gateway traffic all through the outage.
    const statuses: number[] = [];
    let stop = false;
    const traffic = (async () => {
      while (!stop) statuses.push((await predict(hangar, urlPath, { at: Date.now() })).status);
    })();

    await cluster.pause();
    const downAt = Date.now();
    try {
      // API calls answer 503 DATABASE_UNAVAILABLE, also for a key this member has never seen (not 401).
      await waitFor(
        async () => {
          const answer = await graphqlStatus(hangar, hangar.key);
          return answer.status === 503 && answer.code === "DATABASE_UNAVAILABLE";
        },
        { what: "the API to say DATABASE_UNAVAILABLE", timeoutMs: 15_000 },
      );
      expect(await graphqlStatus(hangar, `hk_${randomBytes(16).toString("hex")}`)).toEqual({
        status: 503,
        code: "DATABASE_UNAVAILABLE",
      });
      // Down for 10 s in all, the gateway serving meanwhile.
      await waitFor(() => Date.now() - downAt >= 10_000, { what: "10 s of outage", timeoutMs: 15_000 });
    } finally {
      await cluster.resume();
    }

    await waitFor(async () => (await graphqlStatus(hangar, hangar.key)).status === 200, {
      what: "the API to answer again",
      timeoutMs: 30_000,
    });
    stop = true;
    await traffic;
    expect(statuses.length).toBeGreaterThan(10);
    expect(statuses.filter((s) => s !== 200)).toEqual([]);

    // Everything goes on without a restart, a new push included.
    const next = await pushFolder(hangar, "after-outage", await modelFolder(MODEL(2)));
    await waitForStatus(hangar, next.id, "ACTIVE", 60_000);
    const answer = await predict(hangar, `/models/${next.model.id}/deployments/${next.id}/predict`, { x: 1 });
    expect(answer.body).toEqual({ n: 2, echo: { x: 1 } });
    expect(hangar.process.exitCode).toBeNull();
  }, 120_000);
});

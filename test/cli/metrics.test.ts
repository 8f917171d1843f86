// `hangar metrics DEPLOYMENT` (issue 14): a deployment's figures over three windows, as a table, as JSON,
// and refreshed until Ctrl-C.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { cliEnv, runCli, runCliJson, spawnCli } from "../support/cli.ts";
import { modelFolder, predict, pushFolder, waitForStatus } from "../support/client.ts";
import { startHangar, type TestHangar } from "../support/hangar.ts";

let hangar: TestHangar;
let env: Record<string, string>;
let dep: { id: string; model: { id: string } };

const MODEL = {
  "model.mjs": `export default class M {
  predict(input) {
    if (input.fail) throw new Error("asked to fail");
    return { ok: true };
  }
}`,
};

beforeAll(async () => {
  hangar = await startHangar();
  env = cliEnv(hangar);
  dep = await pushFolder(hangar, "measured", await modelFolder(MODEL));
  await waitForStatus(hangar, dep.id, "ACTIVE");
  const path = `/models/${dep.model.id}/deployments/${dep.id}/predict`;
  for (let i = 0; i < 4; i++) expect((await predict(hangar, path, {})).status).toBe(200);
  expect((await predict(hangar, path, { fail: true })).status).toBe(500);
});

afterAll(async () => {
  await hangar?.dispose();
});

describe("hangar metrics", () => {
  it("prints the figures of the last minute, 5 minutes and hour as JSON", async () => {
    const reading = await runCliJson(["metrics", dep.id], { env });
    expect(reading).toMatchObject({
      deploymentId: dep.id,
      name: expect.any(String),
      status: "ACTIVE",
      replicas: 1,
    });
    expect(reading.windows.map((w: { windowSeconds: number }) => w.windowSeconds)).toEqual([60, 300, 3600]);
    for (const window of reading.windows) {
      expect(window).toMatchObject({ requests: 5, errors: 1, coldStarts: 0 });
      expect(window.latencyMs.p50).toBeGreaterThan(0);
      expect(window.coldStartMs).toEqual({ p50: null, p95: null, p99: null });
    }
  });

  it("prints a table once when stdout is not a terminal", async () => {
    const result = await runCli(["metrics", dep.id], { env });
    expect(result.code).toBe(0);
    const lines = result.stdout.trim().split("\n");
    expect(lines[0]).toMatch(/^WINDOW\s+REQUESTS\s+REQ\/S\s+5XX\s+P50\s+P95\s+P99\s+COLD STARTS\s+COLD P50$/);
    expect(lines.slice(1).map((l) => l.split(/\s{2,}/).slice(0, 4))).toEqual([
      ["1 min", "5", "0.08", "1 (20.0%)"],
      ["5 min", "5", "0.02", "1 (20.0%)"],
      ["1 h", "5", "0.00", "1 (20.0%)"],
    ]);
    expect(result.stderr).toContain(`(${dep.id}): ACTIVE, 1 replica`);
  });

  it("refreshes with --watch until Ctrl-C, one JSON line per reading", async () => {
    const live = spawnCli(["metrics", dep.id, "--watch", "--interval", "0.5", "--json"], { env });
    await live.waitForOutput(/(\{.*\}\n){2}/s);
    live.signal("SIGINT");
    const result = await live.result;
    expect(result.code).toBe(0);
    const readings = result.stdout
      .trim()
      .split("\n")
      .map((line) => JSON.parse(line));
    expect(readings.length).toBeGreaterThanOrEqual(2);
    expect(readings.every((r) => r.deploymentId === dep.id)).toBe(true);
  });

  it("says so for an unknown deployment (exit 1) and a bad interval (exit 2)", async () => {
    const unknown = await runCli(["metrics", "dep_AAAAAAAAAAAAAAAA"], { env });
    expect(unknown.code).toBe(1);
    expect(unknown.stderr).toContain("no deployment with ID 'dep_AAAAAAAAAAAAAAAA'");
    const bad = await runCli(["metrics", dep.id, "--interval", "0"], { env });
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain("--interval must be");
  });
});

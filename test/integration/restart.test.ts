import { readdirSync, readFileSync } from "node:fs";
import { stat } from "node:fs/promises";
import path from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { gql, modelFolder, predict, pushFolder, waitForStatus } from "../support/client.ts";
import { startHangar, type TestHangar } from "../support/hangar.ts";
import { waitFor } from "../support/wait.ts";

const PID_MODEL = `export default class M { predict() { return { replica: process.env.HANGAR_REPLICA_ID }; } }`;

/**
 * A replica as hard to take down as a model can make it: asked to, it leaves a detached child of its own
 * that ignores SIGTERM, then spins in a busy loop that never answers.
 */
const STUBBORN_MODEL = `import { spawn } from "node:child_process";
export default class M {
  predict(input) {
    if (input.leaveChild) {
      spawn("sh", ["-c", "trap '' TERM HUP; exec sleep " + input.leaveChild], { detached: true, stdio: "ignore" }).unref();
      return { left: true };
    }
    if (input.spin) {
      console.log("spinning now");
      for (;;) {}
    }
    return { replica: process.env.HANGAR_REPLICA_ID };
  }
}`;

/** Host PIDs of the processes whose command line is exactly \`words\` (found by a marker in it). */
function pidsRunning(words: string[]): number[] {
  const wanted = words.join("\0");
  return readdirSync("/proc")
    .filter((entry) => /^\d+$/.test(entry))
    .filter((pid) => {
      try {
        return readFileSync(`/proc/${pid}/cmdline`, "latin1").replace(/\0$/, "") === wanted;
      } catch {
        return false;
      }
    })
    .map(Number);
}

/** Running, that is: a zombie waiting for its new parent to reap it has ended. */
function alive(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "latin1");
    const state = stat.slice(stat.lastIndexOf(")") + 2, stat.lastIndexOf(")") + 3);
    return state !== "Z" && state !== "X";
  } catch {
    return false;
  }
}

/** The host PIDs of a deployment's running replicas (inside its fence, a replica sees another PID). */
async function replicaPids(hangar: TestHangar, deploymentId: string): Promise<number[]> {
  const { deployment } = await gql(hangar, `query($id: ID!) { deployment(id: $id) { replicas { pid } } }`, {
    id: deploymentId,
  });
  const pids = (deployment.replicas as { pid: number }[]).map((r) => r.pid);
  expect(pids.length).toBeGreaterThan(0);
  return pids;
}

async function logsOf(hangar: TestHangar, deploymentId: string): Promise<string> {
  const data = await gql(hangar, "query($id: ID!) { deployment(id: $id) { logs(last: 100) { line } } }", {
    id: deploymentId,
  });
  return data.deployment.logs.map((l: { line: string }) => l.line).join("\n");
}

/** Each test starts a server twice: seconds each, many times that on a loaded machine. */
const SERVER_STARTS_TIMEOUT = 150_000;

const servers: TestHangar[] = [];
/** The server the last test left running: the next test carries on with it rather than start another. */
let carried: TestHangar | null = null;

afterAll(async () => {
  for (const server of servers.splice(0)) await server.dispose();
});

/**
 * A running server: the one the previous test left (a start costs seconds), or a new one when that
 * test did not leave one running. These tests need a server with its deployments, not a fresh one.
 */
async function running(): Promise<TestHangar> {
  const server = carried?.process.exitCode === null && carried.process.signalCode === null ? carried : null;
  carried = null;
  if (server) return server;
  const fresh = await startHangar();
  servers.push(fresh);
  return fresh;
}

describe("restarts", () => {
  it("generates an admin key on first start, stores it owner-only, prints it once", {
    timeout: SERVER_STARTS_TIMEOUT,
  }, async () => {
    const first = await startHangar({ generateKey: true });
    servers.push(first);
    expect(first.key).toMatch(/^hk_/);
    expect(first.output()).toContain(first.key);
    const mode = (await stat(path.join(first.dataDir, "admin-key"))).mode & 0o777;
    expect(mode).toBe(0o600);
    expect(await first.stop()).toBe(0);
    const second = await first.restart();
    servers.push(second);
    expect(second.key).toBe(first.key);
    expect(second.output()).not.toContain(first.key);
    expect(second.output()).toContain("stored in");
    const models = await fetch(`${second.url}/graphql`, {
      method: "POST",
      headers: { "content-type": "application/json", authorization: `Bearer ${first.key}` },
      body: JSON.stringify({ query: "{ models { edges { cursor } } }" }),
    });
    expect(models.status).toBe(200);
    carried = second;
  });

  it("stops every replica on shutdown and brings deployments back on start", {
    timeout: SERVER_STARTS_TIMEOUT,
  }, async () => {
    const first = await running();
    const dep = await pushFolder(first, "survivor", await modelFolder({ "model.mjs": PID_MODEL }));
    await waitForStatus(first, dep.id, "ACTIVE");
    const urlPath = `/models/${dep.model.id}/deployments/${dep.id}/predict`;
    const before = (await predict(first, urlPath, {})).body.replica as string;
    const pids = await replicaPids(first, dep.id);
    expect(pids.every(alive)).toBe(true);
    expect(await first.stop()).toBe(0);
    expect(pids.some(alive)).toBe(false);
    const second = await first.restart();
    servers.push(second);
    const answer = await predict(second, urlPath, {});
    expect(answer.status).toBe(200);
    expect(answer.body.replica).not.toBe(before);
    await waitForStatus(second, dep.id, "ACTIVE");
    carried = second;
  });

  it("takes a killed Hangar's replicas down with it, busy or not, children and all, and serves again after start", {
    timeout: SERVER_STARTS_TIMEOUT,
  }, async () => {
    const first = await running();
    const dep = await pushFolder(first, "orphaned", await modelFolder({ "model.mjs": STUBBORN_MODEL }));
    await waitForStatus(first, dep.id, "ACTIVE");
    const urlPath = `/models/${dep.model.id}/deployments/${dep.id}/predict`;
    const before = (await predict(first, urlPath, {})).body.replica as string;
    // A sleep no other process runs: its command line finds it on the host, whatever PID the fence shows.
    const seconds = String(600 + Math.floor(Math.random() * 1_000_000) / 1000);
    expect((await predict(first, urlPath, { leaveChild: seconds })).body).toEqual({ left: true });
    await waitFor(() => pidsRunning(["sleep", seconds]).length === 1, { what: "the replica's child" });
    // Fenced, the replica's whole PID namespace goes with it; unfenced, the runner itself does (its
    // parent-death signal) and what it left detached waits for the next start to reap it.
    const { serverInfo } = await gql(first, "{ serverInfo { sandbox } }");
    const fenced = serverInfo.sandbox === "FENCED";
    const pids = [...(await replicaPids(first, dep.id)), ...(fenced ? pidsRunning(["sleep", seconds]) : [])];
    expect(pids.every(alive)).toBe(true);
    // A request the replica never answers: it is spinning when Hangar dies.
    void predict(first, urlPath, { spin: true }).catch(() => {});
    await waitFor(async () => (await logsOf(first, dep.id)).includes("spinning now"), {
      what: "the replica to start spinning",
    });
    await first.kill();
    // No replica outlives the process that runs it (API.md section 9), whatever it is doing.
    await waitFor(() => !pids.some(alive), {
      what: "the killed Hangar's replicas and their children to end",
    });
    const second = await first.restart();
    servers.push(second);
    const answer = await predict(second, urlPath, {});
    expect(answer.status).toBe(200);
    expect(answer.body.replica).not.toBe(before);
  });
});

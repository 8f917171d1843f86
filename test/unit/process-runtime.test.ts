import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { DEFAULT_RESOURCES } from "../../src/domain/resources.ts";
import type { ReplicaSpec } from "../../src/runtime/build.ts";
import { freePort } from "../../src/runtime/ports.ts";
import { ProcessRuntime, READY_REPORT_WAIT_MS } from "../../src/runtime/process-runtime.ts";
import type { Replica } from "../../src/runtime/replica.ts";
import type { RuntimeFacts } from "../../src/runtime/runtime.ts";
import {
  type ReplicaLaunch,
  type ReplicaToLaunch,
  type Sandbox,
  Unfenced,
} from "../../src/runtime/sandbox.ts";
import { Workspace } from "../../src/runtime/workspace.ts";
import { waitFor } from "../support/wait.ts";

/**
 * An unfenced sandbox whose first launch is held until the test lets it go, and which tells the test
 * what became of each launch: spawned (attach) or given up before any process existed (release).
 */
class HeldSandbox implements Sandbox {
  readonly state = "OFF" as const;
  readonly reason = null;
  private readonly inner = new Unfenced("OFF", null, freePort);
  private letGo: () => void = () => {};
  private readonly gate = new Promise<void>((resolve) => {
    this.letGo = resolve;
  });
  private held = false;
  readonly prepared: string[] = [];
  readonly spawned: string[] = [];
  readonly released: string[] = [];

  async prepare(replica: ReplicaToLaunch): Promise<ReplicaLaunch> {
    this.prepared.push(replica.spec.artifactHash);
    if (!this.held) {
      this.held = true;
      await this.gate;
    }
    const launch = await this.inner.prepare(replica);
    return {
      ...launch,
      attach: async (child) => {
        this.spawned.push(replica.spec.artifactHash);
        return launch.attach(child);
      },
      release: async () => {
        this.released.push(replica.spec.artifactHash);
        return launch.release();
      },
    };
  }

  open(): void {
    this.letGo();
  }
}

const cleanups: Array<() => Promise<unknown>> = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

/** A runtime on `sandbox`, in a fresh folder with a model, and the spec of that model for any code hash. */
async function setUp<S extends Sandbox>(sandbox: S) {
  const root = await mkdtemp(path.join(tmpdir(), "hangar-runtime-"));
  cleanups.push(() => rm(root, { recursive: true, force: true }));
  const modelDir = path.join(root, "model");
  await mkdir(modelDir);
  await writeFile(
    path.join(modelDir, "model.mjs"),
    "export default class M {\n  async predict(input) {\n    if (input?.sleepMs) await new Promise((r) => setTimeout(r, input.sleepMs));\n    return { ok: true };\n  }\n}\n",
  );
  const workspace = await Workspace.open(path.join(root, "data"));
  const runtime = new ProcessRuntime({ workspace, sandbox, startTimeoutMs: 30_000, drainTimeoutMs: 1_000 });
  // Whatever a test leaves running is stopped; a stop that hangs is left after a while (the test has
  // failed on it already), so that the file ends.
  cleanups.push(() => stopsWithin(runtime, 15_000));
  const spec = (artifactHash: string): ReplicaSpec => ({
    deploymentId: "Deployment_1",
    artifactHash,
    dir: modelDir,
    command: null,
    env: {},
    predictPath: "/predict",
    readinessPath: "/health",
    environmentName: null,
    config: {},
    resources: { ...DEFAULT_RESOURCES },
  });
  return { sandbox, runtime, spec };
}

/** stopAll, with a deadline: a replica nobody owns any more would keep it waiting for ever. */
async function stopsWithin(runtime: ProcessRuntime, ms: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<false>((resolve) => {
    timer = setTimeout(() => resolve(false), ms);
  });
  const stopped = runtime.stopAll("shutting down").then(() => true as const);
  const result = await Promise.race([stopped, late]);
  clearTimeout(timer);
  return result;
}

describe("ProcessRuntime: a replica stopped while its launch is being prepared", () => {
  it("is never spawned when its deployment is scaled to zero, and stopAll returns", async () => {
    const { sandbox, runtime, spec } = await setUp(new HeldSandbox());
    runtime.ensure(spec("a"), 1);
    await waitFor(() => sandbox.prepared.length === 1, { what: "the launch to be prepared" });
    runtime.ensure(spec("a"), 0);
    sandbox.open();
    await waitFor(() => sandbox.released.length === 1, { what: "the held launch to be given up" });
    expect(sandbox.spawned).toEqual([]);
    expect(runtime.count("Deployment_1")).toBe(0);
    expect(await stopsWithin(runtime, 15_000)).toBe(true);
  });

  it("is never spawned when new code replaces it; the new code's replica starts and stops", async () => {
    const { sandbox, runtime, spec } = await setUp(new HeldSandbox());
    runtime.ensure(spec("a"), 1);
    await waitFor(() => sandbox.prepared.length === 1, { what: "the launch to be prepared" });
    runtime.ensure(spec("b"), 1);
    await waitFor(() => runtime.ready("Deployment_1").length === 1, {
      timeoutMs: 20_000,
      what: "the new code's replica to be ready",
    });
    sandbox.open();
    await waitFor(() => sandbox.released.includes("a"), { what: "the held launch to be given up" });
    expect(sandbox.spawned).toEqual(["b"]);
    expect(runtime.ready("Deployment_1").map((replica) => replica.artifactHash)).toEqual(["b"]);
    expect(await stopsWithin(runtime, 15_000)).toBe(true);
    expect(runtime.count("Deployment_1")).toBe(0);
  });
});

/** A launch of a process that exits at once, never reading the extra pipe it is written to. */
class ShortLivedSandbox implements Sandbox {
  readonly state = "OFF" as const;
  readonly reason = null;
  private readonly inner = new Unfenced("OFF", null, freePort);

  async prepare(replica: ReplicaToLaunch): Promise<ReplicaLaunch> {
    const launch = await this.inner.prepare(replica);
    return {
      ...launch,
      file: process.execPath,
      args: ["-e", "setTimeout(() => process.exit(3), 20)"],
      extraPipes: 1,
      attach: async (child) => {
        // As bubblewrap's block fd: written to, and read from (Node reads every pipe it makes).
        const pipe = (child.stdio as ReadonlyArray<unknown>)[4] as NodeJS.WritableStream;
        pipe.write(Buffer.alloc(64 * 1024, 1));
        return null;
      },
    };
  }
}

describe("ProcessRuntime: a replica that goes away with bytes unread in its pipes", () => {
  it("is reported as exited, and the error on the pipe does not end Hangar", async () => {
    const { runtime, spec } = await setUp(new ShortLivedSandbox());
    const exits: string[] = [];
    runtime.reportTo({
      replicaStarted() {},
      replicaReady() {},
      replicaDraining() {},
      replicaExited(_replica, exit) {
        exits.push(exit.reason);
      },
      log() {},
    });
    const uncaught: unknown[] = [];
    const onUncaught = (error: unknown) => uncaught.push(error);
    process.on("uncaughtException", onUncaught);
    cleanups.push(async () => process.off("uncaughtException", onUncaught));
    runtime.ensure(spec("c"), 1);
    await waitFor(() => exits.length >= 1, { what: "the replica's exit to be reported" });
    expect(exits[0]).toBe("exited with code 3");
    expect(uncaught).toEqual([]);
  });
});

/** The facts a runtime reports, in order, as words (with the ms of each since the list was made). */
function factList(): RuntimeFacts & { said: string[]; at: Map<string, number> } {
  const said: string[] = [];
  const at = new Map<string, number>();
  const started = performance.now();
  const say = (fact: string) => {
    said.push(fact);
    at.set(fact, performance.now() - started);
  };
  return {
    said,
    at,
    replicaStarted: () => say("started"),
    replicaReady: () => say("ready"),
    replicaDraining: () => say("draining"),
    replicaExited: () => say("exited"),
    log() {},
  };
}

/**
 * Waits for the deployment's replica to become ready as the gateway holds a request, and sends it one
 * request at that moment, as the gateway does: in flight from the same turn of the event loop on.
 */
async function heldRequest(
  runtime: ProcessRuntime,
  sleepMs: number,
  onAnswer: () => void,
): Promise<{ replica: Replica; answered: Promise<void> }> {
  while (runtime.ready("Deployment_1").length === 0) await runtime.nextChange("Deployment_1", 30_000);
  const replica = runtime.ready("Deployment_1")[0] as Replica;
  replica.inFlight++;
  const answered = replica.pool
    .request({
      method: "POST",
      path: "/predict",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ sleepMs }),
    })
    .then(async (response) => {
      await response.body.text();
      onAnswer();
    })
    .catch(() => onAnswer())
    .finally(() => {
      replica.inFlight--;
    });
  return { replica, answered };
}

describe("ProcessRuntime: the order of a start's facts", () => {
  it("ensure resolves once the replica is spawned; ready is reported after the answers to the requests it got as it became ready", async () => {
    const { runtime, spec } = await setUp(new Unfenced("OFF", null, freePort));
    const facts = factList();
    runtime.reportTo(facts);
    const spawned = runtime.ensure(spec("a"), 1);
    expect(facts.said).toEqual([]);
    await spawned;
    expect(facts.said).toEqual(["started"]);
    expect(runtime.count("Deployment_1")).toBe(1);
    const { answered } = await heldRequest(runtime, 50, () => facts.said.push("answered"));
    await answered;
    await waitFor(() => facts.said.includes("ready"), { what: "the ready fact" });
    expect(facts.said).toEqual(["started", "answered", "ready"]);
  });

  it("reports ready at most READY_REPORT_WAIT_MS after, when those answers take longer", async () => {
    const { runtime, spec } = await setUp(new Unfenced("OFF", null, freePort));
    const facts = factList();
    runtime.reportTo(facts);
    await runtime.ensure(spec("a"), 1);
    const { replica, answered } = await heldRequest(runtime, 3_000, () => facts.said.push("answered"));
    const readyAt = replica.readyAt as number;
    await waitFor(() => facts.said.includes("ready"), { what: "the ready fact" });
    expect(facts.said).toEqual(["started", "ready"]);
    expect(Date.now() - readyAt).toBeGreaterThanOrEqual(READY_REPORT_WAIT_MS - 20);
    await answered;
    expect(facts.said).toEqual(["started", "ready", "answered"]);
  });

  it("reports ready before the replica drains, when it is stopped while the report waits", async () => {
    const { runtime, spec } = await setUp(new Unfenced("OFF", null, freePort));
    const facts = factList();
    runtime.reportTo(facts);
    await runtime.ensure(spec("a"), 1);
    const { answered } = await heldRequest(runtime, 500, () => facts.said.push("answered"));
    // Scaled down in the same turn as it became ready: before the report even started to wait.
    void runtime.ensure(spec("a"), 0);
    await answered;
    await waitFor(() => facts.said.includes("exited"), { what: "the replica's exit" });
    expect(facts.said.filter((fact) => fact !== "answered")).toEqual([
      "started",
      "ready",
      "draining",
      "exited",
    ]);
  });
});

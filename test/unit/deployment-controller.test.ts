/**
 * DeploymentController with a fake clock and the in-memory runtime, against a
 * real embedded database: the lifecycle as the controller drives it.
 */
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { Readable } from "node:stream";
import { pino } from "pino";
import { afterAll, beforeAll, beforeEach, describe, expect, it, vi } from "vitest";
import { loadConfig } from "../../src/config.ts";
import { DeploymentController } from "../../src/controllers/deployments.ts";
import type { Database } from "../../src/db/client.ts";
import { FakeClock } from "../../src/domain/clock.ts";
import { newId } from "../../src/domain/ids.ts";
import type { DeploymentStatus } from "../../src/domain/status.ts";
import { ChangeBus } from "../../src/events/bus.ts";
import { FakeRuntime } from "../../src/runtime/fake-runtime.ts";
import type { ServiceContext } from "../../src/services/context.ts";
import { ArtifactStore } from "../../src/store/artifacts.ts";
import { applyFact, insertDeployment, lockDeployment } from "../../src/store/deployments.ts";
import { LogWriter } from "../../src/store/logs.ts";
import { modelFolder, pack } from "../support/client.ts";
import { scratchDatabase } from "../support/scratch-database.ts";

const MINUTE = 60_000;
let db: Database;
let dispose: () => Promise<void>;
let artifactDir: string;
let ctx: ServiceContext;
let artifactHash: string;
let modelId: string;
let clock: FakeClock;
let runtime: FakeRuntime;
let controller: DeploymentController;

beforeAll(async () => {
  ({ db, dispose } = await scratchDatabase());
  artifactDir = await mkdtemp(path.join(tmpdir(), "hangar-controller-"));
  const log = pino({ level: "silent" });
  const artifacts = new ArtifactStore({ root: artifactDir, maxUploadBytes: 1_000_000 });
  const archive = await pack(
    await modelFolder({ "model.mjs": "export default class M { predict(x) { return x } }" }),
  );
  artifactHash = (await artifacts.put(Readable.from([archive]))).hash;
  ctx = {
    config: loadConfig({}, { dataDir: artifactDir }),
    db,
    bus: new ChangeBus(),
    artifacts,
    logs: new LogWriter(db, (error) => log.error({ err: error })),
    log,
    // The use cases' clock is the test's fake one too (each test makes its own).
    clock: { now: () => clock.now() },
  };
  modelId = newId("Model");
  await db.prisma.model.create({ data: { id: modelId, name: "lifecycle" } });
});

afterAll(async () => {
  await controller?.stop();
  await dispose?.();
  if (artifactDir) await rm(artifactDir, { recursive: true, force: true });
});

beforeEach(async () => {
  await controller?.stop();
  clock = new FakeClock(Date.now());
  runtime = new FakeRuntime(clock);
  controller = new DeploymentController(ctx, runtime, clock);
  await controller.start();
});

async function pushed(): Promise<string> {
  const deployment = await db.prisma.$transaction((tx) =>
    insertDeployment(tx, {
      modelId,
      name: newId("Deployment").toLowerCase().slice(0, 20),
      kind: "PUBLISHED",
      artifactHash,
      environmentName: null,
      message: "created",
    }),
  );
  await controller.reconcile(deployment.id);
  return deployment.id;
}

const status = async (id: string) =>
  (await db.prisma.deployment.findUniqueOrThrow({ where: { id } })).status as DeploymentStatus;

const reaches = (id: string, expected: DeploymentStatus) =>
  vi.waitFor(async () => expect(await status(id)).toBe(expected), { timeout: 5_000, interval: 20 });

/** The deployment's status changes, as its events say them. */
async function history(id: string): Promise<string[]> {
  const events = await db.prisma.modelEvent.findMany({
    where: { deploymentId: id, type: "DEPLOYMENT_STATUS_CHANGED" },
    orderBy: { seq: "asc" },
  });
  return events.map((e) => e.message ?? "");
}

async function active(): Promise<string> {
  const id = await pushed();
  await reaches(id, "LOADING_MODEL");
  runtime.becomeReady(id);
  await reaches(id, "ACTIVE");
  return id;
}

describe("DeploymentController", () => {
  it("builds a new deployment, starts one replica and is ACTIVE once it is ready", async () => {
    const id = await pushed();
    await reaches(id, "LOADING_MODEL");
    expect(runtime.count(id)).toBe(1);
    expect(runtime.ready(id)).toHaveLength(0);
    runtime.becomeReady(id);
    await reaches(id, "ACTIVE");
    expect(await history(id)).toEqual([
      "BUILDING -> DEPLOYING: build succeeded",
      "DEPLOYING -> LOADING_MODEL: replica process started",
      "LOADING_MODEL -> ACTIVE: a replica is ready",
    ]);
    await vi.waitFor(async () =>
      expect((await db.prisma.replica.findMany({ where: { deploymentId: id } })).map((r) => r.state)).toEqual(
        ["READY"],
      ),
    );
  });

  it("retries a failed start twice, then gives up with DEPLOY_FAILED and stops", async () => {
    const id = await pushed();
    await reaches(id, "LOADING_MODEL");
    expect(runtime.failStart(id)).toBe(true);
    expect(runtime.started.get(id)).toBe(2); // retried at once
    expect(runtime.failStart(id)).toBe(true);
    expect(runtime.started.get(id)).toBe(3);
    expect(await status(id)).toBe("LOADING_MODEL");
    expect(runtime.failStart(id, "exited with code 3")).toBe(true);
    await reaches(id, "DEPLOY_FAILED");
    expect(runtime.started.get(id)).toBe(3);
    expect(runtime.has(id)).toBe(false);
    expect((await history(id)).at(-1)).toBe(
      "LOADING_MODEL -> DEPLOY_FAILED: replica failed to start 3 times (last: exited with code 3)",
    );
    // A reconcile after it does not start it again.
    await controller.reconcile(id);
    expect(runtime.started.get(id)).toBe(3);
  });

  it("a ready replica resets the count of failed starts", async () => {
    const id = await pushed();
    await reaches(id, "LOADING_MODEL");
    runtime.failStart(id);
    runtime.failStart(id);
    runtime.becomeReady(id);
    await reaches(id, "ACTIVE");
    runtime.crash(id);
    runtime.failStart(id);
    runtime.failStart(id);
    await reaches(id, "LOADING_MODEL");
    expect(runtime.count(id)).toBe(1);
  });

  it("three crashes within five minutes make it UNHEALTHY; spread-out crashes do not", async () => {
    const spread = await active();
    for (let i = 0; i < 3; i++) {
      clock.advance(3 * MINUTE);
      expect(runtime.crash(spread)).toBe(true);
      expect(runtime.count(spread)).toBe(1); // restarted
      runtime.becomeReady(spread);
    }
    await reaches(spread, "ACTIVE");

    const looping = await active();
    for (let i = 0; i < 2; i++) {
      clock.advance(MINUTE);
      runtime.crash(looping);
      runtime.becomeReady(looping);
    }
    clock.advance(MINUTE);
    runtime.crash(looping, "killed by SIGSEGV");
    await reaches(looping, "UNHEALTHY");
    expect(runtime.has(looping)).toBe(false);
    expect((await history(looping)).at(-1)).toMatch(
      /-> UNHEALTHY: replica crashed 3 times in a row \(last: killed by SIGSEGV\)/,
    );
  });

  it("scales to zero on the autoscaler's word, and a waiting request wakes it with a replica at once", async () => {
    const id = await active();
    await controller.scaleTo(id, 0, "no traffic for 900 s");
    await reaches(id, "SCALED_TO_ZERO");
    expect(runtime.count(id)).toBe(0);
    expect(runtime.has(id)).toBe(true);

    const woken = controller.waiting(id);
    // The replica starts before any database work (the fast local start).
    expect(runtime.count(id)).toBe(1);
    await woken;
    expect(await status(id)).toBe("WAKING_UP");
    runtime.becomeReady(id);
    await reaches(id, "ACTIVE");
    expect(runtime.started.get(id)).toBe(2);
  });

  it("wakes a deployment scaled to zero that it does not run yet, and makes one wake of many requests", async () => {
    const id = await active();
    await controller.scaleTo(id, 0, "idle");
    await reaches(id, "SCALED_TO_ZERO");
    // Another controller (a restarted Hangar) has never run it.
    await controller.stop();
    runtime = new FakeRuntime(clock);
    controller = new DeploymentController(ctx, runtime, clock);
    await controller.start();
    await Promise.all([controller.waiting(id, "SCALED_TO_ZERO"), controller.waiting(id, "SCALED_TO_ZERO")]);
    expect(await status(id)).toBe("WAKING_UP");
    await vi.waitFor(() => expect(runtime.count(id)).toBe(1));
    runtime.becomeReady(id);
    await reaches(id, "ACTIVE");
    expect(runtime.started.get(id)).toBe(1);
    expect((await history(id)).filter((m) => m.startsWith("SCALED_TO_ZERO -> WAKING_UP"))).toHaveLength(1);
  });

  it("deactivate stops the replicas, then the deployment is INACTIVE", async () => {
    const id = await active();
    await db.prisma.$transaction(async (tx) =>
      applyFact(tx, await lockDeployment(tx, id), { kind: "deactivated" }),
    );
    await controller.reconcile(id);
    await reaches(id, "INACTIVE");
    expect(runtime.has(id)).toBe(false);
    expect(runtime.orders).toContain(`stop ${id}`);
    await vi.waitFor(async () =>
      expect((await db.prisma.replica.findMany({ where: { deploymentId: id } })).map((r) => r.state)).toEqual(
        ["STOPPED"],
      ),
    );
  });
});

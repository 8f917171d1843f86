/**
 * The setup the deployment controller's unit tests share: a real embedded
 * database with one model and one stored artifact, a fake clock, the
 * in-memory runtime (FakeRuntime) and a DeploymentController driving it, new
 * for each test. Call useControllerWorld() at the top of a test file: it
 * registers the hooks and returns the world, whose clock, runtime and
 * controller are the current test's.
 */
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { Readable } from "node:stream";
import { pino } from "pino";
import { afterAll, beforeAll, beforeEach, expect, vi } from "vitest";
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
import { insertDeployment } from "../../src/store/deployments.ts";
import { LogWriter } from "../../src/store/logs.ts";
import { modelFolder, pack } from "./client.ts";
import { scratchDatabase } from "./scratch-database.ts";

export interface ControllerWorld {
  readonly db: Database;
  readonly ctx: ServiceContext;
  readonly clock: FakeClock;
  readonly runtime: FakeRuntime;
  readonly controller: DeploymentController;
  /** A new PUBLISHED deployment of the stored artifact, reconciled once. */
  pushed(): Promise<string>;
  /** A pushed deployment whose replica is ready: ACTIVE. */
  active(): Promise<string>;
  status(id: string): Promise<DeploymentStatus>;
  reaches(id: string, expected: DeploymentStatus): Promise<void>;
  /** The deployment's status changes, as its events say them. */
  history(id: string): Promise<string[]>;
  /** Another controller and runtime on the same database (a restarted Hangar), same clock. */
  restart(): Promise<void>;
}

export function useControllerWorld(): ControllerWorld {
  let db: Database;
  let dispose: () => Promise<void>;
  let artifactDir: string;
  let ctx: ServiceContext;
  let artifactHash: string;
  let modelId: string;
  let clock: FakeClock;
  let runtime: FakeRuntime;
  let controller: DeploymentController | undefined;

  const startController = async () => {
    runtime = new FakeRuntime(clock);
    controller = new DeploymentController(ctx, runtime, clock);
    await controller.start();
  };

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
      // Each controller names itself (a restart is another owner); nothing here reads these two.
      member: "controller-world",
      memberName: "controller-world",
      isolation: { sandbox: "OFF", limits: false, reasons: [] },
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
    await startController();
  });

  const world: ControllerWorld = {
    get db() {
      return db;
    },
    get ctx() {
      return ctx;
    },
    get clock() {
      return clock;
    },
    get runtime() {
      return runtime;
    },
    get controller() {
      if (!controller) throw new Error("no controller outside a test");
      return controller;
    },
    async pushed() {
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
      await world.controller.reconcile(deployment.id);
      return deployment.id;
    },
    async active() {
      const id = await world.pushed();
      await world.reaches(id, "LOADING_MODEL");
      runtime.becomeReady(id);
      await world.reaches(id, "ACTIVE");
      return id;
    },
    async status(id) {
      return (await db.prisma.deployment.findUniqueOrThrow({ where: { id } })).status as DeploymentStatus;
    },
    async reaches(id, expected) {
      await vi.waitFor(async () => expect(await world.status(id)).toBe(expected), {
        timeout: 5_000,
        interval: 20,
      });
    },
    async history(id) {
      const events = await db.prisma.modelEvent.findMany({
        where: { deploymentId: id, type: "DEPLOYMENT_STATUS_CHANGED" },
        orderBy: { seq: "asc" },
      });
      return events.map((e) => e.message ?? "");
    },
    async restart() {
      await controller?.stop();
      await startController();
    },
  };
  return world;
}

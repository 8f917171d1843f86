/**
 * The Autoscaler's decisions over time: a fake clock, the in-memory runtime,
 * the real traffic meter and deployment controller, a real embedded database.
 */
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { Readable } from "node:stream";
import { pino } from "pino";
import { afterAll, beforeAll, beforeEach, describe, expect, it, vi } from "vitest";
import { loadConfig } from "../../src/config.ts";
import { Autoscaler } from "../../src/controllers/autoscaler.ts";
import { DeploymentController } from "../../src/controllers/deployments.ts";
import type { Database } from "../../src/db/client.ts";
import { DEFAULT_AUTOSCALING } from "../../src/domain/autoscaling.ts";
import { FakeClock } from "../../src/domain/clock.ts";
import { newId } from "../../src/domain/ids.ts";
import type { DeploymentStatus } from "../../src/domain/status.ts";
import { ChangeBus } from "../../src/events/bus.ts";
import { TrafficMeter } from "../../src/metrics/traffic.ts";
import { FakeRuntime } from "../../src/runtime/fake-runtime.ts";
import type { ServiceContext } from "../../src/services/context.ts";
import { ArtifactStore } from "../../src/store/artifacts.ts";
import {
  applyFact,
  insertDeployment,
  lockDeployment,
  writeAutoscaling,
} from "../../src/store/deployments.ts";
import { LogWriter } from "../../src/store/logs.ts";
import { modelFolder, pack } from "../support/client.ts";
import { scratchDatabase } from "../support/scratch-database.ts";

let db: Database;
let dispose: () => Promise<void>;
let artifactDir: string;
let ctx: ServiceContext;
let artifactHash: string;
let modelId: string;
let clock: FakeClock;
let runtime: FakeRuntime;
let controller: DeploymentController;
let meter: TrafficMeter;
let autoscaler: Autoscaler;

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
  meter = new TrafficMeter(clock);
  // Ticks are driven by the test (the interval is never started).
  autoscaler = new Autoscaler(ctx, controller, runtime, meter, clock, 1_000);
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

async function active(): Promise<string> {
  const id = await pushed();
  await reaches(id, "LOADING_MODEL");
  runtime.becomeReady(id);
  await reaches(id, "ACTIVE");
  return id;
}

describe("Autoscaler", () => {
  const SECOND = 1_000;

  const tick = () => autoscaler.tick();

  it("scales up at once, down only after scaleDownDelay, a step at a time, and to zero once idle", async () => {
    const id = await active();
    await db.prisma.$transaction((tx) =>
      writeAutoscaling(tx, id, {
        ...DEFAULT_AUTOSCALING,
        maxReplica: 3,
        scaleDownDelay: 60,
        autoscalingWindow: 10,
      }),
    );
    for (let i = 0; i < 3; i++) meter.started(id);
    clock.advance(10 * SECOND);
    await tick();
    // 3 in flight over the window / (1 x 70%) -> 5, clamped to maxReplica: at once.
    expect(runtime.count(id)).toBe(3);
    runtime.becomeReady(id);
    for (let i = 0; i < 3; i++) meter.finished(id);

    clock.advance(30 * SECOND);
    await tick();
    expect(runtime.count(id)).toBe(3); // demand fell 30 s ago: not yet

    clock.advance(31 * SECOND);
    await tick();
    expect(runtime.count(id)).toBe(2); // 61 s quiet: one step down (max(1, half of 3))

    clock.advance(SECOND);
    await tick();
    expect(runtime.count(id)).toBe(1);
    expect(await status(id)).toBe("ACTIVE");

    clock.advance(SECOND);
    await tick();
    expect(runtime.count(id)).toBe(0);
    await reaches(id, "SCALED_TO_ZERO");
  });

  it("keeps a deployment with traffic, and scales an idle one to zero only after the delay", async () => {
    const busy = await active();
    const idle = await active();
    for (const id of [busy, idle]) {
      await db.prisma.$transaction((tx) =>
        writeAutoscaling(tx, id, { ...DEFAULT_AUTOSCALING, scaleDownDelay: 60 }),
      );
    }
    meter.started(busy);
    clock.advance(59 * SECOND);
    await tick();
    expect(await status(idle)).toBe("ACTIVE");
    clock.advance(2 * SECOND);
    await tick();
    await reaches(idle, "SCALED_TO_ZERO");
    expect(await status(busy)).toBe("ACTIVE");
    expect(runtime.count(busy)).toBe(1);
  });

  it("drops the meter's entries of a deployment no longer run here", async () => {
    const id = await active();
    meter.started(id);
    meter.answered(id, 200);
    meter.finished(id);
    await tick();
    expect(meter.size()).toBe(1);
    await db.prisma.$transaction(async (tx) =>
      applyFact(tx, await lockDeployment(tx, id), { kind: "deactivated" }),
    );
    await controller.reconcile(id);
    await reaches(id, "INACTIVE");
    await tick();
    expect(meter.size()).toBe(0);
    expect(meter.answerCounts(id)).toEqual({ answered: 0, failed: 0 });
  });
});

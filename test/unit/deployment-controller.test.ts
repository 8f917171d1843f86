/**
 * DeploymentController with a fake clock and the in-memory runtime, against a
 * real embedded database: the lifecycle as the controller drives it.
 */
import { describe, expect, it, vi } from "vitest";
import { applyFact, lockDeployment } from "../../src/store/deployments.ts";
import { useControllerWorld } from "../support/controller-world.ts";

const MINUTE = 60_000;
const w = useControllerWorld();
const { pushed, active, status, reaches, history } = w;

describe("DeploymentController", () => {
  it("builds a new deployment, starts one replica and is ACTIVE once it is ready", async () => {
    const id = await pushed();
    await reaches(id, "LOADING_MODEL");
    expect(w.runtime.count(id)).toBe(1);
    expect(w.runtime.ready(id)).toHaveLength(0);
    w.runtime.becomeReady(id);
    await reaches(id, "ACTIVE");
    expect(await history(id)).toEqual([
      "BUILDING -> DEPLOYING: build succeeded",
      "DEPLOYING -> LOADING_MODEL: replica process started",
      "LOADING_MODEL -> ACTIVE: a replica is ready",
    ]);
    await vi.waitFor(async () =>
      expect(
        (await w.db.prisma.replica.findMany({ where: { deploymentId: id } })).map((r) => r.state),
      ).toEqual(["READY"]),
    );
  });

  it("retries a failed start twice, then gives up with DEPLOY_FAILED and stops", async () => {
    const id = await pushed();
    await reaches(id, "LOADING_MODEL");
    expect(w.runtime.failStart(id)).toBe(true);
    expect(w.runtime.started.get(id)).toBe(2); // retried at once
    expect(w.runtime.failStart(id)).toBe(true);
    expect(w.runtime.started.get(id)).toBe(3);
    expect(await status(id)).toBe("LOADING_MODEL");
    expect(w.runtime.failStart(id, "exited with code 3")).toBe(true);
    await reaches(id, "DEPLOY_FAILED");
    expect(w.runtime.started.get(id)).toBe(3);
    expect(w.runtime.has(id)).toBe(false);
    expect((await history(id)).at(-1)).toBe(
      "LOADING_MODEL -> DEPLOY_FAILED: replica failed to start 3 times (last: exited with code 3)",
    );
    // A reconcile after it does not start it again.
    await w.controller.reconcile(id);
    expect(w.runtime.started.get(id)).toBe(3);
  });

  it("a ready replica resets the count of failed starts", async () => {
    const id = await pushed();
    await reaches(id, "LOADING_MODEL");
    w.runtime.failStart(id);
    w.runtime.failStart(id);
    w.runtime.becomeReady(id);
    await reaches(id, "ACTIVE");
    w.runtime.crash(id);
    w.runtime.failStart(id);
    w.runtime.failStart(id);
    await reaches(id, "LOADING_MODEL");
    expect(w.runtime.count(id)).toBe(1);
  });

  it("three crashes within five minutes make it UNHEALTHY; spread-out crashes do not", async () => {
    const spread = await active();
    for (let i = 0; i < 3; i++) {
      w.clock.advance(3 * MINUTE);
      expect(w.runtime.crash(spread)).toBe(true);
      expect(w.runtime.count(spread)).toBe(1); // restarted
      w.runtime.becomeReady(spread);
    }
    await reaches(spread, "ACTIVE");

    const looping = await active();
    for (let i = 0; i < 2; i++) {
      w.clock.advance(MINUTE);
      w.runtime.crash(looping);
      w.runtime.becomeReady(looping);
    }
    w.clock.advance(MINUTE);
    w.runtime.crash(looping, "killed by SIGSEGV");
    await reaches(looping, "UNHEALTHY");
    expect(w.runtime.has(looping)).toBe(false);
    expect((await history(looping)).at(-1)).toMatch(
      /-> UNHEALTHY: replica crashed 3 times in a row \(last: killed by SIGSEGV\)/,
    );
  });

  it("scales to zero on the autoscaler's word, and a waiting request wakes it with a replica at once", async () => {
    const id = await active();
    await w.controller.scaleTo(id, 0, "no traffic for 900 s");
    await reaches(id, "SCALED_TO_ZERO");
    expect(w.runtime.count(id)).toBe(0);
    expect(w.runtime.has(id)).toBe(true);

    const woken = w.controller.waiting(id);
    // The replica starts before any database work (the fast local start).
    expect(w.runtime.count(id)).toBe(1);
    await woken;
    expect(await status(id)).toBe("WAKING_UP");
    w.runtime.becomeReady(id);
    await reaches(id, "ACTIVE");
    expect(w.runtime.started.get(id)).toBe(2);
  });

  it("a local wake writes nothing before its replica is spawned, and WAKING_UP before the replica's readiness", async () => {
    const id = await active();
    await w.controller.scaleTo(id, 0, "idle");
    await reaches(id, "SCALED_TO_ZERO");
    await vi.waitFor(async () =>
      expect(await w.db.prisma.replica.count({ where: { deploymentId: id, state: "STOPPED" } })).toBe(1),
    );
    w.runtime.holdSpawns = true;
    // A reconcile under way as the request comes (a tick, an event) reads the status before the wake.
    const before = w.controller.reconcile(id);
    const woken = Promise.all([w.controller.waiting(id), w.controller.waiting(id)]);
    expect(w.runtime.count(id)).toBe(1);
    // It does not put the starting replica away as scaled to zero.
    await before;
    expect(w.runtime.count(id)).toBe(1);
    // Until its process is spawned, the database hears nothing of the wake: its work would hold the spawn back.
    await new Promise((resolve) => setTimeout(resolve, 100));
    expect(await status(id)).toBe("SCALED_TO_ZERO");
    expect(await w.db.prisma.replica.count({ where: { deploymentId: id } })).toBe(1);
    w.runtime.releaseSpawns();
    // Ready as soon as spawned (a fast model): the fact is recorded after WAKING_UP all the same.
    w.runtime.becomeReady(id);
    await woken;
    await reaches(id, "ACTIVE");
    expect((await history(id)).slice(-3)).toEqual([
      "ACTIVE -> SCALED_TO_ZERO: idle",
      "SCALED_TO_ZERO -> WAKING_UP: woken by a request",
      "WAKING_UP -> ACTIVE: a replica is ready",
    ]);
    expect(w.runtime.started.get(id)).toBe(2);
    await vi.waitFor(async () =>
      expect(
        (
          await w.db.prisma.replica.findMany({ where: { deploymentId: id }, orderBy: { startedAt: "asc" } })
        ).map((r) => r.state),
      ).toEqual(["STOPPED", "READY"]),
    );
  });

  it("wakes a deployment scaled to zero that it does not run yet, and makes one wake of many requests", async () => {
    const id = await active();
    await w.controller.scaleTo(id, 0, "idle");
    await reaches(id, "SCALED_TO_ZERO");
    // Another controller (a restarted Hangar) has never run it.
    await w.restart();
    await Promise.all([
      w.controller.waiting(id, "SCALED_TO_ZERO"),
      w.controller.waiting(id, "SCALED_TO_ZERO"),
    ]);
    expect(await status(id)).toBe("WAKING_UP");
    await vi.waitFor(() => expect(w.runtime.count(id)).toBe(1));
    w.runtime.becomeReady(id);
    await reaches(id, "ACTIVE");
    expect(w.runtime.started.get(id)).toBe(1);
    expect((await history(id)).filter((m) => m.startsWith("SCALED_TO_ZERO -> WAKING_UP"))).toHaveLength(1);
  });

  it("deactivate stops the replicas, then the deployment is INACTIVE", async () => {
    const id = await active();
    await w.db.prisma.$transaction(async (tx) =>
      applyFact(tx, await lockDeployment(tx, id), { kind: "deactivated" }),
    );
    await w.controller.reconcile(id);
    await reaches(id, "INACTIVE");
    expect(w.runtime.has(id)).toBe(false);
    expect(w.runtime.orders).toContain(`stop ${id}`);
    await vi.waitFor(async () =>
      expect(
        (await w.db.prisma.replica.findMany({ where: { deploymentId: id } })).map((r) => r.state),
      ).toEqual(["STOPPED"]),
    );
  });
});

/**
 * The Autoscaler's decisions over time: a fake clock, the in-memory runtime,
 * the real traffic meter and deployment controller, a real embedded database.
 */
import { beforeEach, describe, expect, it } from "vitest";
import { Autoscaler } from "../../src/controllers/autoscaler.ts";
import { DEFAULT_AUTOSCALING } from "../../src/domain/autoscaling.ts";
import type { OtherMembersTraffic } from "../../src/metrics/shared-traffic.ts";
import { IDLE_ENTRY_MS, TrafficMeter } from "../../src/metrics/traffic.ts";
import { applyFact, lockDeployment, writeAutoscaling } from "../../src/store/deployments.ts";
import type { ConcurrencyQuery, RemoteConcurrency } from "../../src/store/traffic.ts";
import { useControllerWorld } from "../support/controller-world.ts";

const w = useControllerWorld();
const { active, status, reaches } = w;
let meter: TrafficMeter;
let autoscaler: Autoscaler;

beforeEach(() => {
  meter = new TrafficMeter(w.clock);
  // Ticks are driven by the test (the interval is never started).
  autoscaler = new Autoscaler(w.ctx, w.controller, w.runtime, meter, w.clock, 1_000);
});

describe("Autoscaler", () => {
  const SECOND = 1_000;

  const tick = () => autoscaler.tick();

  it("scales up at once, down only after scaleDownDelay, a step at a time, and to zero once idle", async () => {
    const id = await active();
    await w.db.prisma.$transaction((tx) =>
      writeAutoscaling(tx, id, {
        ...DEFAULT_AUTOSCALING,
        maxReplica: 3,
        scaleDownDelay: 60,
        autoscalingWindow: 10,
      }),
    );
    for (let i = 0; i < 3; i++) meter.started(id);
    w.clock.advance(10 * SECOND);
    await tick();
    // 3 in flight over the window / (1 x 70%) -> 5, clamped to maxReplica: at once.
    expect(w.runtime.count(id)).toBe(3);
    w.runtime.becomeReady(id);
    for (let i = 0; i < 3; i++) meter.finished(id);

    w.clock.advance(30 * SECOND);
    await tick();
    expect(w.runtime.count(id)).toBe(3); // demand fell 30 s ago: not yet

    w.clock.advance(31 * SECOND);
    await tick();
    expect(w.runtime.count(id)).toBe(2); // 61 s quiet: one step down (max(1, half of 3))

    w.clock.advance(SECOND);
    await tick();
    expect(w.runtime.count(id)).toBe(1);
    expect(await status(id)).toBe("ACTIVE");

    w.clock.advance(SECOND);
    await tick();
    expect(w.runtime.count(id)).toBe(0);
    await reaches(id, "SCALED_TO_ZERO");
  });

  it("keeps a deployment with traffic, and scales an idle one to zero only after the delay", async () => {
    const busy = await active();
    const idle = await active();
    for (const id of [busy, idle]) {
      await w.db.prisma.$transaction((tx) =>
        writeAutoscaling(tx, id, { ...DEFAULT_AUTOSCALING, scaleDownDelay: 60 }),
      );
    }
    meter.started(busy);
    w.clock.advance(59 * SECOND);
    await tick();
    expect(await status(idle)).toBe("ACTIVE");
    w.clock.advance(2 * SECOND);
    await tick();
    await reaches(idle, "SCALED_TO_ZERO");
    expect(await status(busy)).toBe("ACTIVE");
    expect(w.runtime.count(busy)).toBe(1);
  });

  it("adds what the other members' gateways counted: their busy time, their requests in flight", async () => {
    const id = await active();
    await w.db.prisma.$transaction((tx) =>
      writeAutoscaling(tx, id, {
        ...DEFAULT_AUTOSCALING,
        maxReplica: 3,
        scaleDownDelay: 5,
        autoscalingWindow: 10,
      }),
    );
    let remote: RemoteConcurrency = { busyMs: 3 * 10 * SECOND, inFlight: 1, lastActivityAt: w.clock.now() };
    const asked: ConcurrencyQuery[] = [];
    const others: OtherMembersTraffic = {
      concurrency: async (queries) => {
        asked.push(...queries);
        return new Map([[id, remote]]);
      },
      answers: async () => ({ answered: 0, failed: 0, inFlight: 0 }),
    };
    const shared = new Autoscaler(w.ctx, w.controller, w.runtime, meter, w.clock, 1_000, others);
    await shared.tick();
    // Nothing came through this member's gateway; three in flight on average elsewhere: three replicas.
    expect(w.runtime.count(id)).toBe(3);
    const nowSecond = Math.floor(w.clock.now() / 1000);
    expect(asked).toContainEqual({
      deploymentId: id,
      busySince: nowSecond - 10,
      activeSince: nowSecond - 11,
    });
    w.runtime.becomeReady(id);
    // Quiet elsewhere for longer than the delay, but a request is still in flight there: not to zero.
    remote = { busyMs: 0, inFlight: 1, lastActivityAt: w.clock.now() - 60 * SECOND };
    for (let i = 0; i < 4; i++) {
      w.clock.advance(10 * SECOND);
      await shared.tick();
    }
    expect(w.runtime.count(id)).toBe(1);
    remote = { busyMs: 0, inFlight: 0, lastActivityAt: w.clock.now() - 60 * SECOND };
    w.clock.advance(SECOND);
    await shared.tick();
    expect(w.runtime.count(id)).toBe(0);
  });

  it("drops the meter's entries of a deployment no longer run here once they have been idle a while", async () => {
    const id = await active();
    const since = meter.started(id);
    meter.answered(id, 200, since);
    meter.finished(id);
    await tick();
    expect(meter.size()).toBe(1);
    await w.db.prisma.$transaction(async (tx) =>
      applyFact(tx, await lockDeployment(tx, id), { kind: "deactivated" }),
    );
    await w.controller.reconcile(id);
    await reaches(id, "INACTIVE");
    // Kept a while: requests that entered here for another member's replicas are counted here too.
    w.clock.advance(IDLE_ENTRY_MS - 1);
    await tick();
    expect(meter.answerCounts(id)).toEqual({ answered: 1, failed: 0 });
    w.clock.advance(1);
    await tick();
    expect(meter.size()).toBe(0);
    expect(meter.answerCounts(id)).toEqual({ answered: 0, failed: 0 });
  });
});

import { describe, expect, it } from "vitest";
import { decideReplicas, type ScalingInput } from "../../src/domain/autoscaler.ts";
import { type AutoscalingSettings, DEFAULT_AUTOSCALING } from "../../src/domain/autoscaling.ts";
import { FakeClock } from "../../src/domain/clock.ts";
import { ConcurrencyWindow } from "../../src/domain/concurrency.ts";

const settings = (patch: Partial<AutoscalingSettings> = {}): AutoscalingSettings => ({
  ...DEFAULT_AUTOSCALING,
  maxReplica: 10,
  scaleDownDelay: 60,
  ...patch,
});

const input = (patch: Partial<ScalingInput>): ScalingInput => ({
  now: 1_000_000,
  settings: settings(),
  current: 1,
  averageConcurrency: 0,
  inFlight: 0,
  lastActivityAt: 999_000,
  lastReadyAt: 0,
  lowSince: null,
  ...patch,
});

describe("decideReplicas: the arithmetic", () => {
  it.each([
    // average, concurrencyTarget, utilization, expected (clamped to [1, 10])
    [0.1, 1, 70, 1],
    [0.7, 1, 70, 1],
    [0.71, 1, 70, 2],
    [1.4, 1, 70, 2],
    [1.41, 1, 70, 3],
    [7, 1, 70, 10],
    [100, 1, 70, 10],
    [10, 5, 100, 2],
    [10, 4, 50, 5],
    [3, 1, 100, 3],
  ])("average %f with target %i at %i%% wants %i", (average, concurrencyTarget, utilization, expected) => {
    const decision = decideReplicas(
      input({
        averageConcurrency: average,
        inFlight: 1,
        settings: settings({ concurrencyTarget, targetUtilizationPercentage: utilization }),
      }),
    );
    expect(decision.recommended).toBe(expected);
  });

  it("never goes below minReplica nor above maxReplica", () => {
    expect(decideReplicas(input({ settings: settings({ minReplica: 3 }), current: 3 })).desired).toBe(3);
    expect(decideReplicas(input({ settings: settings({ minReplica: 3 }), current: 1 })).desired).toBe(3);
    expect(
      decideReplicas(input({ averageConcurrency: 50, settings: settings({ maxReplica: 4 }) })).desired,
    ).toBe(4);
  });
});

describe("decideReplicas: up at once, down after the delay, half at a time", () => {
  it("scales up as soon as the average calls for it", () => {
    const decision = decideReplicas(input({ current: 1, averageConcurrency: 5, inFlight: 5, lowSince: 5 }));
    expect(decision).toEqual({ desired: 8, lowSince: null, recommended: 8 });
  });

  it("holds replicas until demand has stayed lower for scaleDownDelay", () => {
    const t0 = 1_000_000;
    let lowSince: number | null = null;
    for (const dt of [0, 10_000, 59_999]) {
      const d = decideReplicas(
        input({ now: t0 + dt, current: 8, averageConcurrency: 0.5, inFlight: 1, lowSince }),
      );
      expect(d.desired).toBe(8);
      lowSince = d.lowSince;
    }
    expect(lowSince).toBe(t0);
    const d = decideReplicas(
      input({ now: t0 + 60_000, current: 8, averageConcurrency: 0.5, inFlight: 1, lowSince }),
    );
    expect(d.desired).toBe(4);
  });

  it("removes at most max(1, half) per step", () => {
    const steps: number[] = [];
    let current = 9;
    for (let i = 0; i < 6; i++) {
      current = decideReplicas(
        input({ current, averageConcurrency: 0.5, inFlight: 1, lowSince: 0, now: 10_000_000 + i }),
      ).desired;
      steps.push(current);
    }
    expect(steps).toEqual([5, 3, 2, 1, 1, 1]);
  });

  it("restarts the scale-down clock when a replica becomes ready", () => {
    const d = decideReplicas(
      input({
        now: 1_000_000,
        current: 4,
        averageConcurrency: 0.1,
        inFlight: 1,
        lowSince: 0,
        lastReadyAt: 990_000,
      }),
    );
    expect(d.desired).toBe(4);
    expect(d.lowSince).toBe(990_000);
  });

  it("forgets a low spell as soon as demand is back", () => {
    const d = decideReplicas(input({ current: 2, averageConcurrency: 1.2, inFlight: 2, lowSince: 5 }));
    expect(d).toMatchObject({ desired: 2, lowSince: null });
  });
});

describe("decideReplicas: scale to zero", () => {
  const idle = { averageConcurrency: 0, inFlight: 0 };

  it("goes to zero after scaleDownDelay without traffic when minReplica is 0", () => {
    expect(decideReplicas(input({ ...idle, lastActivityAt: 1_000_000 - 60_000 })).desired).toBe(0);
    expect(decideReplicas(input({ ...idle, lastActivityAt: 1_000_000 - 59_999 })).desired).toBe(1);
  });

  it("never goes to zero with minReplica above 0, or with a request in flight", () => {
    expect(
      decideReplicas(input({ ...idle, lastActivityAt: 0, settings: settings({ minReplica: 1 }) })).desired,
    ).toBe(1);
    expect(decideReplicas(input({ averageConcurrency: 0, inFlight: 1, lastActivityAt: 0 })).desired).toBe(1);
  });

  it("counts the delay from the last replica ready, too", () => {
    expect(
      decideReplicas(input({ ...idle, lastActivityAt: 0, lastReadyAt: 1_000_000 - 1_000 })).desired,
    ).toBe(1);
  });

  it("with scaleDownDelay 0 goes to zero as soon as nothing is in flight", () => {
    expect(
      decideReplicas(input({ ...idle, lastActivityAt: 1_000_000, settings: settings({ scaleDownDelay: 0 }) }))
        .desired,
    ).toBe(0);
  });

  it("goes to zero even while the window still remembers earlier traffic", () => {
    const d = decideReplicas(
      input({ averageConcurrency: 0.4, inFlight: 0, lastActivityAt: 1_000_000 - 60_000, current: 1 }),
    );
    expect(d.desired).toBe(0);
  });

  it("stays at zero without traffic", () => {
    expect(decideReplicas(input({ ...idle, current: 0, lastActivityAt: 0 })).desired).toBe(0);
  });
});

describe("ConcurrencyWindow", () => {
  it("averages in-flight requests over the window, weighted by time", () => {
    const clock = new FakeClock(10_000_000);
    const window = new ConcurrencyWindow(clock.now());
    window.started(clock.now());
    window.started(clock.now());
    clock.advance(5_000);
    window.finished(clock.now());
    clock.advance(5_000);
    // 2 for 5 s, then 1 for 5 s: 15 request-seconds over a 10 s window.
    expect(window.average(clock.now(), 10)).toBeCloseTo(1.5, 5);
    // Over 60 s the same work averages lower.
    expect(window.average(clock.now(), 60)).toBeCloseTo(15 / 60, 5);
    expect(window.inFlight).toBe(1);
  });

  it("forgets what is older than the window", () => {
    const clock = new FakeClock(20_000_000);
    const window = new ConcurrencyWindow(clock.now());
    window.started(clock.now());
    clock.advance(3_000);
    window.finished(clock.now());
    clock.advance(10_000);
    expect(window.average(clock.now(), 5)).toBe(0);
    expect(window.average(clock.now(), 20)).toBeCloseTo(3 / 20, 5);
  });

  it("keeps counting a request that stays in flight", () => {
    const clock = new FakeClock(30_000_000);
    const window = new ConcurrencyWindow(clock.now());
    window.started(clock.now());
    clock.advance(120_000);
    expect(window.average(clock.now(), 60)).toBeCloseTo(1, 5);
    expect(window.lastActivityAt).toBe(30_000_000);
  });

  it("handles windows that wrap the bucket ring after a long idle time", () => {
    const clock = new FakeClock(40_000_000);
    const window = new ConcurrencyWindow(clock.now());
    window.started(clock.now());
    clock.advance(1_000);
    window.finished(clock.now());
    clock.advance(3_601_000);
    expect(window.average(clock.now(), 3600)).toBe(0);
  });
});

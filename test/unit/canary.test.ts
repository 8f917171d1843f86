import { describe, expect, it } from "vitest";
import {
  errorRateBreached,
  failurePercent,
  MIN_ANSWERS_TO_JUDGE_EARLY,
  type RampClock,
  rampDownStepMs,
  remainingInStage,
  spentInStage,
  stageLengthMs,
  stagePercent,
  stageStartMs,
  TrafficSplit,
  tickRamp,
} from "../../src/domain/canary.ts";
import { FakeClock } from "../../src/domain/clock.ts";

describe("canary schedule", () => {
  it.each([1, 7, 10, 59, 600, 86_400])("splits %i s into ten stages that add up exactly", (duration) => {
    const lengths = Array.from({ length: 10 }, (_, i) => stageLengthMs(i + 1, duration));
    expect(lengths.reduce((a, b) => a + b, 0)).toBe(duration * 1000);
    expect(Math.max(...lengths) - Math.min(...lengths)).toBeLessThanOrEqual(1);
    expect(stageStartMs(1, duration)).toBe(0);
    expect(stageStartMs(11, duration)).toBe(duration * 1000);
  });

  it("starts stage k at (k-1)/10 of the duration and sends k x 10%", () => {
    expect(Array.from({ length: 10 }, (_, i) => stageStartMs(i + 1, 600) / 1000)).toEqual([
      0, 60, 120, 180, 240, 300, 360, 420, 480, 540,
    ]);
    expect(Array.from({ length: 11 }, (_, k) => stagePercent(k))).toEqual([
      0, 10, 20, 30, 40, 50, 60, 70, 80, 90, 100,
    ]);
  });

  it("enters every stage in order, one per tick, even when ticks come late", () => {
    const clock = new FakeClock();
    let ramp: RampClock = { stage: 1, elapsedMs: 0, runningSince: clock.now() };
    const seen = [ramp.stage];
    clock.advance(10_000); // a 10 s ramp entirely missed by the ticks
    for (let i = 0; i < 20; i++) {
      const result = tickRamp(ramp, clock.now(), 10);
      if (result.activate) break;
      if (result.changed) seen.push(result.clock.stage);
      ramp = result.clock;
    }
    expect(seen).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
    expect(tickRamp(ramp, clock.now(), 10).activate).toBe(true);
  });

  it("carries a stage's overrun into the next", () => {
    const clock = new FakeClock();
    const ramp: RampClock = { stage: 3, elapsedMs: 0, runningSince: clock.now() };
    clock.advance(1_250);
    const next = tickRamp(ramp, clock.now(), 10);
    expect(next.clock).toEqual({ stage: 4, elapsedMs: 250, runningSince: clock.now() });
    expect(remainingInStage(next.clock, clock.now(), 10)).toBe(750);
  });

  it("pauses and resumes with the time the stage had left", () => {
    const clock = new FakeClock();
    let ramp: RampClock = { stage: 5, elapsedMs: 0, runningSince: clock.now() };
    clock.advance(40_000);
    // A pause keeps the time spent and stops the clock (promotion-plan.ts).
    ramp = { ...ramp, elapsedMs: spentInStage(ramp, clock.now()), runningSince: null };
    expect(ramp).toMatchObject({ stage: 5, elapsedMs: 40_000, runningSince: null });
    clock.advance(3_600_000); // paused for an hour: nothing moves
    expect(tickRamp(ramp, clock.now(), 600)).toMatchObject({ changed: false, activate: false });
    expect(remainingInStage(ramp, clock.now(), 600)).toBe(20_000);
    ramp = { ...ramp, runningSince: clock.now() };
    clock.advance(19_999);
    expect(tickRamp(ramp, clock.now(), 600).changed).toBe(false);
    clock.advance(1);
    expect(tickRamp(ramp, clock.now(), 600).clock.stage).toBe(6);
  });

  it("resumes after a restart at the checkpointed stage and time, not from the start nor ahead", () => {
    const clock = new FakeClock();
    // The checkpoint a crashed process left: stage 7, 2.5 s of it spent.
    const persisted = { stage: 7, elapsedMs: 2_500 };
    clock.advance(120_000); // Hangar was down for two minutes
    // The stage's clock starts again from the checkpoint when the new process first sees it.
    const ramp: RampClock = { ...persisted, runningSince: clock.now() };
    expect(remainingInStage(ramp, clock.now(), 60)).toBe(3_500);
    clock.advance(3_499);
    expect(tickRamp(ramp, clock.now(), 60).changed).toBe(false);
    clock.advance(1);
    expect(tickRamp(ramp, clock.now(), 60).clock.stage).toBe(8);
  });

  it("ramps down over the time ramped so far, one step per stage", () => {
    // Stage 4 of a 100 s ramp, 5 s into it: 35 s ramped, 4 steps down of 8.75 s.
    expect(rampDownStepMs(4, 100, 5_000)).toBe(8_750);
    expect(rampDownStepMs(0, 100, 0)).toBe(0);
  });
});

describe("traffic split", () => {
  it.each([0, 10, 30, 50, 70, 90, 100])(
    "sends %i%% of 1,000 requests to the new deployment, within one request",
    (percent) => {
      const split = new TrafficSplit();
      let toNew = 0;
      for (let i = 0; i < 1000; i++) if (split.pickNew(percent)) toNew++;
      expect(Math.abs(toNew - percent * 10)).toBeLessThanOrEqual(1);
    },
  );

  it("spreads the new deployment's share evenly rather than in bursts", () => {
    const split = new TrafficSplit();
    const picks = Array.from({ length: 20 }, () => split.pickNew(20));
    expect(picks.filter(Boolean)).toHaveLength(4);
    // Never two in a row at 20%.
    expect(picks.some((p, i) => p && picks[i - 1])).toBe(false);
  });
});

describe("automatic rollback on the error rate", () => {
  it("is off without a threshold, whatever fails", () => {
    expect(errorRateBreached({ answered: 100, failed: 100 }, null, true)).toBe(false);
  });

  it("breaks only above the threshold, not at it", () => {
    expect(errorRateBreached({ answered: 100, failed: 10 }, 10, true)).toBe(false);
    expect(errorRateBreached({ answered: 100, failed: 11 }, 10, true)).toBe(true);
    expect(errorRateBreached({ answered: 3, failed: 1 }, 30, true)).toBe(true);
  });

  it("waits for enough answers before the stage is over, then judges on whatever was seen", () => {
    const few = { answered: MIN_ANSWERS_TO_JUDGE_EARLY - 1, failed: MIN_ANSWERS_TO_JUDGE_EARLY - 1 };
    expect(errorRateBreached(few, 50, false)).toBe(false);
    expect(errorRateBreached(few, 50, true)).toBe(true);
    const enough = { answered: MIN_ANSWERS_TO_JUDGE_EARLY, failed: MIN_ANSWERS_TO_JUDGE_EARLY };
    expect(errorRateBreached(enough, 50, false)).toBe(true);
  });

  it("never breaks on a stage without answers", () => {
    expect(errorRateBreached({ answered: 0, failed: 0 }, 1, true)).toBe(false);
    expect(failurePercent({ answered: 0, failed: 0 })).toBe(0);
    expect(failurePercent({ answered: 8, failed: 2 })).toBe(25);
  });
});

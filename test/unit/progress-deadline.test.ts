import { describe, expect, it } from "vitest";
import {
  initialSteps,
  pausedDuringStart,
  progressDeadlinePassed,
  type Step,
  withStep,
} from "../../src/domain/promotion.ts";

const T0 = Date.parse("2026-12-01T10:00:00Z");
const startedAt = (ms: number): Step[] =>
  withStep(
    withStep(initialSteps(), "CREATE_DEPLOYMENT", "SKIPPED", new Date(T0)),
    "START_DEPLOYMENT",
    "RUNNING",
    new Date(ms),
  );

describe("the progress deadline's clock", () => {
  it("runs from the start of START_DEPLOYMENT", () => {
    const steps = startedAt(T0);
    expect(progressDeadlinePassed(steps, 0, T0 + 10_000, 10)).toBe(false);
    expect(progressDeadlinePassed(steps, 0, T0 + 10_001, 10)).toBe(true);
    expect(progressDeadlinePassed(initialSteps(), 0, T0 + 1e9, 10)).toBe(false);
  });

  it("leaves out the time paused while START_DEPLOYMENT ran", () => {
    const steps = startedAt(T0);
    const paused = pausedDuringStart(steps, new Date(T0 + 3_000), T0 + 8_000);
    expect(paused).toBe(5_000);
    expect(progressDeadlinePassed(steps, paused, T0 + 15_000, 10)).toBe(false);
    expect(progressDeadlinePassed(steps, paused, T0 + 15_001, 10)).toBe(true);
  });

  it("counts only the part of a pause after the step began, and nothing for other steps", () => {
    // Paused during CREATE_DEPLOYMENT, START_DEPLOYMENT began at T0 + 2 s (it cannot run while paused
    // in practice, but a pause that spans the boundary counts from the step's start).
    expect(pausedDuringStart(startedAt(T0 + 2_000), new Date(T0), T0 + 5_000)).toBe(3_000);
    expect(pausedDuringStart(initialSteps(), new Date(T0), T0 + 5_000)).toBe(0);
    expect(pausedDuringStart(startedAt(T0), null, T0 + 5_000)).toBe(0);
    const done = withStep(startedAt(T0), "START_DEPLOYMENT", "SUCCEEDED", new Date(T0 + 1_000));
    expect(pausedDuringStart(done, new Date(T0 + 2_000), T0 + 5_000)).toBe(0);
  });
});

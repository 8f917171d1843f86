import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { SerialDebouncer } from "../../src/cli/debounce.ts";

/** A task whose runs are recorded and finish only when the test says so. */
function controlledTask() {
  const runs: { startedAt: number; finish: () => void; fail: (e: Error) => void }[] = [];
  let active = 0;
  let maxActive = 0;
  const task = () =>
    new Promise<void>((resolve, reject) => {
      active++;
      maxActive = Math.max(maxActive, active);
      const done = (fn: () => void) => () => {
        active--;
        fn();
      };
      runs.push({ startedAt: Date.now(), finish: done(resolve), fail: (e) => done(() => reject(e))() });
    });
  return { task, runs, maxActive: () => maxActive };
}

beforeEach(() => {
  vi.useFakeTimers();
  vi.setSystemTime(0);
});

afterEach(() => {
  vi.useRealTimers();
});

describe("SerialDebouncer", () => {
  it("runs once, delayMs after the last of a burst of changes", async () => {
    const { task, runs } = controlledTask();
    const d = new SerialDebouncer(task, 300);
    d.trigger();
    await vi.advanceTimersByTimeAsync(200);
    d.trigger();
    await vi.advanceTimersByTimeAsync(200);
    d.trigger();
    await vi.advanceTimersByTimeAsync(299);
    expect(runs).toHaveLength(0);
    await vi.advanceTimersByTimeAsync(1);
    expect(runs).toHaveLength(1);
    expect(runs[0]?.startedAt).toBe(700);
    runs[0]?.finish();
    await vi.advanceTimersByTimeAsync(5_000);
    expect(runs).toHaveLength(1);
    expect(d.busy).toBe(false);
  });

  it("never overlaps runs: changes during a run queue exactly one more", async () => {
    const { task, runs, maxActive } = controlledTask();
    const d = new SerialDebouncer(task, 300);
    d.trigger();
    await vi.advanceTimersByTimeAsync(300);
    expect(runs).toHaveLength(1);
    // Three changes while the first run (an upload) is still going.
    d.trigger();
    await vi.advanceTimersByTimeAsync(100);
    d.trigger();
    await vi.advanceTimersByTimeAsync(1_000);
    d.trigger();
    await vi.advanceTimersByTimeAsync(1_000);
    expect(runs).toHaveLength(1);
    runs[0]?.finish();
    // The last change was 1 s ago, longer than the quiet period: the queued run starts at once.
    await vi.advanceTimersByTimeAsync(0);
    expect(runs).toHaveLength(2);
    expect(maxActive()).toBe(1);
    runs[1]?.finish();
    await vi.advanceTimersByTimeAsync(5_000);
    expect(runs).toHaveLength(2);
  });

  it("a queued run still waits for the quiet period after the last change", async () => {
    const { task, runs } = controlledTask();
    const d = new SerialDebouncer(task, 300);
    d.trigger();
    await vi.advanceTimersByTimeAsync(300); // run 1 starts at 300
    await vi.advanceTimersByTimeAsync(400);
    d.trigger(); // at 700, during run 1
    await vi.advanceTimersByTimeAsync(100);
    runs[0]?.finish(); // at 800: the quiet period ends at 1000
    await vi.advanceTimersByTimeAsync(199);
    expect(runs).toHaveLength(1);
    await vi.advanceTimersByTimeAsync(1);
    expect(runs).toHaveLength(2);
    expect(runs[1]?.startedAt).toBe(1000);
  });

  it("reports a failing run and keeps going", async () => {
    const { task, runs } = controlledTask();
    const errors: unknown[] = [];
    const d = new SerialDebouncer(task, 50, (e) => errors.push(e));
    d.trigger();
    await vi.advanceTimersByTimeAsync(50);
    runs[0]?.fail(new Error("upload failed"));
    await vi.advanceTimersByTimeAsync(0);
    expect(errors).toHaveLength(1);
    d.trigger();
    await vi.advanceTimersByTimeAsync(50);
    expect(runs).toHaveLength(2);
  });

  it("stop() cancels a waiting run and ignores later changes", async () => {
    const { task, runs } = controlledTask();
    const d = new SerialDebouncer(task, 300);
    d.trigger();
    await vi.advanceTimersByTimeAsync(100);
    d.stop();
    d.trigger();
    await vi.advanceTimersByTimeAsync(1_000);
    expect(runs).toHaveLength(0);
    expect(d.busy).toBe(false);
  });
});

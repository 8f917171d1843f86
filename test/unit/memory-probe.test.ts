/** The benchmark's memory probe (src/memory-probe.ts): inert without --expose-gc, else SIGUSR2 logs memory. */
import { afterEach, describe, expect, it, vi } from "vitest";
import type { Logger } from "../../src/logger.ts";
import { installMemoryProbe } from "../../src/memory-probe.ts";

const global = globalThis as { gc?: () => void };
const original = global.gc;

afterEach(() => {
  global.gc = original;
});

describe("memory probe", () => {
  it("listens to nothing unless garbage collection is exposed", () => {
    global.gc = undefined;
    const before = process.listenerCount("SIGUSR2");
    const remove = installMemoryProbe({ info: vi.fn() } as unknown as Logger, () => ({}));
    expect(process.listenerCount("SIGUSR2")).toBe(before);
    remove();
  });

  it("collects garbage and logs memory with the details on SIGUSR2, until removed", () => {
    global.gc = vi.fn();
    const info = vi.fn();
    const remove = installMemoryProbe({ info } as unknown as Logger, () => ({
      subscriptions: { upstreams: 1 },
    }));
    process.emit("SIGUSR2", "SIGUSR2");
    expect(global.gc).toHaveBeenCalled();
    expect(info).toHaveBeenCalledWith(
      expect.objectContaining({
        memory: expect.objectContaining({ rss: expect.any(Number), heapUsed: expect.any(Number) }),
        subscriptions: { upstreams: 1 },
      }),
      "memory probe",
    );
    remove();
    process.emit("SIGUSR2", "SIGUSR2");
    expect(info).toHaveBeenCalledTimes(1);
  });
});

// HANGAR_METRICS (README "Settings"): on unless turned off, and a value it does not know stops the start.
import { describe, expect, it } from "vitest";
import { loadConfig } from "../../src/config.ts";

describe("HANGAR_METRICS", () => {
  it("is on when unset or empty", () => {
    expect(loadConfig({}).metrics).toBe(true);
    expect(loadConfig({ HANGAR_METRICS: "" }).metrics).toBe(true);
  });

  it.each(["0", "off", "false", "OFF", "False"])("is off for %s", (raw) => {
    expect(loadConfig({ HANGAR_METRICS: raw }).metrics).toBe(false);
  });

  it.each(["1", "on", "true", "TRUE"])("is on for %s", (raw) => {
    expect(loadConfig({ HANGAR_METRICS: raw }).metrics).toBe(true);
  });

  it.each(["no", "disabled", " 0", "2", "of"])("stops the start at '%s'", (raw) => {
    expect(() => loadConfig({ HANGAR_METRICS: raw })).toThrow(
      `HANGAR_METRICS must be 1, on or true, or 0, off or false, got '${raw}'`,
    );
  });

  it("yields to an override (the embedding code's)", () => {
    expect(loadConfig({ HANGAR_METRICS: "1" }, { metrics: false }).metrics).toBe(false);
  });
});

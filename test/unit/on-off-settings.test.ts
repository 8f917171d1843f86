// The on/off settings (README "Settings"): HANGAR_METRICS and HANGAR_SHARED_SUBSCRIPTIONS on unless
// turned off, HANGAR_WEBHOOK_ALLOW_LOCAL off unless turned on; a value they do not know stops the start.
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

describe("HANGAR_SHARED_SUBSCRIPTIONS and HANGAR_WEBHOOK_ALLOW_LOCAL", () => {
  it("share subscriptions and keep webhooks off local addresses unless told otherwise", () => {
    expect(loadConfig({})).toMatchObject({ sharedSubscriptions: true, webhookAllowLocal: false });
    expect(loadConfig({ HANGAR_SHARED_SUBSCRIPTIONS: "off", HANGAR_WEBHOOK_ALLOW_LOCAL: "1" })).toMatchObject(
      { sharedSubscriptions: false, webhookAllowLocal: true },
    );
  });

  it("stop the start at a value they do not know, rather than guess", () => {
    expect(() => loadConfig({ HANGAR_SHARED_SUBSCRIPTIONS: "no" })).toThrow(
      "HANGAR_SHARED_SUBSCRIPTIONS must be 1, on or true, or 0, off or false, got 'no'",
    );
    expect(() => loadConfig({ HANGAR_WEBHOOK_ALLOW_LOCAL: "yes" })).toThrow(
      "HANGAR_WEBHOOK_ALLOW_LOCAL must be 1, on or true, or 0, off or false, got 'yes'",
    );
  });
});

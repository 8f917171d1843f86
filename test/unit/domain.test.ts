import { describe, expect, it } from "vitest";
import {
  baselineReplicas,
  DEFAULT_AUTOSCALING,
  mergeAutoscaling,
  parseAutoscaling,
} from "../../src/domain/autoscaling.ts";
import { idKind, isIdOf, newId } from "../../src/domain/ids.ts";
import { nameProblem } from "../../src/domain/names.ts";
import { decodeEventCursor, encodeEventCursor } from "../../src/events/log.ts";
import { parsePath } from "../../src/gateway/gateway.ts";

describe("names", () => {
  it.each([
    ["model", "iris", true],
    ["model", "iris.v2_x-1", true],
    ["model", "9lives", true],
    ["model", "Iris", false],
    ["model", ".iris", false],
    ["model", "a".repeat(63), true],
    ["model", "a".repeat(64), false],
    ["model", "", false],
    ["environment", "staging", true],
    ["environment", "stag.ing", false],
    ["environment", "stag_ing", false],
    ["environment", "-staging", false],
    ["deployment", "v1.2_RC-3", true],
    ["deployment", "a".repeat(63), true],
    ["deployment", "a".repeat(64), false],
    ["deployment", "with space", false],
    ["deployment", "", false],
  ] as const)("%s name %j valid: %s", (kind, name, valid) => {
    expect(nameProblem(kind, name) === null).toBe(valid);
  });
});

describe("ids", () => {
  it("are URL-safe, typed by prefix and recognised", () => {
    const id = newId("Deployment");
    expect(id).toMatch(/^dep_[A-Za-z0-9_-]{16}$/);
    expect(encodeURIComponent(id)).toBe(id);
    expect(idKind(id)).toBe("Deployment");
    expect(isIdOf("Model", id)).toBe(false);
  });

  it("rejects malformed ones", () => {
    for (const id of ["", "dep", "dep_", "dep_short", "xyz_AAAAAAAAAAAAAAAA", "dep_AAAAAAAAAAAAAAA!"]) {
      expect(idKind(id)).toBeNull();
    }
  });
});

describe("autoscaling settings", () => {
  it("has the documented defaults", () => {
    expect(DEFAULT_AUTOSCALING).toEqual({
      minReplica: 0,
      maxReplica: 1,
      autoscalingWindow: 60,
      scaleDownDelay: 900,
      concurrencyTarget: 1,
      targetUtilizationPercentage: 70,
    });
  });

  it("changes only the fields sent", () => {
    const result = mergeAutoscaling(DEFAULT_AUTOSCALING, { maxReplica: 4 });
    expect(result).toEqual({ settings: { ...DEFAULT_AUTOSCALING, maxReplica: 4 } });
  });

  it.each([
    [{ minReplica: -1 }, "minReplica"],
    [{ maxReplica: 0 }, "maxReplica"],
    [{ autoscalingWindow: 0 }, "autoscalingWindow"],
    [{ autoscalingWindow: 3601 }, "autoscalingWindow"],
    [{ scaleDownDelay: -1 }, "scaleDownDelay"],
    [{ scaleDownDelay: 3601 }, "scaleDownDelay"],
    [{ concurrencyTarget: 0 }, "concurrencyTarget"],
    [{ targetUtilizationPercentage: 0 }, "targetUtilizationPercentage"],
    [{ targetUtilizationPercentage: 101 }, "targetUtilizationPercentage"],
    [{ minReplica: 1.5 }, "minReplica"],
    [{ minReplica: 3, maxReplica: 2 }, "minReplica"],
    [{ minReplica: null }, "minReplica"],
  ])("refuses %j (field %s)", (patch, field) => {
    const result = mergeAutoscaling(DEFAULT_AUTOSCALING, patch);
    expect("problem" in result && result.problem.field).toBe(field);
  });

  it("accepts the range edges", () => {
    const result = mergeAutoscaling(DEFAULT_AUTOSCALING, {
      autoscalingWindow: 3600,
      scaleDownDelay: 0,
      targetUtilizationPercentage: 100,
      minReplica: 5,
      maxReplica: 5,
    });
    expect("settings" in result).toBe(true);
  });

  it("pins the development deployment at min 0 / max 1 but lets the rest change", () => {
    expect(mergeAutoscaling(DEFAULT_AUTOSCALING, { maxReplica: 2 }, { development: true })).toMatchObject({
      problem: { field: "maxReplica" },
    });
    expect(
      mergeAutoscaling(DEFAULT_AUTOSCALING, { minReplica: 1, maxReplica: 1 }, { development: true }),
    ).toMatchObject({ problem: { field: "minReplica" } });
    expect(mergeAutoscaling(DEFAULT_AUTOSCALING, { scaleDownDelay: 30 }, { development: true })).toEqual({
      settings: { ...DEFAULT_AUTOSCALING, scaleDownDelay: 30 },
    });
  });

  it("fills stored settings with defaults and starts at least one replica", () => {
    expect(parseAutoscaling({ maxReplica: 3 })).toEqual({ ...DEFAULT_AUTOSCALING, maxReplica: 3 });
    expect(baselineReplicas(DEFAULT_AUTOSCALING, false)).toBe(1);
    expect(baselineReplicas({ ...DEFAULT_AUTOSCALING, minReplica: 3, maxReplica: 4 }, false)).toBe(3);
    expect(baselineReplicas({ ...DEFAULT_AUTOSCALING, minReplica: 3, maxReplica: 4 }, true)).toBe(1);
  });
});

describe("event cursors", () => {
  it("round-trip and reject garbage", () => {
    expect(decodeEventCursor(encodeEventCursor(42))).toBe(42);
    expect(decodeEventCursor("nonsense")).toBeNull();
    expect(decodeEventCursor("")).toBeNull();
  });
});

describe("gateway paths", () => {
  it.each([
    [
      "/models/m/predict",
      { modelId: "m", action: "predict", target: { kind: "environment", name: "production" } },
    ],
    [
      "/models/m/production/wake",
      { modelId: "m", action: "wake", target: { kind: "environment", name: "production" } },
    ],
    [
      "/models/m/environments/staging/predict",
      { modelId: "m", action: "predict", target: { kind: "environment", name: "staging" } },
    ],
    [
      "/models/m/deployments/d/predict",
      { modelId: "m", action: "predict", target: { kind: "deployment", deploymentId: "d" } },
    ],
    ["/models/m/development/predict", { modelId: "m", action: "predict", target: { kind: "development" } }],
  ])("parses %s", (path, expected) => {
    expect(parsePath(path)).toEqual(expected);
  });

  it.each([
    "/models",
    "/models/m",
    "/models/m/other",
    "/models/m/deployments/predict",
    "/models/m/x/y/predict",
  ])("rejects %s", (path) => {
    expect(parsePath(path)).toBeNull();
  });

  it("decodes escaped segments", () => {
    expect(parsePath("/models/a%2Fb/environments/st%C3%A9/predict")).toEqual({
      modelId: "a/b",
      action: "predict",
      target: { kind: "environment", name: "sté" },
    });
  });

  it.each(["/models/%ZZ/predict", "/models/m/environments/%E2%82/predict", "/models/m/deployments/%/wake"])(
    "calls %s malformed instead of throwing",
    (path) => {
      expect(parsePath(path)).toBe("malformed");
    },
  );
});

import { describe, expect, it } from "vitest";
import {
  CRASH_WINDOW_MS,
  factReason,
  isCrashLoop,
  type LifecycleFact,
  nextStatus,
  recentCrashes,
  startRetry,
} from "../../src/domain/deployment-lifecycle.ts";
import {
  DEPLOYMENT_STATUSES,
  type DeploymentStatus,
  HALTED_STATUSES,
  READY_STATUSES,
  RUNNING_STATUSES,
  SERVABLE_STATUSES,
} from "../../src/domain/status.ts";

const NOW = 10_000_000;
const facts: LifecycleFact[] = [
  { kind: "build succeeded" },
  { kind: "build failed", reason: "bad" },
  { kind: "replica started" },
  { kind: "replica ready" },
  { kind: "no replica ready", reason: "exited" },
  { kind: "starting again" },
  { kind: "start failed", attempts: 3, reason: "exited with code 1" },
  { kind: "crashed", crashes: [NOW - 2, NOW - 1, NOW], now: NOW, reason: "killed" },
  { kind: "activated" },
  { kind: "deactivated" },
  { kind: "replicas stopped" },
  { kind: "scaled to zero", reason: "idle" },
  { kind: "woken" },
  { kind: "new code pushed" },
  { kind: "demoted", to: "SCALED_TO_ZERO" },
  { kind: "demoted", to: "DEACTIVATING" },
  { kind: "released", outcome: "FAILED" },
  { kind: "deleted" },
];

describe("the deployment lifecycle table", () => {
  it.each<[DeploymentStatus, LifecycleFact, DeploymentStatus | null]>([
    // build -> DEPLOYING -> LOADING_MODEL -> ACTIVE
    ["BUILDING", { kind: "build succeeded" }, "DEPLOYING"],
    ["BUILDING", { kind: "build failed", reason: "x" }, "BUILD_FAILED"],
    ["DEPLOYING", { kind: "replica started" }, "LOADING_MODEL"],
    ["LOADING_MODEL", { kind: "replica started" }, null],
    ["LOADING_MODEL", { kind: "replica ready" }, "ACTIVE"],
    ["DEPLOYING", { kind: "replica ready" }, "ACTIVE"],
    ["WAKING_UP", { kind: "replica ready" }, "ACTIVE"],
    ["BUILDING", { kind: "replica ready" }, null],
    ["ACTIVE", { kind: "replica ready" }, null],
    ["ACTIVE", { kind: "no replica ready", reason: "x" }, "DEPLOYING"],
    ["LOADING_MODEL", { kind: "no replica ready", reason: "x" }, null],
    ["ACTIVE", { kind: "starting again" }, "DEPLOYING"],
    // scale to zero and wake
    ["ACTIVE", { kind: "scaled to zero", reason: "idle" }, "SCALED_TO_ZERO"],
    ["LOADING_MODEL", { kind: "scaled to zero", reason: "idle" }, null],
    ["SCALED_TO_ZERO", { kind: "woken" }, "WAKING_UP"],
    ["ACTIVE", { kind: "woken" }, null],
    // deactivate / activate
    ["ACTIVE", { kind: "deactivated" }, "DEACTIVATING"],
    ["SCALED_TO_ZERO", { kind: "deactivated" }, "DEACTIVATING"],
    ["DEACTIVATING", { kind: "deactivated" }, null],
    ["INACTIVE", { kind: "deactivated" }, null],
    ["DEACTIVATING", { kind: "replicas stopped" }, "INACTIVE"],
    ["ACTIVE", { kind: "replicas stopped" }, null],
    ["INACTIVE", { kind: "activated" }, "DEPLOYING"],
    ["BUILD_FAILED", { kind: "activated" }, "BUILDING"],
    ["UNHEALTHY", { kind: "activated" }, "DEPLOYING"],
    ["DEPLOY_FAILED", { kind: "activated" }, "DEPLOYING"],
    ["ACTIVE", { kind: "activated" }, null],
    // a promotion demotes the previous deployment, or releases the copy it made
    ["ACTIVE", { kind: "demoted", to: "SCALED_TO_ZERO" }, "SCALED_TO_ZERO"],
    ["WAKING_UP", { kind: "demoted", to: "SCALED_TO_ZERO" }, "SCALED_TO_ZERO"],
    ["INACTIVE", { kind: "demoted", to: "SCALED_TO_ZERO" }, null],
    ["ACTIVE", { kind: "demoted", to: "DEACTIVATING" }, "DEACTIVATING"],
    ["UNHEALTHY", { kind: "demoted", to: "DEACTIVATING" }, "DEACTIVATING"],
    ["INACTIVE", { kind: "demoted", to: "DEACTIVATING" }, null],
    ["LOADING_MODEL", { kind: "released", outcome: "CANCELED" }, "SCALED_TO_ZERO"],
    ["DEPLOY_FAILED", { kind: "released", outcome: "FAILED" }, null],
    // re-push of the development deployment, and delete
    ["ACTIVE", { kind: "new code pushed" }, "BUILDING"],
    ["BUILDING", { kind: "new code pushed" }, "BUILDING"],
    ["DELETED", { kind: "new code pushed" }, null],
    ["INACTIVE", { kind: "deleted" }, "DELETED"],
    ["DELETED", { kind: "deleted" }, null],
  ])("%s + %j -> %s", (from, fact, to) => {
    expect(nextStatus(from, fact)).toBe(to);
  });

  it("start failures: retried twice, the third gives up with DEPLOY_FAILED", () => {
    const failed = (attempts: number) => ({ kind: "start failed" as const, attempts, reason: "exit 1" });
    expect(nextStatus("LOADING_MODEL", failed(1))).toBeNull();
    expect(nextStatus("LOADING_MODEL", failed(2))).toBeNull();
    expect(nextStatus("LOADING_MODEL", failed(3))).toBe("DEPLOY_FAILED");
    expect(nextStatus("ACTIVE", failed(3))).toBe("DEPLOY_FAILED");
    expect(nextStatus("INACTIVE", failed(3))).toBeNull();
    expect(factReason(failed(3))).toBe("replica failed to start 3 times (last: exit 1)");
    expect(factReason({ kind: "released", outcome: "CANCELED" })).toBe("promotion canceled");
  });

  it("crashes: three inside five minutes make it UNHEALTHY, spread-out ones do not", () => {
    const crashed = (crashes: number[]) => ({
      kind: "crashed" as const,
      crashes,
      now: NOW,
      reason: "killed",
    });
    expect(nextStatus("ACTIVE", crashed([NOW - 1000, NOW]))).toBeNull();
    expect(nextStatus("ACTIVE", crashed([NOW - 2000, NOW - 1000, NOW]))).toBe("UNHEALTHY");
    expect(nextStatus("ACTIVE", crashed([NOW - CRASH_WINDOW_MS, NOW - 1000, NOW]))).toBeNull();
    expect(nextStatus("DEACTIVATING", crashed([NOW - 2, NOW - 1, NOW]))).toBeNull();
  });

  it("no fact leads to UPDATING, and no group holds it", () => {
    for (const from of DEPLOYMENT_STATUSES)
      for (const fact of facts) expect(nextStatus(from, fact)).not.toBe("UPDATING");
    for (const group of [READY_STATUSES, RUNNING_STATUSES, SERVABLE_STATUSES, HALTED_STATUSES]) {
      expect(group.has("UPDATING")).toBe(false);
    }
  });

  it("nothing leaves DELETED, and nothing but activation leaves a halted status for a running one", () => {
    for (const fact of facts) expect(nextStatus("DELETED", fact)).toBeNull();
    for (const from of HALTED_STATUSES) {
      for (const fact of facts) {
        const to = nextStatus(from, fact);
        if (to && RUNNING_STATUSES.has(to)) expect(["activated", "new code pushed"]).toContain(fact.kind);
      }
    }
  });
});

describe("the retry and crash-loop policies", () => {
  it("start retry: attempts 1 and 2 retry, 3 gives up", () => {
    expect(startRetry(1)).toEqual({ retry: true, nextAttempt: 2 });
    expect(startRetry(2)).toEqual({ retry: true, nextAttempt: 3 });
    expect(startRetry(3)).toEqual({ retry: false });
  });

  it("crash window: only crashes within five minutes count", () => {
    const crashes = [NOW - CRASH_WINDOW_MS - 1, NOW - CRASH_WINDOW_MS + 1, NOW];
    expect(recentCrashes(crashes, NOW)).toEqual([NOW - CRASH_WINDOW_MS + 1, NOW]);
    expect(isCrashLoop(crashes, NOW)).toBe(false);
    expect(isCrashLoop([...crashes, NOW], NOW)).toBe(true);
  });
});

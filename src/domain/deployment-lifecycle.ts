/**
 * The deployment lifecycle of API.md section 6 as one transition table:
 * (status, fact) -> status. Controllers and services report what happened as a
 * fact; this table alone says which status follows, and the store applies it.
 * The start-retry and crash-loop policies are pure functions here too.
 */
import {
  AWAITING_REPLICA_STATUSES,
  type DeploymentStatus,
  HALTED_STATUSES,
  RUNNING_STATUSES,
  STOPPED_STATUSES,
} from "./status.ts";

/** Something that happened to a deployment, as reported by the controllers, the runtime or a user. */
export type LifecycleFact =
  | { kind: "build succeeded" }
  | { kind: "build failed"; reason: string }
  | { kind: "replica started" }
  | { kind: "replica ready" }
  | { kind: "no replica ready"; reason: string }
  /** A fresh start of a deployment that was serving (Hangar restarted, or its replicas were lost). */
  | { kind: "starting again" }
  /** A replica exited before it was ready; `attempts` counts consecutive failed starts, this one included. */
  | { kind: "start failed"; attempts: number; reason: string }
  /** A ready replica exited; `crashes` are the times (ms) of its deployment's recent crashes, this one included. */
  | { kind: "crashed"; crashes: readonly number[]; now: number; reason: string }
  | { kind: "activated" }
  | { kind: "deactivated" }
  | { kind: "replicas stopped" }
  | { kind: "scaled to zero"; reason: string }
  | { kind: "woken" }
  | { kind: "new code pushed" }
  /** A promotion switched its environment away from the deployment: it is scaled to zero or deactivated. */
  | { kind: "demoted"; to: "SCALED_TO_ZERO" | "DEACTIVATING" }
  /** A promotion that created the deployment ended without ACTIVATE: the copy stays, scaled to zero. */
  | { kind: "released"; outcome: "FAILED" | "CANCELED" }
  | { kind: "deleted" };

export type FactKind = LifecycleFact["kind"];

/** API.md section 6: a replica that never became ready is started once and retried twice. */
export const MAX_START_ATTEMPTS = 3;
/** API.md section 6: three crashes of ready replicas within five minutes make a deployment UNHEALTHY. */
export const CRASH_LOOP_COUNT = 3;
export const CRASH_WINDOW_MS = 5 * 60_000;

/** The start-retry policy: after `attempts` failed starts in a row, start again or give up. */
export function startRetry(attempts: number): { retry: true; nextAttempt: number } | { retry: false } {
  return attempts < MAX_START_ATTEMPTS ? { retry: true, nextAttempt: attempts + 1 } : { retry: false };
}

/** The crash times still inside the crash window at `now` (what a controller needs to keep). */
export function recentCrashes(crashes: readonly number[], now: number): number[] {
  return crashes.filter((t) => now - t < CRASH_WINDOW_MS);
}

/** The crash-loop policy: enough crashes inside the window. */
export function isCrashLoop(crashes: readonly number[], now: number): boolean {
  return recentCrashes(crashes, now).length >= CRASH_LOOP_COUNT;
}

const only = (from: Iterable<DeploymentStatus>, to: DeploymentStatus) => {
  const set = new Set(from);
  return (status: DeploymentStatus): DeploymentStatus | null => (set.has(status) ? to : null);
};

/** Statuses a deployment that is brought up again (or deleted) may leave: every one but DELETED. */
const LIVE = (status: DeploymentStatus) => status !== "DELETED";

const deactivate = (from: DeploymentStatus): DeploymentStatus | null =>
  LIVE(from) && from !== "INACTIVE" && from !== "DEACTIVATING" ? "DEACTIVATING" : null;

/**
 * The table. A rule answers the next status, or null when the fact changes
 * nothing in that status (a stale or repeated report): nothing is written then.
 */
const TABLE: {
  [K in FactKind]: (
    from: DeploymentStatus,
    fact: Extract<LifecycleFact, { kind: K }>,
  ) => DeploymentStatus | null;
} = {
  "build succeeded": only(["BUILDING"], "DEPLOYING"),
  "build failed": only(["BUILDING"], "BUILD_FAILED"),
  "replica started": only(["DEPLOYING"], "LOADING_MODEL"),
  "replica ready": only(AWAITING_REPLICA_STATUSES, "ACTIVE"),
  "no replica ready": only(["ACTIVE"], "DEPLOYING"),
  "starting again": only(["ACTIVE"], "DEPLOYING"),
  "start failed": (from, fact) =>
    RUNNING_STATUSES.has(from) && !startRetry(fact.attempts).retry ? "DEPLOY_FAILED" : null,
  crashed: (from, fact) =>
    RUNNING_STATUSES.has(from) && isCrashLoop(fact.crashes, fact.now) ? "UNHEALTHY" : null,
  // A failed build is retried from the start; anything else just starts again.
  activated: (from) =>
    from === "BUILD_FAILED" ? "BUILDING" : HALTED_STATUSES.has(from) ? "DEPLOYING" : null,
  deactivated: (from) => deactivate(from),
  demoted: (from, fact) =>
    fact.to === "DEACTIVATING" ? deactivate(from) : RUNNING_STATUSES.has(from) ? "SCALED_TO_ZERO" : null,
  released: (from) => (RUNNING_STATUSES.has(from) ? "SCALED_TO_ZERO" : null),
  "replicas stopped": only(["DEACTIVATING"], "INACTIVE"),
  // The status moves before the replicas stop: from then on a request wakes it.
  "scaled to zero": only(["ACTIVE"], "SCALED_TO_ZERO"),
  woken: only(["SCALED_TO_ZERO"], "WAKING_UP"),
  // The development deployment's code is replaced in place: it builds again whatever it was doing.
  "new code pushed": (from) => (LIVE(from) ? "BUILDING" : null),
  deleted: (from) => (LIVE(from) ? "DELETED" : null),
};

/** The status that follows `fact` in `from`, or null when the fact changes nothing there. */
export function nextStatus(from: DeploymentStatus, fact: LifecycleFact): DeploymentStatus | null {
  const rule = TABLE[fact.kind] as (from: DeploymentStatus, fact: LifecycleFact) => DeploymentStatus | null;
  return rule(from, fact);
}

/** The reason recorded with the status change (the event's message after the arrow). */
export function factReason(fact: LifecycleFact): string {
  switch (fact.kind) {
    case "build failed":
      return fact.reason;
    case "replica started":
      return "replica process started";
    case "replica ready":
      return "a replica is ready";
    case "no replica ready":
      return `no replica is ready: ${fact.reason}`;
    case "starting again":
      return "starting replicas";
    case "start failed":
      return `replica failed to start ${fact.attempts} times (last: ${fact.reason})`;
    case "crashed":
      return `replica crashed ${recentCrashes(fact.crashes, fact.now).length} times in a row (last: ${fact.reason})`;
    case "scaled to zero":
      return fact.reason;
    case "woken":
      return "woken by a request";
    case "demoted":
      return "demoted by a promotion";
    case "released":
      return `promotion ${fact.outcome.toLowerCase()}`;
    default:
      return fact.kind;
  }
}

/** Whether a deployment in `status` should have no replica running. */
export const mustStop = (status: DeploymentStatus): boolean => STOPPED_STATUSES.has(status);

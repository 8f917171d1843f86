/** The promotion state machine's pure parts: steps, statuses, what may be promoted. */
import { type DeploymentStatus, HALTED_STATUSES } from "./status.ts";

export const STEP_NAMES = ["CREATE_DEPLOYMENT", "START_DEPLOYMENT", "ACTIVATE"] as const;
export type StepName = (typeof STEP_NAMES)[number];
export type StepStatus = "PENDING" | "RUNNING" | "SUCCEEDED" | "FAILED" | "SKIPPED";

export interface Step {
  name: StepName;
  status: StepStatus;
  startedAt: string | null;
  finishedAt: string | null;
  message: string | null;
}

export type PromotionStatus =
  | "RELEASING"
  | "RAMPING_UP"
  | "PAUSED"
  | "RAMPING_DOWN"
  | "SUCCEEDED"
  | "FAILED"
  | "CANCELED";

export const ACTIVE_PROMOTION_STATUSES: readonly PromotionStatus[] = [
  "RELEASING",
  "RAMPING_UP",
  "PAUSED",
  "RAMPING_DOWN",
];

export function isActive(status: PromotionStatus): boolean {
  return ACTIVE_PROMOTION_STATUSES.includes(status);
}

/**
 * A promotion in these statuses may hold part of its environment's traffic on
 * the new deployment: it does while its percentTraffic is above 0 (a pause
 * before the ramp began holds none). The gateway's route table reads them.
 */
export const TRAFFIC_SPLITTING_STATUSES: readonly PromotionStatus[] = [
  "RAMPING_UP",
  "PAUSED",
  "RAMPING_DOWN",
];

/** Deployments in these statuses cannot be promoted until activated (DEPLOYMENT_NOT_ACTIVE). */
export const NOT_PROMOTABLE: ReadonlySet<DeploymentStatus> = HALTED_STATUSES;

export function initialSteps(): Step[] {
  return STEP_NAMES.map((name) => ({
    name,
    status: "PENDING",
    startedAt: null,
    finishedAt: null,
    message: null,
  }));
}

export function parseSteps(value: unknown): Step[] {
  return Array.isArray(value) && value.length === 3 ? (value as Step[]) : initialSteps();
}

export function stepOf(steps: Step[], name: StepName): Step {
  return steps.find((s) => s.name === name) as Step;
}

/** A copy of the steps with one step moved to `status`, its times kept right. */
export function withStep(
  steps: Step[],
  name: StepName,
  status: StepStatus,
  at: Date,
  message?: string | null,
): Step[] {
  return steps.map((step) => {
    if (step.name !== name) return step;
    const iso = at.toISOString();
    const startedAt = step.startedAt ?? (status === "PENDING" ? null : iso);
    const finished = status === "SUCCEEDED" || status === "FAILED" || status === "SKIPPED";
    return {
      ...step,
      status,
      startedAt,
      finishedAt: finished ? iso : null,
      message: message === undefined ? step.message : message,
    };
  });
}

/**
 * Ends a promotion early: the running step becomes `outcome` (FAILED for a
 * failure, SKIPPED for a cancel), every step not yet done SKIPPED.
 */
export function endSteps(steps: Step[], outcome: "FAILED" | "SKIPPED", at: Date, message: string): Step[] {
  let out = steps;
  for (const step of steps) {
    if (step.status === "RUNNING") out = withStep(out, step.name, outcome, at, message);
    else if (step.status === "PENDING") out = withStep(out, step.name, "SKIPPED", at, null);
  }
  return out;
}

/** The step currently running, if any. */
export function runningStep(steps: Step[]): Step | undefined {
  return steps.find((s) => s.status === "RUNNING");
}

/**
 * The progress deadline's clock (API.md section 6): it runs from the start of
 * START_DEPLOYMENT, but not while the promotion is paused. A pause that ends
 * now adds to the paused time the part of it that START_DEPLOYMENT was
 * running for (a pause before the step began does not count).
 */
export function pausedDuringStart(steps: Step[], pausedAt: Date | null, now: number): number {
  const start = stepOf(steps, "START_DEPLOYMENT");
  if (start.status !== "RUNNING" || !start.startedAt || !pausedAt) return 0;
  return Math.max(0, now - Math.max(pausedAt.getTime(), Date.parse(start.startedAt)));
}

/** Whether START_DEPLOYMENT has run longer than the deadline, paused time left out. */
export function progressDeadlinePassed(
  steps: Step[],
  pausedMs: number,
  now: number,
  deadlineSeconds: number,
): boolean {
  const start = stepOf(steps, "START_DEPLOYMENT");
  if (!start.startedAt) return false;
  return now - Date.parse(start.startedAt) - pausedMs > deadlineSeconds * 1000;
}

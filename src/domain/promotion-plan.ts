/**
 * The promotion plan: every rule of one promotion's life (API.md section 6) as
 * a pure function of the promotion row, the facts its controller read and the
 * time. Like Argo Rollouts' reconcile, it says what the row becomes (changes),
 * what is announced (events) and what must be done beyond the row (effects);
 * the controller and the control mutations only read, persist and carry out.
 * A control (pause, resume, roll forward, cancel) is an intent folded in by
 * the same module, so every status a client sees is decided here.
 */
import {
  awaitingAnswers,
  CANARY_STAGES,
  errorRateBreached,
  failurePercent,
  rampDownStepMs,
  type StageOutcome,
  spentInStage,
  stageLengthMs,
  stagePercent,
  tickRamp,
} from "./canary.ts";
import {
  endSteps,
  isActive,
  type PromotionStatus,
  pausedDuringStart,
  progressDeadlinePassed,
  type Step,
  stepOf,
  withStep,
} from "./promotion.ts";
import type { PromotionSettings } from "./promotion-settings.ts";
import { BROKEN_STATUSES, type DeploymentStatus, READY_STATUSES, RUNNING_STATUSES } from "./status.ts";

/** The promotion row as the plan reads it (steps and settings parsed). */
export interface PromotionState {
  status: PromotionStatus;
  steps: Step[];
  settings: PromotionSettings;
  deploymentId: string | null;
  createdDeployment: boolean;
  previousDeploymentId: string | null;
  scaleDownPrevious: boolean;
  percentTraffic: number;
  canaryStage: number | null;
  canaryStages: number | null;
  stageStartedAt: Date | null;
  stageElapsedMs: number;
  pausedFrom: PromotionStatus | null;
  pausedAt: Date | null;
  startPausedMs: number;
  rollForward: boolean;
  rampDownStepMs: number | null;
  errorMessage: string | null;
}

/** What the row becomes; fields absent stay. */
export type PromotionChange = Partial<
  Omit<PromotionState, "settings" | "previousDeploymentId" | "scaleDownPrevious">
> & {
  finishedAt?: Date;
  /** Null once the promotion has ended (frees the environment for the next one). */
  activeEnvironmentId?: null;
};

export interface DeploymentFacts {
  id: string;
  name: string;
  status: DeploymentStatus;
  deleted: boolean;
}

/** Facts the controller reads for the plan; each phase needs only some of them. */
export interface Observations {
  environmentName: string;
  /** CREATE_DEPLOYMENT: the deployment asked to be promoted. */
  source?: DeploymentFacts & { kind: "DEVELOPMENT" | "PUBLISHED"; servesElsewhere: boolean };
  /** CREATE_DEPLOYMENT: the name a copy would get. */
  copyName?: string;
  /** The promoted deployment (null: not found). */
  deployment?: (DeploymentFacts & { readyReplicas: number }) | null;
  /** The deployment the environment served when the promotion began. */
  previous?: (DeploymentFacts & { minReplica: number }) | null;
  /** The promoted deployment's answers in the current canary stage, as this process counted them. */
  stageAnswers?: StageOutcome;
  /**
   * Whether this process has run the stage clock since stageStartedAt. After a
   * restart it has not: the stage goes on from its checkpoint, and the time
   * Hangar was down does not count.
   */
  clockRunningHere?: boolean;
}

export type PlanEventType = "PROMOTION_STEP_CHANGED" | "CANARY_STAGE_CHANGED" | "PROMOTION_FINISHED";
export interface PlanEvent {
  type: PlanEventType;
  message: string;
}

/**
 * Work beyond the promotion row. The first five run in the row's transaction,
 * before the row is written; wake and beginStage once it has committed.
 */
export type Effect =
  /** Create the promoted deployment from the source; the change's deploymentId is the copy's. */
  | { kind: "createCopy"; name: string; message: string }
  /** The promoted deployment runs with the promotion's autoscaling settings until ACTIVATE. */
  | { kind: "runWithPromotionSettings"; deploymentId: string }
  /** The environment switches to the deployment, whose promotion settings become its own. */
  | { kind: "activate"; deploymentId: string; message: string }
  | { kind: "demote"; deploymentId: string; to: "SCALED_TO_ZERO" | "DEACTIVATING" }
  /** The promotion ends without ACTIVATE: the deployment back on its own settings, a copy scaled to zero. */
  | { kind: "release"; outcome: "FAILED" | "CANCELED" }
  | { kind: "wake"; deploymentId: string }
  /** A canary stage began: its answers are counted from now. */
  | { kind: "beginStage"; stage: number };

export interface Plan {
  changes: PromotionChange | null;
  /** Announced with the row's new state; a plan without events made no move (a checkpoint at most). */
  events: PlanEvent[];
  effects: Effect[];
  /** The move's name, for crash tests (failpoint `promotion:<milestone>` once committed). */
  milestone?: string;
}

const NOTHING: Plan = { changes: null, events: [], effects: [] };

function move(changes: PromotionChange, event: PlanEvent, effects: Effect[] = [], milestone?: string): Plan {
  return { changes, events: [event], effects, ...(milestone ? { milestone } : {}) };
}

/** The row after a plan, for callers that must know where it went. */
export function applyChanges(p: PromotionState, changes: PromotionChange | null): PromotionState {
  if (!changes) return p;
  const { finishedAt: _f, activeEnvironmentId: _a, ...rest } = changes;
  return { ...p, ...rest };
}

/**
 * Ends a promotion without ACTIVATE (API.md, Ending a promotion early): the
 * running step FAILED or SKIPPED, later steps SKIPPED, no traffic on the new
 * deployment.
 */
export function endPlan(
  p: PromotionState,
  outcome: "FAILED" | "CANCELED",
  message: string,
  now: number,
): Plan {
  const at = new Date(now);
  return move(
    {
      status: outcome,
      steps: endSteps(p.steps, outcome === "FAILED" ? "FAILED" : "SKIPPED", at, message),
      errorMessage: outcome === "FAILED" ? message : p.errorMessage,
      percentTraffic: 0,
      finishedAt: at,
      activeEnvironmentId: null,
      pausedFrom: null,
    },
    {
      type: "PROMOTION_FINISHED",
      message: `promotion ${outcome === "FAILED" ? "failed" : "canceled"}: ${message}`,
    },
    [{ kind: "release", outcome }],
  );
}

/** The next move of an active promotion, or NOTHING when it has to wait. */
export function planPromotion(p: PromotionState, obs: Observations, now: number): Plan {
  if (!isActive(p.status) || p.status === "PAUSED") return NOTHING;
  const create = stepOf(p.steps, "CREATE_DEPLOYMENT").status;
  const start = stepOf(p.steps, "START_DEPLOYMENT").status;
  const activate = stepOf(p.steps, "ACTIVATE").status;
  // CREATE_DEPLOYMENT is never left RUNNING: its copy and its result commit together.
  if (create === "PENDING") return planCreate(p, obs, now);
  if (create === "RUNNING") return NOTHING;
  if (start === "PENDING") return planBeginStart(p, obs, now);
  if (start === "RUNNING") return planCheckStart(p, obs, now);
  if (activate === "PENDING") {
    // A roll forward skips the ramp up, not a graceful cancel's way down.
    if (p.canaryStages !== null && (p.status === "RAMPING_DOWN" || !p.rollForward)) {
      const ramp = planRamp(p, obs, now);
      if (ramp !== "done") return ramp;
    }
    return move(
      { steps: withStep(p.steps, "ACTIVATE", "RUNNING", new Date(now)) },
      { type: "PROMOTION_STEP_CHANGED", message: "ACTIVATE running" },
      [],
      "activate",
    );
  }
  if (activate === "RUNNING") return planActivate(p, obs, now);
  return NOTHING;
}

/** CREATE_DEPLOYMENT: reuse the source (SKIPPED) or copy it (API.md, Promoting a published deployment). */
function planCreate(p: PromotionState, obs: Observations, now: number): Plan {
  const source = obs.source;
  if (!source) return NOTHING;
  if (source.deleted) return endPlan(p, "FAILED", `deployment '${source.name}' was deleted`, now);
  const at = new Date(now);
  const why =
    source.kind === "DEVELOPMENT"
      ? "the development deployment is always copied"
      : p.settings.redeployOnPromotion
        ? `'${obs.environmentName}' redeploys on promotion`
        : source.servesElsewhere
          ? `'${source.name}' serves another environment`
          : null;
  if (!why) {
    return move(
      {
        deploymentId: source.id,
        steps: withStep(p.steps, "CREATE_DEPLOYMENT", "SKIPPED", at, `reusing '${source.name}'`),
      },
      { type: "PROMOTION_STEP_CHANGED", message: `CREATE_DEPLOYMENT skipped: reusing '${source.name}'` },
      [],
      "create-deployment",
    );
  }
  const name = obs.copyName;
  if (!name) return NOTHING;
  const running = withStep(p.steps, "CREATE_DEPLOYMENT", "RUNNING", at);
  return move(
    {
      createdDeployment: true,
      steps: withStep(running, "CREATE_DEPLOYMENT", "SUCCEEDED", at, `created '${name}': ${why}`),
    },
    { type: "PROMOTION_STEP_CHANGED", message: `CREATE_DEPLOYMENT succeeded: created '${name}'` },
    [
      {
        kind: "createCopy",
        name,
        message: `deployment '${name}' created from '${source.name}' for '${obs.environmentName}' (${why})`,
      },
    ],
    "create-deployment",
  );
}

/** START_DEPLOYMENT begins: the deployment runs with the promotion's settings, woken if asleep. */
function planBeginStart(p: PromotionState, obs: Observations, now: number): Plan {
  const deployment = obs.deployment;
  if (!p.deploymentId || !deployment) return NOTHING;
  const effects: Effect[] = [{ kind: "runWithPromotionSettings", deploymentId: deployment.id }];
  if (deployment.status === "SCALED_TO_ZERO") effects.push({ kind: "wake", deploymentId: deployment.id });
  return move(
    { steps: withStep(p.steps, "START_DEPLOYMENT", "RUNNING", new Date(now)) },
    {
      type: "PROMOTION_STEP_CHANGED",
      message: `START_DEPLOYMENT running: waiting for '${deployment.name}' to be ready`,
    },
    effects,
    "start-deployment",
  );
}

/** START_DEPLOYMENT: done once ready; failed when the deployment breaks or misses the progress deadline. */
function planCheckStart(p: PromotionState, obs: Observations, now: number): Plan {
  const deployment = obs.deployment;
  if (!deployment) return NOTHING;
  if (deployment.status === "SCALED_TO_ZERO") {
    return { changes: null, events: [], effects: [{ kind: "wake", deploymentId: deployment.id }] };
  }
  const deadline = p.settings.progressDeadlineSeconds;
  if (BROKEN_STATUSES.has(deployment.status)) {
    return endPlan(p, "FAILED", `deployment '${deployment.name}' is ${deployment.status}`, now);
  }
  if (READY_STATUSES.has(deployment.status)) {
    return move(
      {
        steps: withStep(
          p.steps,
          "START_DEPLOYMENT",
          "SUCCEEDED",
          new Date(now),
          `'${deployment.name}' is ready`,
        ),
      },
      {
        type: "PROMOTION_STEP_CHANGED",
        message: `START_DEPLOYMENT succeeded: '${deployment.name}' is ready`,
      },
    );
  }
  if (progressDeadlinePassed(p.steps, p.startPausedMs, now, deadline)) {
    return endPlan(
      p,
      "FAILED",
      `deployment '${deployment.name}' was not ready within ${deadline} s (progress deadline)`,
      now,
    );
  }
  return NOTHING;
}

/**
 * The canary ramp between START_DEPLOYMENT and ACTIVATE (domain/canary.ts for
 * the arithmetic): "done" when the last stage is over and ACTIVATE is next.
 */
function planRamp(p: PromotionState, obs: Observations, now: number): Plan | "done" {
  const deployment = obs.deployment;
  if (!deployment) return NOTHING;
  const stage = p.canaryStage ?? 0;
  if (BROKEN_STATUSES.has(deployment.status)) {
    return endPlan(
      p,
      "FAILED",
      `deployment '${deployment.name}' became ${deployment.status} during the ramp (stage ${stage})`,
      now,
    );
  }
  if (stage === 0) {
    // The ramp starts once the new deployment could carry what the previous one was kept at.
    const needed = Math.max(1, obs.previous?.minReplica ?? 1);
    if (deployment.readyReplicas < needed) return NOTHING;
    return enterStage(1, deployment.name, 0, now);
  }
  if (p.status === "RAMPING_DOWN") return planRampDown(p, stage, now);
  if (p.status !== "RAMPING_UP") return NOTHING;
  const runningSince = obs.clockRunningHere ? (p.stageStartedAt?.getTime() ?? now) : now;
  const clock = { stage, elapsedMs: p.stageElapsedMs, runningSince };
  const durationS = p.settings.rampUpDurationSeconds;
  const tick = tickRamp(clock, now, durationS);
  const answers = obs.stageAnswers ?? { answered: 0, failed: 0 };
  const threshold = p.settings.errorRateThresholdPercent;
  if (errorRateBreached(answers, threshold, tick.activate || tick.changed)) {
    const rate = failurePercent(answers).toFixed(1);
    return endPlan(
      p,
      "FAILED",
      `canary stage ${stage} (${stagePercent(stage)}% of traffic): ${rate}% of the new deployment's ` +
        `requests failed (${answers.failed} of ${answers.answered}), over the ${threshold ?? 0}% ` +
        "threshold; all traffic is back on the previous deployment",
      now,
    );
  }
  if ((tick.activate || tick.changed) && awaitingAnswers(answers)) {
    // The stage's time is up but its verdict is not in: it stays on, its clock held at its end (no
    // overrun is carried into the next stage, which gets its whole length).
    return {
      changes: { stageElapsedMs: stageLengthMs(stage, durationS), stageStartedAt: new Date(now) },
      events: [],
      effects: [],
    };
  }
  if (tick.activate) return "done";
  if (tick.changed) return enterStage(tick.clock.stage, deployment.name, tick.clock.elapsedMs, now);
  // Checkpoint, not a move: the ramp time spent so far survives a crash.
  return {
    changes: { stageElapsedMs: Math.round(spentInStage(clock, now)), stageStartedAt: new Date(now) },
    events: [],
    effects: [],
  };
}

function enterStage(stage: number, name: string, carriedMs: number, now: number): Plan {
  const percent = stagePercent(stage);
  return move(
    {
      ...(stage === 1 ? { status: "RAMPING_UP" as const } : {}),
      canaryStage: stage,
      percentTraffic: percent,
      stageStartedAt: new Date(now),
      stageElapsedMs: Math.round(carriedMs),
    },
    {
      type: "CANARY_STAGE_CHANGED",
      message: `canary stage ${stage} of ${CANARY_STAGES}: ${percent}% of traffic to '${name}'`,
    },
    [{ kind: "beginStage", stage }],
    stage === 1 ? undefined : `canary-stage-${stage}`,
  );
}

/**
 * RAMPING_DOWN: one stage back per step, each step the time fixed by the
 * graceful cancel; at zero, CANCELED. So the way down takes as long as the way
 * up had.
 */
function planRampDown(p: PromotionState, stage: number, now: number): Plan {
  const startedAt = p.stageStartedAt?.getTime() ?? now;
  // Promotions that began ramping down before the step was stored: the stage's start over the stage.
  const step = p.rampDownStepMs ?? rampDownStepMs(stage, p.settings.rampUpDurationSeconds, 0);
  if (now - startedAt < step) return NOTHING;
  if (stage <= 1) return endPlan(p, "CANCELED", "canceled after ramping down", now);
  const percent = stagePercent(stage - 1);
  return move(
    { canaryStage: stage - 1, percentTraffic: percent, stageStartedAt: new Date(now) },
    {
      type: "CANARY_STAGE_CHANGED",
      message: `ramping down: stage ${stage - 1}, ${percent}% of traffic to the new deployment`,
    },
  );
}

/**
 * ACTIVATE: the environment switches, and the previous deployment is demoted
 * by the cleanup strategy (KEEP when scaleDownPreviousDeployment is false).
 */
function planActivate(p: PromotionState, obs: Observations, now: number): Plan {
  const deployment = obs.deployment;
  if (!p.deploymentId || !deployment) return NOTHING;
  const effects: Effect[] = [
    {
      kind: "activate",
      deploymentId: deployment.id,
      message: `'${obs.environmentName}' now serves '${deployment.name}'`,
    },
  ];
  const demotion = demote(p, obs.previous ?? null, deployment.id);
  if (demotion.effect) effects.push(demotion.effect);
  const at = new Date(now);
  return move(
    {
      status: "SUCCEEDED",
      steps: withStep(
        p.steps,
        "ACTIVATE",
        "SUCCEEDED",
        at,
        `'${obs.environmentName}' serves '${deployment.name}'${demotion.note}`,
      ),
      percentTraffic: 100,
      canaryStage: p.canaryStages ? p.canaryStages : p.canaryStage,
      finishedAt: at,
      activeEnvironmentId: null,
    },
    {
      type: "PROMOTION_FINISHED",
      message: `promotion succeeded: '${obs.environmentName}' serves '${deployment.name}'`,
    },
    effects,
  );
}

/** The previous deployment keeps its ID and settings; it is scaled to zero, deactivated or kept. */
function demote(
  p: PromotionState,
  previous: DeploymentFacts | null,
  newId: string,
): { effect?: Effect; note: string } {
  if (!previous || previous.id === newId || previous.deleted) return { note: "" };
  const strategy = p.scaleDownPrevious ? p.settings.cleanupStrategy : "KEEP";
  if (strategy === "SCALE_TO_ZERO" && RUNNING_STATUSES.has(previous.status)) {
    return {
      effect: { kind: "demote", deploymentId: previous.id, to: "SCALED_TO_ZERO" },
      note: `; '${previous.name}' scaled to zero`,
    };
  }
  const serving = RUNNING_STATUSES.has(previous.status) || previous.status === "SCALED_TO_ZERO";
  if (strategy === "DEACTIVATE" && serving) {
    return {
      effect: { kind: "demote", deploymentId: previous.id, to: "DEACTIVATING" },
      note: `; '${previous.name}' deactivated`,
    };
  }
  return { note: `; '${previous.name}' kept running` };
}

// ---- Controls: a client's intent, folded in (as Argo Rollouts' pauseContext and abort) ----

export type Intent =
  | { kind: "pause" }
  | { kind: "resume" }
  | { kind: "rollForward" }
  | { kind: "cancel"; graceful: boolean }
  | { kind: "cancelCanary" };

/** A control refused: INVALID_STATE with this message. */
export interface Refusal {
  refused: string;
}

const ACTIVATE_BEGUN = "ACTIVATE has begun; the promotion can no longer be cancelled";

/** What a control does to an active promotion at `now` (API.md, Promotion controls and Ending early). */
export function planIntent(p: PromotionState, intent: Intent, now: number): Plan | Refusal {
  const at = new Date(now);
  switch (intent.kind) {
    case "pause": {
      if (p.status !== "RELEASING" && p.status !== "RAMPING_UP")
        return { refused: `a ${p.status} promotion cannot be paused` };
      // The stage's clock stops with the time it has spent (canary.ts spentInStage).
      const elapsed = spentInStage(
        {
          stage: p.canaryStage ?? 0,
          elapsedMs: p.stageElapsedMs,
          runningSince: p.stageStartedAt?.getTime() ?? null,
        },
        now,
      );
      return move(
        {
          status: "PAUSED",
          pausedFrom: p.status,
          pausedAt: at,
          stageElapsedMs: elapsed,
          stageStartedAt: null,
        },
        { type: "PROMOTION_STEP_CHANGED", message: "paused" },
      );
    }
    case "resume": {
      if (p.status !== "PAUSED") return { refused: `a ${p.status} promotion is not paused` };
      const back = p.pausedFrom ?? "RELEASING";
      // The stage goes on with the time it had left.
      return move(
        {
          status: back,
          pausedFrom: null,
          ...unpaused(p, now),
          stageStartedAt: back === "RAMPING_UP" ? at : null,
        },
        { type: "PROMOTION_STEP_CHANGED", message: `resumed (${back})` },
      );
    }
    case "rollForward": {
      if (p.status === "RAMPING_DOWN")
        return { refused: "a promotion ramping down cannot be rolled forward" };
      const back = p.status === "PAUSED" ? (p.pausedFrom ?? "RELEASING") : p.status;
      return move(
        {
          status: back,
          pausedFrom: null,
          ...unpaused(p, now),
          rollForward: true,
          stageStartedAt: back === "RAMPING_UP" ? at : p.stageStartedAt,
        },
        {
          type: "PROMOTION_STEP_CHANGED",
          message: "rolling forward: all traffic to the new deployment once it is ready",
        },
      );
    }
    case "cancel": {
      if (stepOf(p.steps, "ACTIVATE").status !== "PENDING") return { refused: ACTIVATE_BEGUN };
      if (intent.graceful && isRamping(p) && p.percentTraffic > 0) return gracefulCancel(p, now);
      return endPlan(p, "CANCELED", "canceled by request", now);
    }
    case "cancelCanary": {
      if (p.canaryStages === null)
        return { refused: "this promotion does not ramp traffic (no canary to cancel)" };
      if (stepOf(p.steps, "ACTIVATE").status !== "PENDING") return { refused: ACTIVATE_BEGUN };
      return endPlan(p, "CANCELED", "canary canceled by request", now);
    }
  }
}

/** Ramping up, or paused while ramping up. */
export function isRamping(p: Pick<PromotionState, "status" | "pausedFrom">): boolean {
  return p.status === "RAMPING_UP" || (p.status === "PAUSED" && p.pausedFrom === "RAMPING_UP");
}

/**
 * A graceful cancel: the traffic steps back down over the ramp time spent so
 * far, each step that time over the stage reached, fixed now.
 */
function gracefulCancel(p: PromotionState, now: number): Plan {
  const stage = p.canaryStage ?? 0;
  const spent = p.stageElapsedMs + (p.stageStartedAt ? now - p.stageStartedAt.getTime() : 0);
  const step = rampDownStepMs(stage, p.settings.rampUpDurationSeconds, Math.max(0, spent));
  return move(
    {
      status: "RAMPING_DOWN",
      pausedFrom: null,
      stageStartedAt: new Date(now),
      stageElapsedMs: 0,
      rampDownStepMs: Math.round(step),
    },
    { type: "PROMOTION_STEP_CHANGED", message: "ramping down before cancelling" },
  );
}

/** A pause ends: the progress deadline's clock gets back the time START_DEPLOYMENT spent paused. */
function unpaused(p: PromotionState, now: number): PromotionChange {
  if (p.status !== "PAUSED") return {};
  return { pausedAt: null, startPausedMs: p.startPausedMs + pausedDuringStart(p.steps, p.pausedAt, now) };
}

import { describe, expect, it } from "vitest";
import { FakeClock } from "../../src/domain/clock.ts";
import { initialSteps, stepOf, withStep } from "../../src/domain/promotion.ts";
import {
  applyChanges,
  type Intent,
  type Observations,
  type Plan,
  type PromotionState,
  planIntent,
  planPromotion,
  type Refusal,
} from "../../src/domain/promotion-plan.ts";
import { DEFAULT_PROMOTION_SETTINGS, type PromotionSettings } from "../../src/domain/promotion-settings.ts";
import type { DeploymentStatus } from "../../src/domain/status.ts";

const T0 = 1_000_000;

function promotion(
  over: Partial<PromotionState> = {},
  settings: Partial<PromotionSettings> = {},
): PromotionState {
  return {
    status: "RELEASING",
    steps: initialSteps(),
    settings: { ...DEFAULT_PROMOTION_SETTINGS, ...settings },
    deploymentId: null,
    createdDeployment: false,
    previousDeploymentId: "prev",
    scaleDownPrevious: true,
    percentTraffic: 0,
    canaryStage: null,
    canaryStages: null,
    stageStartedAt: null,
    stageElapsedMs: 0,
    pausedFrom: null,
    pausedAt: null,
    startPausedMs: 0,
    rollForward: false,
    rampDownStepMs: null,
    errorMessage: null,
    ...over,
  };
}

/** A canary promotion whose START_DEPLOYMENT has succeeded, waiting for the ramp. */
function readyToRamp(settings: Partial<PromotionSettings> = {}): PromotionState {
  let steps = withStep(initialSteps(), "CREATE_DEPLOYMENT", "SKIPPED", new Date(T0), "reusing 'd2'");
  steps = withStep(steps, "START_DEPLOYMENT", "RUNNING", new Date(T0));
  steps = withStep(steps, "START_DEPLOYMENT", "SUCCEEDED", new Date(T0));
  return promotion(
    { steps, deploymentId: "d2", canaryStage: 0, canaryStages: 10 },
    { rampUpWhilePromoting: true, rampUpDurationSeconds: 100, ...settings },
  );
}

function world(
  over: Partial<Observations> = {},
  status: DeploymentStatus = "ACTIVE",
  ready = 1,
): Observations {
  return {
    environmentName: "production",
    deployment: { id: "d2", name: "deployment-2", status, deleted: false, readyReplicas: ready },
    previous: { id: "prev", name: "deployment-1", status: "ACTIVE", deleted: false, minReplica: 0 },
    clockRunningHere: true,
    stageAnswers: { answered: 0, failed: 0 },
    ...over,
  };
}

function refused(result: Plan | Refusal): string | null {
  return "refused" in result ? result.refused : null;
}

function planned(result: Plan | Refusal): Plan {
  if ("refused" in result) throw new Error(`refused: ${result.refused}`);
  return result;
}

/** Plays the controller: plans and applies until the promotion waits; returns what happened. */
function drive(p: PromotionState, obs: Observations, clock: FakeClock) {
  const plans: Plan[] = [];
  let state = p;
  for (let i = 0; i < 20; i++) {
    const plan = planPromotion(state, obs, clock.now());
    state = applyChanges(state, plan.changes);
    if (plan.events.length === 0) break;
    plans.push(plan);
  }
  return { state, plans, messages: plans.flatMap((plan) => plan.events.map((e) => e.message)) };
}

describe("CREATE_DEPLOYMENT", () => {
  const source = {
    id: "src",
    name: "deployment-1",
    status: "ACTIVE" as const,
    deleted: false,
    kind: "PUBLISHED" as const,
    servesElsewhere: false,
  };

  it("reuses a published deployment (SKIPPED)", () => {
    const plan = planPromotion(promotion(), world({ source, copyName: "deployment-3" }), T0);
    expect(plan.changes?.deploymentId).toBe("src");
    expect(stepOf(plan.changes?.steps ?? [], "CREATE_DEPLOYMENT")).toMatchObject({
      status: "SKIPPED",
      message: "reusing 'deployment-1'",
    });
    expect(plan.effects).toEqual([]);
    expect(plan.events).toEqual([
      { type: "PROMOTION_STEP_CHANGED", message: "CREATE_DEPLOYMENT skipped: reusing 'deployment-1'" },
    ]);
    expect(plan.milestone).toBe("create-deployment");
  });

  it.each([
    [
      "the development deployment",
      { kind: "DEVELOPMENT" as const },
      {},
      "the development deployment is always copied",
    ],
    ["redeployOnPromotion", {}, { redeployOnPromotion: true }, "'production' redeploys on promotion"],
    ["one serving elsewhere", { servesElsewhere: true }, {}, "'deployment-1' serves another environment"],
  ])("copies %s", (_, sourceOver, settings, why) => {
    const plan = planPromotion(
      promotion({}, settings),
      world({ source: { ...source, ...sourceOver }, copyName: "deployment-3" }),
      T0,
    );
    expect(plan.changes?.createdDeployment).toBe(true);
    expect(plan.changes?.deploymentId).toBeUndefined(); // the copy's, set when it is created
    expect(stepOf(plan.changes?.steps ?? [], "CREATE_DEPLOYMENT")).toMatchObject({
      status: "SUCCEEDED",
      message: `created 'deployment-3': ${why}`,
    });
    expect(plan.effects).toEqual([
      {
        kind: "createCopy",
        name: "deployment-3",
        message: `deployment 'deployment-3' created from 'deployment-1' for 'production' (${why})`,
      },
    ]);
  });

  it("fails when the source was deleted", () => {
    const plan = planPromotion(promotion(), world({ source: { ...source, deleted: true } }), T0);
    expect(plan.changes).toMatchObject({
      status: "FAILED",
      errorMessage: "deployment 'deployment-1' was deleted",
    });
    expect(plan.effects).toEqual([{ kind: "release", outcome: "FAILED" }]);
  });
});

describe("START_DEPLOYMENT", () => {
  const created = () =>
    promotion({
      deploymentId: "d2",
      steps: withStep(initialSteps(), "CREATE_DEPLOYMENT", "SKIPPED", new Date(T0), "pushed"),
    });

  it("begins: the deployment runs with the promotion's settings and is woken from zero", () => {
    const plan = planPromotion(created(), world({}, "SCALED_TO_ZERO", 0), T0);
    expect(stepOf(plan.changes?.steps ?? [], "START_DEPLOYMENT")).toMatchObject({
      status: "RUNNING",
      startedAt: new Date(T0).toISOString(),
    });
    expect(plan.effects).toEqual([
      { kind: "runWithPromotionSettings", deploymentId: "d2" },
      { kind: "wake", deploymentId: "d2" },
    ]);
    expect(plan.events[0]?.message).toBe("START_DEPLOYMENT running: waiting for 'deployment-2' to be ready");
  });

  it("waits while the deployment builds, succeeds once it is ready", () => {
    const clock = new FakeClock(T0);
    const running = applyChanges(created(), planPromotion(created(), world({}, "BUILDING", 0), T0).changes);
    clock.advance(5_000);
    expect(planPromotion(running, world({}, "BUILDING", 0), clock.now()).events).toEqual([]);
    const done = planPromotion(running, world({}, "ACTIVE"), clock.now());
    expect(stepOf(done.changes?.steps ?? [], "START_DEPLOYMENT")).toMatchObject({
      status: "SUCCEEDED",
      message: "'deployment-2' is ready",
    });
  });

  it("wakes a deployment that went back to zero without moving", () => {
    const running = applyChanges(created(), planPromotion(created(), world(), T0).changes);
    const plan = planPromotion(running, world({}, "SCALED_TO_ZERO", 0), T0 + 1);
    expect(plan).toEqual({ changes: null, events: [], effects: [{ kind: "wake", deploymentId: "d2" }] });
  });

  it.each(["UNHEALTHY", "DEPLOY_FAILED", "FAILED"] as const)("fails when the deployment is %s", (status) => {
    const running = applyChanges(created(), planPromotion(created(), world(), T0).changes);
    const plan = planPromotion(running, world({}, status, 0), T0 + 1);
    expect(plan.changes).toMatchObject({
      status: "FAILED",
      errorMessage: `deployment 'deployment-2' is ${status}`,
      percentTraffic: 0,
      activeEnvironmentId: null,
    });
    expect(stepOf(plan.changes?.steps ?? [], "START_DEPLOYMENT").status).toBe("FAILED");
    expect(stepOf(plan.changes?.steps ?? [], "ACTIVATE").status).toBe("SKIPPED");
  });
});

describe("the progress deadline", () => {
  const started = () => {
    const p = promotion(
      {
        deploymentId: "d2",
        steps: withStep(initialSteps(), "CREATE_DEPLOYMENT", "SKIPPED", new Date(T0)),
      },
      { progressDeadlineSeconds: 10 },
    );
    return applyChanges(p, planPromotion(p, world({}, "BUILDING", 0), T0).changes);
  };

  it("fails START_DEPLOYMENT once it has run longer than progressDeadlineSeconds", () => {
    const p = started();
    expect(planPromotion(p, world({}, "BUILDING", 0), T0 + 10_000).events).toEqual([]);
    const plan = planPromotion(p, world({}, "BUILDING", 0), T0 + 10_001);
    expect(plan.changes?.errorMessage).toBe(
      "deployment 'deployment-2' was not ready within 10 s (progress deadline)",
    );
  });

  it("leaves out the time START_DEPLOYMENT spent paused", () => {
    const clock = new FakeClock(T0);
    let p = started();
    clock.advance(4_000);
    p = applyChanges(p, planned(planIntent(p, { kind: "pause" }, clock.now())).changes);
    clock.advance(60_000); // paused a minute: no deadline, no move
    expect(planPromotion(p, world({}, "BUILDING", 0), clock.now())).toMatchObject({ events: [] });
    p = applyChanges(p, planned(planIntent(p, { kind: "resume" }, clock.now())).changes);
    expect(p).toMatchObject({ status: "RELEASING", startPausedMs: 60_000, pausedAt: null });
    clock.advance(6_000); // 10 s of START_DEPLOYMENT unpaused
    expect(planPromotion(p, world({}, "BUILDING", 0), clock.now()).events).toEqual([]);
    clock.advance(1);
    expect(planPromotion(p, world({}, "BUILDING", 0), clock.now()).changes?.status).toBe("FAILED");
  });

  it("does not apply once the deployment is ready", () => {
    const plan = planPromotion(started(), world(), T0 + 3_600_000);
    expect(stepOf(plan.changes?.steps ?? [], "START_DEPLOYMENT").status).toBe("SUCCEEDED");
  });
});

describe("ACTIVATE", () => {
  const afterStart = (over: Partial<PromotionState> = {}, settings: Partial<PromotionSettings> = {}) => {
    let steps = withStep(initialSteps(), "CREATE_DEPLOYMENT", "SKIPPED", new Date(T0));
    steps = withStep(steps, "START_DEPLOYMENT", "SUCCEEDED", new Date(T0));
    return promotion({ steps, deploymentId: "d2", ...over }, settings);
  };

  it("begins, then switches the environment and demotes the previous deployment", () => {
    const { state, plans, messages } = drive(afterStart(), world(), new FakeClock(T0));
    expect(messages).toEqual(["ACTIVATE running", "promotion succeeded: 'production' serves 'deployment-2'"]);
    expect(plans[0]?.milestone).toBe("activate");
    expect(plans[1]?.effects).toEqual([
      { kind: "activate", deploymentId: "d2", message: "'production' now serves 'deployment-2'" },
      { kind: "demote", deploymentId: "prev", to: "SCALED_TO_ZERO" },
    ]);
    expect(state).toMatchObject({ status: "SUCCEEDED", percentTraffic: 100 });
    expect(stepOf(state.steps, "ACTIVATE").message).toBe(
      "'production' serves 'deployment-2'; 'deployment-1' scaled to zero",
    );
  });

  it.each([
    [{ cleanupStrategy: "DEACTIVATE" as const }, true, "DEACTIVATING", "; 'deployment-1' deactivated"],
    [{ cleanupStrategy: "KEEP" as const }, true, null, "; 'deployment-1' kept running"],
    [{}, false, null, "; 'deployment-1' kept running"],
  ])("demotes by %o (scaleDownPrevious %s)", (settings, scaleDownPrevious, to, note) => {
    const { plans, state } = drive(afterStart({ scaleDownPrevious }, settings), world(), new FakeClock(T0));
    const demote = plans[1]?.effects.find((e) => e.kind === "demote");
    expect(demote ? demote.to : null).toBe(to);
    expect(stepOf(state.steps, "ACTIVATE").message).toBe(`'production' serves 'deployment-2'${note}`);
  });

  it("has nothing to demote without a previous deployment", () => {
    const { plans, state } = drive(
      afterStart({ previousDeploymentId: null }),
      world({ previous: null }),
      new FakeClock(T0),
    );
    expect(plans[1]?.effects.map((e) => e.kind)).toEqual(["activate"]);
    expect(stepOf(state.steps, "ACTIVATE").message).toBe("'production' serves 'deployment-2'");
  });
});

describe("the canary ramp", () => {
  it("waits for as many ready replicas as the previous deployment's minReplica (at least one)", () => {
    const p = readyToRamp();
    expect(planPromotion(p, world({}, "ACTIVE", 0), T0).events).toEqual([]);
    const prev3 = {
      id: "prev",
      name: "deployment-1",
      status: "ACTIVE" as const,
      deleted: false,
      minReplica: 3,
    };
    expect(planPromotion(p, world({ previous: prev3 }, "ACTIVE", 2), T0).events).toEqual([]);
    const plan = planPromotion(p, world({ previous: prev3 }, "ACTIVE", 3), T0);
    expect(plan.changes).toMatchObject({ status: "RAMPING_UP", canaryStage: 1, percentTraffic: 10 });
    expect(plan.events[0]?.message).toBe("canary stage 1 of 10: 10% of traffic to 'deployment-2'");
    expect(plan.effects).toEqual([{ kind: "beginStage", stage: 1 }]);
  });

  it("begins stage k at (k-1)/10 of rampUpDurationSeconds, one stage per tick, then ACTIVATE", () => {
    const clock = new FakeClock(T0);
    let p = readyToRamp({ rampUpDurationSeconds: 100 });
    const began: Record<number, number> = {};
    const milestones: string[] = [];
    for (let t = 0; t <= 100_000 && p.status !== "SUCCEEDED"; t += 250) {
      const { state, plans } = drive(p, world(), clock);
      for (const plan of plans) {
        if (plan.changes?.canaryStage !== undefined && plan.events[0]?.type === "CANARY_STAGE_CHANGED")
          began[plan.changes.canaryStage ?? 0] = clock.now() - T0;
        if (plan.milestone) milestones.push(plan.milestone);
      }
      p = state;
      clock.advance(250);
    }
    expect(began).toEqual(Object.fromEntries(Array.from({ length: 10 }, (_, i) => [i + 1, i * 10_000])));
    expect(p.status).toBe("SUCCEEDED");
    expect(p.canaryStage).toBe(10);
    expect(milestones).toEqual([...Array.from({ length: 9 }, (_, i) => `canary-stage-${i + 2}`), "activate"]);
  });

  it("enters every stage in order even when a tick comes late", () => {
    const clock = new FakeClock(T0);
    let p = drive(readyToRamp({ rampUpDurationSeconds: 10 }), world(), clock).state;
    clock.advance(60_000);
    const { state, messages } = drive(p, world(), clock);
    p = state;
    expect(messages.slice(0, 9)).toEqual(
      Array.from(
        { length: 9 },
        (_, i) => `canary stage ${i + 2} of 10: ${(i + 2) * 10}% of traffic to 'deployment-2'`,
      ),
    );
    expect(p.status).toBe("SUCCEEDED");
  });

  it("checkpoints the stage's time on every tick without a move", () => {
    const clock = new FakeClock(T0);
    const p = drive(readyToRamp(), world(), clock).state;
    clock.advance(3_000);
    const plan = planPromotion(p, world(), clock.now());
    expect(plan.events).toEqual([]);
    expect(plan.changes).toEqual({ stageElapsedMs: 3_000, stageStartedAt: new Date(clock.now()) });
  });

  it("after a restart resumes the stage from its checkpoint: the time Hangar was down does not count", () => {
    const clock = new FakeClock(T0);
    let p = drive(readyToRamp(), world(), clock).state; // stage 1 of a 100 s ramp: 10 s each
    clock.advance(4_000);
    p = applyChanges(p, planPromotion(p, world(), clock.now()).changes); // checkpoint: 4 s spent
    clock.advance(120_000); // down for two minutes
    const fresh = world({ clockRunningHere: false });
    const first = planPromotion(p, fresh, clock.now());
    expect(first.events).toEqual([]);
    expect(first.changes).toEqual({ stageElapsedMs: 4_000, stageStartedAt: new Date(clock.now()) });
    p = applyChanges(p, first.changes);
    clock.advance(5_999);
    expect(planPromotion(p, world(), clock.now()).events).toEqual([]);
    clock.advance(1);
    expect(planPromotion(p, world(), clock.now()).changes?.canaryStage).toBe(2);
  });

  it("pauses and resumes with the time the stage had left, the split unchanged", () => {
    const clock = new FakeClock(T0);
    let p = drive(readyToRamp(), world(), clock).state;
    clock.advance(10_000);
    p = drive(p, world(), clock).state; // stage 2
    clock.advance(7_000);
    const pause = planned(planIntent(p, { kind: "pause" }, clock.now()));
    expect(pause.events[0]?.message).toBe("paused");
    p = applyChanges(p, pause.changes);
    expect(p).toMatchObject({
      status: "PAUSED",
      pausedFrom: "RAMPING_UP",
      stageElapsedMs: 7_000,
      percentTraffic: 20,
    });
    clock.advance(3_600_000);
    expect(planPromotion(p, world(), clock.now())).toMatchObject({ changes: null, events: [] });
    const resume = planned(planIntent(p, { kind: "resume" }, clock.now()));
    expect(resume.events[0]?.message).toBe("resumed (RAMPING_UP)");
    p = applyChanges(p, resume.changes);
    expect(p).toMatchObject({ status: "RAMPING_UP", canaryStage: 2, percentTraffic: 20 });
    clock.advance(2_999);
    p = drive(p, world(), clock).state;
    expect(p.canaryStage).toBe(2);
    clock.advance(1);
    expect(drive(p, world(), clock).state.canaryStage).toBe(3);
  });

  it("rolls forward: ACTIVATE at once, skipping the rest of the ramp", () => {
    const clock = new FakeClock(T0);
    let p = drive(readyToRamp(), world(), clock).state;
    clock.advance(1_000);
    p = applyChanges(p, planned(planIntent(p, { kind: "rollForward" }, clock.now())).changes);
    const { state, messages } = drive(p, world(), clock);
    expect(messages).toEqual(["ACTIVATE running", "promotion succeeded: 'production' serves 'deployment-2'"]);
    expect(state).toMatchObject({ status: "SUCCEEDED", percentTraffic: 100, canaryStage: 10 });
  });

  it("rolls forward from a pause during START_DEPLOYMENT: all traffic once ready, no ramp", () => {
    let steps = withStep(initialSteps(), "CREATE_DEPLOYMENT", "SKIPPED", new Date(T0));
    steps = withStep(steps, "START_DEPLOYMENT", "RUNNING", new Date(T0));
    let p = promotion(
      { steps, deploymentId: "d2", canaryStage: 0, canaryStages: 10 },
      { rampUpWhilePromoting: true },
    );
    p = applyChanges(p, planned(planIntent(p, { kind: "pause" }, T0 + 1_000)).changes);
    const forward = planned(planIntent(p, { kind: "rollForward" }, T0 + 5_000));
    expect(forward.events[0]?.message).toBe(
      "rolling forward: all traffic to the new deployment once it is ready",
    );
    p = applyChanges(p, forward.changes);
    expect(p).toMatchObject({ status: "RELEASING", rollForward: true, startPausedMs: 4_000 });
    const clock = new FakeClock(T0 + 5_000);
    expect(drive(p, world({}, "BUILDING", 0), clock).messages).toEqual([]);
    const { state, messages } = drive(p, world(), clock);
    expect(messages).toEqual([
      "START_DEPLOYMENT succeeded: 'deployment-2' is ready",
      "ACTIVATE running",
      "promotion succeeded: 'production' serves 'deployment-2'",
    ]);
    expect(state.status).toBe("SUCCEEDED");
  });
});

describe("ending early", () => {
  /** A 100 s ramp at stage `stage`, `into` ms into it. */
  function rampingAt(stage: number, into: number, clock: FakeClock) {
    let p = drive(readyToRamp(), world(), clock).state;
    while ((p.canaryStage ?? 0) < stage) {
      clock.advance(10_000);
      p = drive(p, world(), clock).state;
    }
    clock.advance(into);
    return p;
  }

  it("cancels at once: all traffic back, the running step SKIPPED", () => {
    const clock = new FakeClock(T0);
    const p = rampingAt(3, 0, clock);
    const plan = planned(planIntent(p, { kind: "cancel", graceful: false }, clock.now()));
    expect(plan.changes).toMatchObject({ status: "CANCELED", percentTraffic: 0, activeEnvironmentId: null });
    expect(plan.events[0]?.message).toBe("promotion canceled: canceled by request");
    expect(plan.effects).toEqual([{ kind: "release", outcome: "CANCELED" }]);
    expect(planned(planIntent(p, { kind: "cancelCanary" }, clock.now())).events[0]?.message).toBe(
      "promotion canceled: canary canceled by request",
    );
  });

  it("ramps down gracefully over the time ramped so far, one stage per step, then CANCELED", () => {
    const clock = new FakeClock(T0);
    let p = rampingAt(4, 5_000, clock); // 35 s ramped: 4 steps of 8.75 s
    const cancel = planned(planIntent(p, { kind: "cancel", graceful: true }, clock.now()));
    expect(cancel.events[0]?.message).toBe("ramping down before cancelling");
    p = applyChanges(p, cancel.changes);
    expect(p).toMatchObject({ status: "RAMPING_DOWN", rampDownStepMs: 8_750, percentTraffic: 40 });
    const t0 = clock.now();
    const down: [number, number][] = [];
    while (p.status === "RAMPING_DOWN") {
      clock.advance(250);
      const { state } = drive(p, world(), clock);
      if (state.percentTraffic !== p.percentTraffic) down.push([clock.now() - t0, state.percentTraffic]);
      p = state;
    }
    expect(down).toEqual([
      [8_750, 30],
      [17_500, 20],
      [26_250, 10],
      [35_000, 0],
    ]);
    expect(p.status).toBe("CANCELED");
  });

  it("keeps the ramp-down step fixed when asked, paused or not, and refuses to roll it forward", () => {
    const clock = new FakeClock(T0);
    let p = rampingAt(2, 4_000, clock); // 14 s ramped over 2 stages
    p = applyChanges(p, planned(planIntent(p, { kind: "pause" }, clock.now())).changes);
    clock.advance(600_000); // a long pause does not add to the way down
    p = applyChanges(p, planned(planIntent(p, { kind: "cancel", graceful: true }, clock.now())).changes);
    expect(p.rampDownStepMs).toBe(7_000);
    expect(refused(planIntent(p, { kind: "rollForward" }, clock.now()))).toBe(
      "a promotion ramping down cannot be rolled forward",
    );
    // A roll forward asked before the cancel does not skip the way down.
    expect(
      planPromotion({ ...p, rollForward: true }, world(), clock.now() + 7_000).changes?.percentTraffic,
    ).toBe(10);
  });

  it("cancels a promotion that is not ramping at once, even when graceful", () => {
    const p = promotion();
    expect(planned(planIntent(p, { kind: "cancel", graceful: true }, T0)).changes?.status).toBe("CANCELED");
    expect(refused(planIntent(p, { kind: "cancelCanary" }, T0))).toBe(
      "this promotion does not ramp traffic (no canary to cancel)",
    );
  });

  it("cannot cancel once ACTIVATE has begun", () => {
    const p = readyToRamp();
    const activating = { ...p, steps: withStep(p.steps, "ACTIVATE", "RUNNING", new Date(T0)) };
    const begun = "ACTIVATE has begun; the promotion can no longer be cancelled";
    expect(refused(planIntent(activating, { kind: "cancel", graceful: false }, T0))).toBe(begun);
    expect(refused(planIntent(activating, { kind: "cancelCanary" }, T0))).toBe(begun);
  });

  it.each([
    [{ kind: "pause" }, { status: "PAUSED" }, "a PAUSED promotion cannot be paused"],
    [{ kind: "pause" }, { status: "RAMPING_DOWN" }, "a RAMPING_DOWN promotion cannot be paused"],
    [{ kind: "resume" }, { status: "RAMPING_UP" }, "a RAMPING_UP promotion is not paused"],
  ] as [Intent, Partial<PromotionState>, string][])("refuses %o in %o", (intent, over, message) => {
    expect(refused(planIntent(promotion(over), intent, T0))).toBe(message);
  });
});

describe("automatic rollback", () => {
  it("when the deployment breaks during the ramp", () => {
    const clock = new FakeClock(T0);
    const p = drive(readyToRamp(), world(), clock).state;
    const plan = planPromotion(p, world({}, "UNHEALTHY"), clock.now());
    expect(plan.changes).toMatchObject({
      status: "FAILED",
      percentTraffic: 0,
      errorMessage: "deployment 'deployment-2' became UNHEALTHY during the ramp (stage 1)",
    });
    expect(stepOf(plan.changes?.steps ?? [], "ACTIVATE").status).toBe("SKIPPED");
    expect(plan.effects).toEqual([{ kind: "release", outcome: "FAILED" }]);
  });

  it("when a stage's error rate exceeds the threshold (early with enough answers, else at the stage's end)", () => {
    const clock = new FakeClock(T0);
    let p = drive(readyToRamp({ errorRateThresholdPercent: 10 }), world(), clock).state;
    clock.advance(1_000);
    // 2 of 5 failed: not yet a rate before the stage is over.
    expect(planPromotion(p, world({ stageAnswers: { answered: 5, failed: 2 } }), clock.now()).events).toEqual(
      [],
    );
    // 10 of 100 is at the threshold, not over it.
    p = applyChanges(
      p,
      planPromotion(p, world({ stageAnswers: { answered: 100, failed: 10 } }), clock.now()).changes,
    );
    expect(p.status).toBe("RAMPING_UP");
    const breach = planPromotion(p, world({ stageAnswers: { answered: 40, failed: 5 } }), clock.now());
    expect(breach.changes).toMatchObject({
      status: "FAILED",
      percentTraffic: 0,
      errorMessage:
        "canary stage 1 (10% of traffic): 12.5% of the new deployment's requests failed (5 of 40), " +
        "over the 10% threshold; all traffic is back on the previous deployment",
    });
    clock.advance(9_000); // the stage is over: a few answers are judged
    expect(
      planPromotion(p, world({ stageAnswers: { answered: 3, failed: 1 } }), clock.now()).changes?.status,
    ).toBe("FAILED");
  });

  it("not on no evidence: a stage over with no answer yet and requests to the new deployment under way is held", () => {
    const clock = new FakeClock(T0);
    const p = drive(readyToRamp({ errorRateThresholdPercent: 10 }), world(), clock).state;
    clock.advance(60_000); // stage 1 (10 s) is long over
    const pending = { answered: 0, failed: 0, inFlight: 3 };
    const held = planPromotion(p, world({ stageAnswers: pending }), clock.now());
    expect(held.events).toEqual([]);
    // Its clock stays at the stage's end: no overrun is carried into stage 2.
    expect(held.changes).toEqual({ stageElapsedMs: 10_000, stageStartedAt: new Date(clock.now()) });
    // The answers come: judged on them.
    const answered = { answered: 3, failed: 3, inFlight: 0 };
    expect(planPromotion(p, world({ stageAnswers: answered }), clock.now()).changes?.status).toBe("FAILED");
    // Nothing under way: the stage passes as before.
    const idle = { answered: 0, failed: 0, inFlight: 0 };
    expect(planPromotion(p, world({ stageAnswers: idle }), clock.now()).changes).toMatchObject({
      canaryStage: 2,
    });
  });

  it("never on the error rate without a threshold", () => {
    const clock = new FakeClock(T0);
    const p = drive(readyToRamp(), world(), clock).state;
    clock.advance(1_000);
    expect(
      planPromotion(p, world({ stageAnswers: { answered: 100, failed: 100 } }), clock.now()).events,
    ).toEqual([]);
  });
});

describe("what does not move", () => {
  it("a paused or ended promotion", () => {
    for (const status of ["PAUSED", "SUCCEEDED", "FAILED", "CANCELED"] as const) {
      expect(planPromotion(promotion({ status }), world(), T0)).toEqual({
        changes: null,
        events: [],
        effects: [],
      });
    }
  });

  it("a promotion whose deployment is gone from view", () => {
    expect(planPromotion(readyToRamp(), world({ deployment: null }), T0).events).toEqual([]);
  });
});

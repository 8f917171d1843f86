import { parseAutoscaling } from "../domain/autoscaling.ts";
import {
  CANARY_STAGES,
  errorRateBreached,
  failurePercent,
  rampDownStepMs,
  type StageOutcome,
  spentInStage,
  stagePercent,
  tickRamp,
} from "../domain/canary.ts";
import {
  isActive,
  type PromotionStatus,
  parseSteps,
  progressDeadlinePassed,
  stepOf,
  withStep,
} from "../domain/promotion.ts";
import { parsePromotionSettings } from "../domain/promotion-settings.ts";
import { BROKEN_STATUSES, READY_STATUSES, RUNNING_STATUSES } from "../domain/status.ts";
import type { Change } from "../events/bus.ts";
import { appendEvent } from "../events/log.ts";
import { failpoint } from "../failpoints.ts";
import { Prisma, type Promotion } from "../generated/prisma/client.ts";
import type { AnswerCounts } from "../metrics/traffic.ts";
import type { ServiceContext } from "../services/context.ts";
import { insertDeployment, nextDeploymentName, setStatus, writeAutoscaling } from "../store/deployments.ts";
import {
  endPromotion,
  lockPromotion,
  promotionAutoscalingFor,
  recordPromotion,
  servesElsewhere,
} from "../store/promotions.ts";
import { claimable, leasedTo, RELEASED } from "./leases.ts";
import { KeyedSerializer } from "./serial.ts";

/** What the gateway counted of a deployment's answers (the canary's error rate). */
export interface AnswerSource {
  answerCounts(deploymentId: string): AnswerCounts;
}

/** Passes the named failpoint once a move has committed (crash tests). */
const after = (name: string) => (moved: boolean) => {
  if (moved) failpoint(name);
  return moved;
};

/** Starts a scaled-to-zero deployment (the deployment controller). */
export interface DeploymentWaker {
  wake(deploymentId: string): Promise<void>;
}

/**
 * Drives promotions through CREATE_DEPLOYMENT, START_DEPLOYMENT and ACTIVATE.
 * Every move is one transaction that re-reads the locked promotion row, writes
 * the new state and its event: after a crash the next owner of the lease
 * resumes from exactly what was committed, and repeating a step is harmless.
 */
export class PromotionController {
  private readonly serial = new KeyedSerializer();
  /** Ramping promotions whose stage clock runs in this process (see ramp()). */
  private readonly rampingHere = new Set<string>();
  /** Per ramping promotion: the new deployment's answer counts when its current stage began here. */
  private readonly stageBaselines = new Map<string, { stage: number; counts: AnswerCounts }>();
  private timer: NodeJS.Timeout | null = null;
  private unsubscribe: (() => void) | null = null;
  private stopping = false;

  constructor(
    private readonly ctx: ServiceContext,
    private readonly owner: string,
    private readonly waker: DeploymentWaker,
    private readonly answers: AnswerSource,
    private readonly intervalMs = 250,
  ) {}

  async start(): Promise<void> {
    this.unsubscribe = this.ctx.bus.on((change) => this.onChange(change));
    await this.tick();
    this.timer = setInterval(() => void this.tick(), this.intervalMs);
  }

  async stop(): Promise<void> {
    this.stopping = true;
    if (this.timer) clearInterval(this.timer);
    this.unsubscribe?.();
    await this.serial.idle();
    await this.ctx.db.prisma.promotion.updateMany({
      where: { leaseOwner: this.owner },
      data: RELEASED,
    });
  }

  /** The time, from the context's clock (a fake one in tests). */
  private now(): Date {
    return new Date(this.ctx.clock.now());
  }

  private onError = (error: unknown) => {
    if (!this.stopping) this.ctx.log.error({ err: error }, "promotion controller error");
  };

  private onChange(change: Change): void {
    if (change.kind !== "event") return;
    if (change.promotionId) {
      void this.advance(change.promotionId);
    } else if (change.deploymentId) {
      void this.ctx.db.prisma.promotion
        .findMany({
          where: { deploymentId: change.deploymentId, activeEnvironmentId: { not: null } },
          select: { id: true },
        })
        .then((rows) => rows.map((row) => this.advance(row.id)), this.onError);
    }
  }

  private async tick(): Promise<void> {
    if (this.stopping) return;
    try {
      const active = await this.ctx.db.prisma.promotion.findMany({
        where: { activeEnvironmentId: { not: null } },
        select: { id: true },
      });
      await Promise.all(active.map((row) => this.advance(row.id)));
      this.forgetEnded(new Set(active.map((row) => row.id)));
    } catch (error) {
      this.onError(error);
    }
  }

  /** Drops what this process remembered of promotions that have ended. */
  private forgetEnded(active: ReadonlySet<string>): void {
    for (const id of this.rampingHere) if (!active.has(id)) this.rampingHere.delete(id);
    for (const id of this.stageBaselines.keys()) if (!active.has(id)) this.stageBaselines.delete(id);
  }

  advance(id: string): Promise<void> {
    return this.serial.run(
      id,
      async () => {
        // Each pass makes at most one move; keep going while moves happen.
        for (let moves = 0; moves < 10 && !this.stopping; moves++) {
          if (!(await this.step(id))) return;
        }
      },
      this.onError,
    );
  }

  private async claim(promotion: Promotion): Promise<boolean> {
    const now = this.now();
    const { count } = await this.ctx.db.prisma.promotion.updateMany({
      where: {
        id: promotion.id,
        ...claimable(this.owner, now),
      },
      data: leasedTo(this.owner, now),
    });
    return count === 1;
  }

  /** Makes one move of the promotion's state machine; false when there is nothing to do now. */
  private async step(id: string): Promise<boolean> {
    const promotion = await this.ctx.db.prisma.promotion.findUnique({ where: { id } });
    if (!promotion || !isActive(promotion.status as PromotionStatus) || promotion.status === "PAUSED")
      return false;
    if (!(await this.claim(promotion))) return false;
    const steps = parseSteps(promotion.steps);
    const create = stepOf(steps, "CREATE_DEPLOYMENT");
    const start = stepOf(steps, "START_DEPLOYMENT");
    const activate = stepOf(steps, "ACTIVATE");
    if (create.status === "PENDING" || create.status === "RUNNING") {
      return this.createDeployment(id).then(after("promotion:create-deployment"));
    }
    if (start.status === "PENDING") return this.beginStart(id).then(after("promotion:start-deployment"));
    if (start.status === "RUNNING") return this.checkStart(promotion);
    if (activate.status === "PENDING") {
      if (promotion.canaryStages !== null && !promotion.rollForward) {
        const ramp = await this.ramp(promotion);
        if (ramp !== "done") return ramp === "moved";
      }
      return this.beginActivate(id).then(after("promotion:activate"));
    }
    if (activate.status === "RUNNING") return this.activate(id);
    return false;
  }

  /** Runs `move` on the locked promotion if it is still active and not paused. */
  private async locked(id: string, move: (tx: Prisma.TransactionClient, p: Promotion) => Promise<boolean>) {
    return this.ctx.db.prisma.$transaction(async (tx) => {
      const promotion = await lockPromotion(tx, id);
      if (!promotion || !isActive(promotion.status as PromotionStatus) || promotion.status === "PAUSED")
        return false;
      return move(tx, promotion);
    });
  }

  /** CREATE_DEPLOYMENT: a new deployment (from development, a copy), or the source reused (SKIPPED). */
  private createDeployment(id: string): Promise<boolean> {
    return this.locked(id, async (tx, promotion) => {
      const steps = parseSteps(promotion.steps);
      if (stepOf(steps, "CREATE_DEPLOYMENT").status !== "PENDING") return false;
      const now = this.now();
      const source = await tx.deployment.findUniqueOrThrow({ where: { id: promotion.sourceDeploymentId } });
      const environment = await tx.environment.findUniqueOrThrow({ where: { id: promotion.environmentId } });
      if (source.deletedAt) {
        await endPromotion(tx, promotion, "FAILED", `deployment '${source.name}' was deleted`, this.now());
        return true;
      }
      const settings = parsePromotionSettings(promotion.settings);
      const why =
        source.kind === "DEVELOPMENT"
          ? "the development deployment is always copied"
          : settings.redeployOnPromotion
            ? `'${environment.name}' redeploys on promotion`
            : (await servesElsewhere(tx, source.id, environment.id))
              ? `'${source.name}' serves another environment`
              : null;
      if (!why) {
        await recordPromotion(
          tx,
          promotion,
          {
            deploymentId: source.id,
            steps: withStep(steps, "CREATE_DEPLOYMENT", "SKIPPED", now, `reusing '${source.name}'`),
          },
          "PROMOTION_STEP_CHANGED",
          `CREATE_DEPLOYMENT skipped: reusing '${source.name}'`,
        );
        return true;
      }
      // The copy and the step's result commit together: a crash cannot leave a copy without its promotion knowing.
      const name = await nextDeploymentName(tx, source.modelId);
      const copy = await insertDeployment(tx, {
        modelId: source.modelId,
        name,
        kind: "PUBLISHED",
        artifactHash: source.artifactHash,
        environmentName: environment.name,
        promotionId: promotion.id,
        message: `deployment '${name}' created from '${source.name}' for '${environment.name}' (${why})`,
      });
      let running = withStep(steps, "CREATE_DEPLOYMENT", "RUNNING", now);
      running = withStep(running, "CREATE_DEPLOYMENT", "SUCCEEDED", now, `created '${name}': ${why}`);
      await recordPromotion(
        tx,
        promotion,
        { deploymentId: copy.id, createdDeployment: true, steps: running },
        "PROMOTION_STEP_CHANGED",
        `CREATE_DEPLOYMENT succeeded: created '${name}'`,
      );
      return true;
    });
  }

  /** START_DEPLOYMENT begins: the deployment runs with the promotion's settings and is woken if asleep. */
  private async beginStart(id: string): Promise<boolean> {
    let wake: string | null = null;
    const moved = await this.locked(id, async (tx, promotion) => {
      const steps = parseSteps(promotion.steps);
      if (stepOf(steps, "START_DEPLOYMENT").status !== "PENDING" || !promotion.deploymentId) return false;
      const deployment = await tx.deployment.findUniqueOrThrow({ where: { id: promotion.deploymentId } });
      const override = await promotionAutoscalingFor(tx, promotion, promotion.createdDeployment);
      await tx.deployment.update({
        where: { id: deployment.id },
        data: { promotionAutoscaling: override ?? Prisma.DbNull },
      });
      if (deployment.status === "SCALED_TO_ZERO") wake = deployment.id;
      await recordPromotion(
        tx,
        promotion,
        { steps: withStep(steps, "START_DEPLOYMENT", "RUNNING", this.now()) },
        "PROMOTION_STEP_CHANGED",
        `START_DEPLOYMENT running: waiting for '${deployment.name}' to be ready`,
      );
      return true;
    });
    if (wake) await this.waker.wake(wake);
    return moved;
  }

  /** START_DEPLOYMENT: done once the deployment has a ready replica; failed when it breaks or misses the deadline. */
  private async checkStart(promotion: Promotion): Promise<boolean> {
    const { prisma } = this.ctx.db;
    const deployment = promotion.deploymentId
      ? await prisma.deployment.findUnique({ where: { id: promotion.deploymentId } })
      : null;
    if (!deployment) return false;
    const settings = parsePromotionSettings(promotion.settings);
    if (deployment.status === "SCALED_TO_ZERO") {
      await this.waker.wake(deployment.id);
      return false;
    }
    const ready = READY_STATUSES.has(deployment.status);
    const failure = BROKEN_STATUSES.has(deployment.status)
      ? `deployment '${deployment.name}' is ${deployment.status}`
      : !ready &&
          progressDeadlinePassed(
            parseSteps(promotion.steps),
            promotion.startPausedMs,
            this.ctx.clock.now(),
            settings.progressDeadlineSeconds,
          )
        ? `deployment '${deployment.name}' was not ready within ${settings.progressDeadlineSeconds} s (progress deadline)`
        : null;
    if (!ready && !failure) return false;
    return this.locked(promotion.id, async (tx, current) => {
      const steps = parseSteps(current.steps);
      if (stepOf(steps, "START_DEPLOYMENT").status !== "RUNNING") return false;
      if (failure) {
        await endPromotion(tx, current, "FAILED", failure, this.now());
        return true;
      }
      await recordPromotion(
        tx,
        current,
        {
          steps: withStep(
            steps,
            "START_DEPLOYMENT",
            "SUCCEEDED",
            this.now(),
            `'${deployment.name}' is ready`,
          ),
        },
        "PROMOTION_STEP_CHANGED",
        `START_DEPLOYMENT succeeded: '${deployment.name}' is ready`,
      );
      return true;
    });
  }

  /**
   * The canary ramp between START_DEPLOYMENT and ACTIVATE: starts once the new
   * deployment has as many ready replicas as the previous one's minReplica,
   * then moves one stage at a time on ramp time (domain/canary.ts), which
   * checkpoints to the row so a restart resumes the stage with the time it
   * had left. A graceful cancel steps back down the same way.
   */
  private async ramp(promotion: Promotion): Promise<"moved" | "waiting" | "done"> {
    const { prisma } = this.ctx.db;
    const deployment = promotion.deploymentId
      ? await prisma.deployment.findUnique({ where: { id: promotion.deploymentId } })
      : null;
    if (!deployment) return "waiting";
    const settings = parsePromotionSettings(promotion.settings);
    const now = this.ctx.clock.now();
    if (BROKEN_STATUSES.has(deployment.status)) {
      const moved = await this.locked(promotion.id, async (tx, current) => {
        await endPromotion(
          tx,
          current,
          "FAILED",
          `deployment '${deployment.name}' became ${deployment.status} during the ramp (stage ${current.canaryStage ?? 0})`,
          this.now(),
        );
        return true;
      });
      return moved ? "moved" : "waiting";
    }
    if ((promotion.canaryStage ?? 0) === 0) {
      const previous = promotion.previousDeploymentId
        ? await prisma.deployment.findUnique({ where: { id: promotion.previousDeploymentId } })
        : null;
      const needed = Math.max(1, previous ? parseAutoscaling(previous.autoscaling).minReplica : 1);
      const ready = await prisma.replica.count({ where: { deploymentId: deployment.id, state: "READY" } });
      if (ready < needed) return "waiting";
      const moved = await this.locked(promotion.id, async (tx, current) => {
        if ((current.canaryStage ?? 0) !== 0) return false;
        await recordPromotion(
          tx,
          current,
          {
            status: "RAMPING_UP",
            canaryStage: 1,
            percentTraffic: stagePercent(1),
            stageStartedAt: new Date(now),
            stageElapsedMs: 0,
          },
          "CANARY_STAGE_CHANGED",
          `canary stage 1 of ${CANARY_STAGES}: ${stagePercent(1)}% of traffic to '${deployment.name}'`,
        );
        return true;
      });
      if (moved) {
        this.rampingHere.add(promotion.id);
        this.beginStage(promotion.id, deployment.id, 1);
      }
      return moved ? "moved" : "waiting";
    }
    if (promotion.status === "RAMPING_DOWN")
      return this.rampDown(promotion, settings.rampUpDurationSeconds, now);
    // Time while Hangar was down does not count: a stage first seen here restarts its clock now.
    const runningSince = this.rampingHere.has(promotion.id)
      ? (promotion.stageStartedAt?.getTime() ?? now)
      : now;
    this.rampingHere.add(promotion.id);
    const clock = { stage: promotion.canaryStage ?? 1, elapsedMs: promotion.stageElapsedMs, runningSince };
    const result = tickRamp(clock, now, settings.rampUpDurationSeconds);
    const outcome = this.stageOutcome(promotion.id, deployment.id, clock.stage);
    const stageOver = result.activate || result.changed;
    if (errorRateBreached(outcome, settings.errorRateThresholdPercent, stageOver)) {
      return this.rollBack(promotion.id, clock.stage, outcome, settings.errorRateThresholdPercent ?? 0);
    }
    if (result.activate) return "done";
    const moved = await this.locked(promotion.id, async (tx, current) => {
      if (current.status !== "RAMPING_UP" || current.canaryStage !== clock.stage) return false;
      if (!result.changed) {
        // Checkpoint: the ramp time spent so far survives a crash.
        await tx.promotion.update({
          where: { id: current.id },
          data: { stageElapsedMs: Math.round(spentInStage(clock, now)), stageStartedAt: new Date(now) },
        });
        return false;
      }
      const stage = result.clock.stage;
      await recordPromotion(
        tx,
        current,
        {
          canaryStage: stage,
          percentTraffic: stagePercent(stage),
          stageStartedAt: new Date(now),
          stageElapsedMs: Math.round(result.clock.elapsedMs),
        },
        "CANARY_STAGE_CHANGED",
        `canary stage ${stage} of ${CANARY_STAGES}: ${stagePercent(stage)}% of traffic to '${deployment.name}'`,
      );
      return true;
    });
    if (moved) {
      this.beginStage(promotion.id, deployment.id, result.clock.stage);
      failpoint(`promotion:canary-stage-${result.clock.stage}`);
    }
    return moved ? "moved" : "waiting";
  }

  /** A stage has just begun: the new deployment's answers from here on are the stage's. */
  private beginStage(promotionId: string, deploymentId: string, stage: number): void {
    this.stageBaselines.set(promotionId, { stage, counts: this.answers.answerCounts(deploymentId) });
  }

  /**
   * What the new deployment answered in the current stage, counted by this
   * process's gateway from when the stage began (a stage this process did not
   * begin, as after a restart, counts from when it first sees it: the counts
   * before that are gone).
   */
  private stageOutcome(promotionId: string, deploymentId: string, stage: number): StageOutcome {
    const baseline = this.stageBaselines.get(promotionId);
    if (baseline?.stage !== stage) {
      this.beginStage(promotionId, deploymentId, stage);
      return { answered: 0, failed: 0 };
    }
    const counts = this.answers.answerCounts(deploymentId);
    return {
      answered: counts.answered - baseline.counts.answered,
      failed: counts.failed - baseline.counts.failed,
    };
  }

  /** Automatic rollback: the stage's error rate broke the threshold; all traffic goes back. */
  private async rollBack(
    id: string,
    stage: number,
    outcome: StageOutcome,
    thresholdPercent: number,
  ): Promise<"moved" | "waiting"> {
    const rate = failurePercent(outcome).toFixed(1);
    const message =
      `canary stage ${stage} (${stagePercent(stage)}% of traffic): ${rate}% of the new deployment's ` +
      `requests failed (${outcome.failed} of ${outcome.answered}), over the ${thresholdPercent}% ` +
      "threshold; all traffic is back on the previous deployment";
    const moved = await this.locked(id, async (tx, current) => {
      if (current.status !== "RAMPING_UP" || current.canaryStage !== stage) return false;
      await endPromotion(tx, current, "FAILED", message, this.now());
      return true;
    });
    if (moved) this.stageBaselines.delete(id);
    return moved ? "moved" : "waiting";
  }

  /**
   * RAMPING_DOWN: one stage back per step, each step the ramp time spent when
   * the cancel came over the stage it had reached (fixed by the cancel); at
   * zero, CANCELED. So the way down takes as long as the way up had.
   */
  private async rampDown(promotion: Promotion, durationS: number, now: number): Promise<"moved" | "waiting"> {
    const stage = promotion.canaryStage ?? 0;
    const startedAt = promotion.stageStartedAt?.getTime() ?? now;
    // Promotions that began ramping down before the step was stored: the stage's start over the stage.
    const step = promotion.rampDownStepMs ?? rampDownStepMs(stage, durationS, 0);
    if (stage > 0 && now - startedAt < step) return "waiting";
    const moved = await this.locked(promotion.id, async (tx, current) => {
      if (current.status !== "RAMPING_DOWN" || current.canaryStage !== stage) return false;
      if (stage <= 1) {
        await endPromotion(
          tx,
          { ...current, canaryStage: 0 },
          "CANCELED",
          "canceled after ramping down",
          this.now(),
        );
        return true;
      }
      await recordPromotion(
        tx,
        current,
        { canaryStage: stage - 1, percentTraffic: stagePercent(stage - 1), stageStartedAt: new Date(now) },
        "CANARY_STAGE_CHANGED",
        `ramping down: stage ${stage - 1}, ${stagePercent(stage - 1)}% of traffic to the new deployment`,
      );
      return true;
    });
    return moved ? "moved" : "waiting";
  }

  /** ACTIVATE begins: from here the promotion can no longer be cancelled. */
  private beginActivate(id: string): Promise<boolean> {
    return this.locked(id, async (tx, promotion) => {
      const steps = parseSteps(promotion.steps);
      if (stepOf(steps, "ACTIVATE").status !== "PENDING") return false;
      await recordPromotion(
        tx,
        promotion,
        { steps: withStep(steps, "ACTIVATE", "RUNNING", this.now()) },
        "PROMOTION_STEP_CHANGED",
        "ACTIVATE running",
      );
      return true;
    });
  }

  /**
   * ACTIVATE: the environment switches to the new deployment in one
   * transaction (requests routed before it finish where they are), the
   * deployment's promotion settings become its own, and the previous
   * deployment is demoted by the cleanup strategy.
   */
  private activate(id: string): Promise<boolean> {
    return this.locked(id, async (tx, promotion) => {
      const steps = parseSteps(promotion.steps);
      if (stepOf(steps, "ACTIVATE").status !== "RUNNING" || !promotion.deploymentId) return false;
      // Environment before deployments, the order every writer of both takes (no deadlock).
      await tx.$queryRaw`SELECT id FROM "Environment" WHERE id = ${promotion.environmentId} FOR UPDATE`;
      const now = this.now();
      const deployment = await tx.deployment.findUniqueOrThrow({ where: { id: promotion.deploymentId } });
      const environment = await tx.environment.findUniqueOrThrow({ where: { id: promotion.environmentId } });
      const own = parseAutoscaling(deployment.promotionAutoscaling ?? deployment.autoscaling);
      await tx.deployment.update({
        where: { id: deployment.id },
        data: { promotionAutoscaling: Prisma.DbNull },
      });
      await tx.environment.update({
        where: { id: environment.id },
        data: { currentDeploymentId: deployment.id },
      });
      await writeAutoscaling(tx, deployment.id, own);
      await appendEvent(tx, {
        modelId: environment.modelId,
        type: "ENVIRONMENT_UPDATED",
        environmentId: environment.id,
        deploymentId: deployment.id,
        promotionId: promotion.id,
        message: `'${environment.name}' now serves '${deployment.name}'`,
      });
      const demotion = await this.demote(tx, promotion, deployment.id);
      await recordPromotion(
        tx,
        promotion,
        {
          status: "SUCCEEDED",
          steps: withStep(
            steps,
            "ACTIVATE",
            "SUCCEEDED",
            now,
            `'${environment.name}' serves '${deployment.name}'${demotion}`,
          ),
          percentTraffic: 100,
          canaryStage: promotion.canaryStages ? promotion.canaryStages : promotion.canaryStage,
          finishedAt: now,
          activeEnvironmentId: null,
        },
        "PROMOTION_FINISHED",
        `promotion succeeded: '${environment.name}' serves '${deployment.name}'`,
      );
      return true;
    });
  }

  /** The previous deployment keeps its ID and settings; it is scaled to zero, deactivated or kept. */
  private async demote(tx: Prisma.TransactionClient, promotion: Promotion, newId: string): Promise<string> {
    if (!promotion.previousDeploymentId || promotion.previousDeploymentId === newId) return "";
    const previous = await tx.deployment.findUnique({ where: { id: promotion.previousDeploymentId } });
    if (!previous || previous.deletedAt) return "";
    const strategy = promotion.scaleDownPrevious
      ? parsePromotionSettings(promotion.settings).cleanupStrategy
      : "KEEP";
    const serving = RUNNING_STATUSES.has(previous.status) || previous.status === "SCALED_TO_ZERO";
    if (strategy === "SCALE_TO_ZERO" && RUNNING_STATUSES.has(previous.status)) {
      await setStatus(tx, previous, "SCALED_TO_ZERO", "demoted by a promotion");
      return `; '${previous.name}' scaled to zero`;
    }
    if (strategy === "DEACTIVATE" && serving) {
      await setStatus(tx, previous, "DEACTIVATING", "demoted by a promotion");
      return `; '${previous.name}' deactivated`;
    }
    return `; '${previous.name}' kept running`;
  }
}

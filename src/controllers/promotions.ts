import type { StageOutcome } from "../domain/canary.ts";
import { isActive, type PromotionStatus, TRAFFIC_SPLITTING_STATUSES } from "../domain/promotion.ts";
import { type Plan, planPromotion } from "../domain/promotion-plan.ts";
import type { Change } from "../events/bus.ts";
import { failpoint } from "../failpoints.ts";
import type { Promotion } from "../generated/prisma/client.ts";
import type { PromotionFigures } from "../metrics/prometheus.ts";
import { NO_OTHER_MEMBERS, type OtherMembersTraffic } from "../metrics/shared-traffic.ts";
import type { AnswerCounts, AnswerReadings } from "../metrics/traffic.ts";
import type { ServiceContext } from "../services/context.ts";
import { applyPlan, lockPromotion, observePromotion, stateOf } from "../store/promotions.ts";
import { claimable, holdsFreshLease, type LeaseHolder, leasedTo, RELEASED } from "./leases.ts";
import { KeyedSerializer } from "./serial.ts";

/** Starts a scaled-to-zero deployment (the deployment controller). */
export interface DeploymentWaker {
  wake(deploymentId: string): Promise<unknown>;
}

/**
 * Drives promotions through CREATE_DEPLOYMENT, START_DEPLOYMENT and ACTIVATE.
 * Each move is read -> plan -> persist -> effects: one transaction locks the
 * promotion row, reads the facts, asks domain/promotion-plan.ts what to do and
 * writes it with its events; what must wait for the commit (waking a
 * deployment, counting a new stage's answers) comes after. After a crash the
 * next owner of the lease resumes from exactly what was committed, and
 * repeating a move is harmless.
 */
export class PromotionController {
  private readonly serial = new KeyedSerializer();
  /** Ramping promotions whose stage clock runs in this process (see ramp()). */
  private readonly rampingHere = new Set<string>();
  /**
   * Per ramping promotion: when its current stage began here, and the new deployment's answer counts
   * in this process's meter then (the other members' are read by the second, from the stage's first).
   */
  private readonly stageBaselines = new Map<
    string,
    { stage: number; counts: AnswerCounts; second: number }
  >();
  /** Promotions this process has driven, whose figures it reports (hangar_promotions_total) until they end. */
  private readonly drivenHere = new Set<string>();
  private timer: NodeJS.Timeout | null = null;
  private unsubscribe: (() => void) | null = null;
  private stopping = false;

  constructor(
    private readonly ctx: ServiceContext,
    /** Who it acts as: the deployment controller's membership (soleHolder in tests). */
    private readonly holder: LeaseHolder,
    private readonly waker: DeploymentWaker,
    private readonly answers: AnswerReadings,
    /** What the other members' gateways counted (requests are counted by the member they entered). */
    private readonly others: OtherMembersTraffic = NO_OTHER_MEMBERS,
    private readonly intervalMs = 250,
    /** Where the promotions' figures go (GET /metrics), or nowhere. */
    private readonly figures: PromotionFigures | null = null,
  ) {}

  async start(): Promise<void> {
    this.unsubscribe = this.ctx.bus.on((change) => this.onChange(change));
    await this.tick();
    this.timer = setInterval(() => void this.tick(), this.intervalMs);
  }

  private get owner(): string {
    return this.holder.id;
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

  private onError = (error: unknown) => {
    if (!this.stopping) this.ctx.log.error({ err: error }, "promotion controller error");
  };

  private onChange(change: Change): void {
    if (change.kind !== "event") return;
    if (change.promotionId) {
      void this.advance(change.promotionId);
      if (this.drivenHere.has(change.promotionId)) this.report(change.promotionId);
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
    // A notice of an end may have been missed (the database away): the end is counted here then.
    for (const id of this.drivenHere) if (!active.has(id)) this.report(id);
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

  /**
   * Reports a promotion driven here as it is now: its canary's share, and once it has ended its outcome
   * (counted once: it is then no longer driven here). Serialized with its moves.
   */
  private report(id: string): void {
    const figures = this.figures;
    if (!figures) return;
    void this.serial.run(
      id,
      async () => {
        if (!this.drivenHere.has(id)) return;
        const promotion = await this.ctx.db.prisma.promotion.findUnique({
          where: { id },
          select: {
            modelId: true,
            status: true,
            percentTraffic: true,
            environment: { select: { name: true } },
          },
        });
        if (!promotion) return;
        const environment = promotion.environment.name;
        const status = promotion.status as PromotionStatus;
        if (!isActive(status)) {
          this.drivenHere.delete(id);
          figures.promotionEnded(promotion.modelId, environment, status);
          figures.canaryPercent(promotion.modelId, environment, null);
          return;
        }
        const splitting = TRAFFIC_SPLITTING_STATUSES.includes(status);
        figures.canaryPercent(promotion.modelId, environment, splitting ? promotion.percentTraffic : null);
      },
      this.onError,
    );
  }

  private async claim(promotion: Promotion): Promise<boolean> {
    const now = new Date(this.ctx.clock.now());
    if (holdsFreshLease(promotion, this.owner, now)) {
      this.driven(promotion.id);
      return true;
    }
    const previous = promotion.leaseOwner;
    const gone = previous && previous !== this.owner ? await this.holder.gone([previous]) : new Set<string>();
    const { count } = await this.ctx.db.prisma.promotion.updateMany({
      where: {
        id: promotion.id,
        leaseOwner: previous,
        ...claimable(this.owner, gone),
      },
      data: leasedTo(this.owner, now),
    });
    if (count === 1) this.driven(promotion.id);
    return count === 1;
  }

  /** The promotion is driven here from now on: its figures are reported here. */
  private driven(id: string): void {
    if (this.figures && !this.drivenHere.has(id)) {
      this.drivenHere.add(id);
      this.report(id);
    }
  }

  /** Makes one move of the promotion's state machine; false when there is nothing to do now. */
  private async step(id: string): Promise<boolean> {
    // A member that may not act moves nothing (controllers/membership.ts); another takes it over.
    if (!this.holder.canAct()) return false;
    const promotion = await this.ctx.db.prisma.promotion.findUnique({ where: { id } });
    if (!promotion || !movable(promotion)) return false;
    if (!(await this.claim(promotion))) return false;
    // Read before the transaction (the other members' counts are a query of their own), and used only
    // if the stage is still the one they were read for.
    const ramping = promotion.status === "RAMPING_UP" && promotion.deploymentId && promotion.canaryStage;
    const answers = ramping
      ? {
          stage: promotion.canaryStage,
          outcome: await this.stageOutcome(
            id,
            promotion.deploymentId as string,
            promotion.canaryStage as number,
          ),
        }
      : null;
    const result = await this.ctx.db.prisma.$transaction(async (tx) => {
      const current = await lockPromotion(tx, id);
      if (!current || !movable(current)) return null;
      const obs = await observePromotion(tx, current);
      obs.clockRunningHere = this.rampingHere.has(id);
      if (current.status === "RAMPING_UP" && current.deploymentId && current.canaryStage) {
        obs.stageAnswers =
          answers?.stage === current.canaryStage ? answers.outcome : { answered: 0, failed: 0 };
      }
      const plan = planPromotion(stateOf(current), obs, this.ctx.clock.now());
      return { plan, updated: await applyPlan(tx, current, plan) };
    });
    if (!result) return false;
    await this.afterCommit(id, result.plan, result.updated);
    return result.plan.events.length > 0;
  }

  /** The plan's effects that wait for its commit. */
  private async afterCommit(id: string, plan: Plan, updated: Promotion): Promise<void> {
    // From here this process runs the stage clock (a restart does not count the time it was down).
    if (updated.status === "RAMPING_UP") this.rampingHere.add(id);
    for (const effect of plan.effects) {
      if (effect.kind === "wake") await this.waker.wake(effect.deploymentId);
      if (effect.kind === "beginStage" && updated.deploymentId)
        this.beginStage(id, updated.deploymentId, effect.stage);
    }
    if (plan.milestone) failpoint(`promotion:${plan.milestone}`);
  }

  /** A stage has just begun: the new deployment's answers from here on are the stage's. */
  private beginStage(promotionId: string, deploymentId: string, stage: number): void {
    this.stageBaselines.set(promotionId, {
      stage,
      counts: this.answers.answerCounts(deploymentId),
      second: Math.floor(this.ctx.clock.now() / 1000),
    });
  }

  /**
   * What the new deployment answered in the current stage: counted by this
   * process's gateway from when the stage began, plus what the other members'
   * gateways counted from the stage's first second on (a stage this process did
   * not begin, as after a takeover, counts from when it first sees it).
   */
  private async stageOutcome(
    promotionId: string,
    deploymentId: string,
    stage: number,
  ): Promise<StageOutcome> {
    const baseline = this.stageBaselines.get(promotionId);
    if (baseline?.stage !== stage) {
      this.beginStage(promotionId, deploymentId, stage);
      const others = await this.others.answers(deploymentId, Math.floor(this.ctx.clock.now() / 1000));
      return { answered: 0, failed: 0, inFlight: this.answers.inFlight(deploymentId) + others.inFlight };
    }
    const others = await this.others.answers(deploymentId, baseline.second);
    const counts = this.answers.answerCounts(deploymentId);
    // The meter forgets a deployment idle here for long (metrics/traffic.ts): its totals start again.
    const reset = counts.answered < baseline.counts.answered;
    const local = reset
      ? counts
      : {
          answered: counts.answered - baseline.counts.answered,
          failed: counts.failed - baseline.counts.failed,
        };
    return {
      answered: local.answered + others.answered,
      failed: local.failed + others.failed,
      inFlight: this.answers.inFlight(deploymentId) + others.inFlight,
    };
  }
}

/** Active and not paused: the controller has something to drive. */
function movable(promotion: Promotion): boolean {
  return isActive(promotion.status as PromotionStatus) && promotion.status !== "PAUSED";
}

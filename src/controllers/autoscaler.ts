import { decideReplicas } from "../domain/autoscaler.ts";
import { type AutoscalingSettings, effectiveAutoscaling } from "../domain/autoscaling.ts";
import type { Clock } from "../domain/clock.ts";
import { AWAITING_REPLICA_STATUSES, type DeploymentStatus, READY_STATUSES } from "../domain/status.ts";
import type { ConcurrencyReadings } from "../metrics/traffic.ts";
import type { Runtime } from "../runtime/runtime.ts";
import type { ServiceContext } from "../services/context.ts";

/** Where the autoscaler's decisions go (the deployment controller actuates them). */
export interface ScaleTarget {
  scaleTo(deploymentId: string, replicas: number, reason: string): Promise<void>;
}

/** The meter as the autoscaler uses it: it reads concurrency and drops what is no longer run here. */
export interface ScalingMetrics extends ConcurrencyReadings {
  retain(runHere: (deploymentId: string) => boolean): void;
}

/**
 * The autoscaler: every tick, for each deployment run by this process, reads
 * the gateway's concurrency figures and the runtime's replica count, asks the
 * scaling rule (domain/autoscaler.ts) for a replica count, and hands changes
 * to the deployment controller, which actuates them.
 */
export class Autoscaler {
  private timer: NodeJS.Timeout | null = null;
  private readonly lowSince = new Map<string, number | null>();
  private running = false;

  constructor(
    private readonly ctx: ServiceContext,
    private readonly controller: ScaleTarget,
    private readonly runtime: Pick<Runtime, "deploymentIds" | "has" | "count" | "lastReadyAt">,
    private readonly traffic: ScalingMetrics,
    private readonly clock: Clock,
    private readonly intervalMs: number,
  ) {}

  start(): void {
    this.timer = setInterval(() => void this.tick(), this.intervalMs);
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
  }

  async tick(): Promise<void> {
    if (this.running) return; // a slow tick is not stacked with the next
    this.running = true;
    try {
      const ids = this.runtime.deploymentIds();
      // Entries of deployments no longer run here (deleted, deactivated, elsewhere) go.
      this.traffic.retain((id) => this.runtime.has(id));
      for (const id of this.lowSince.keys()) if (!ids.includes(id)) this.lowSince.delete(id);
      if (ids.length === 0) return;
      const rows = await this.ctx.db.prisma.deployment.findMany({
        where: { id: { in: ids }, deletedAt: null },
        select: { id: true, status: true, autoscaling: true, promotionAutoscaling: true },
      });
      for (const row of rows) await this.evaluate(row.id, row.status, effectiveAutoscaling(row));
    } catch (error) {
      this.ctx.log.error({ err: error }, "autoscaler tick failed");
    } finally {
      this.running = false;
    }
  }

  private async evaluate(id: string, status: DeploymentStatus, settings: AutoscalingSettings): Promise<void> {
    if (!READY_STATUSES.has(status) && !AWAITING_REPLICA_STATUSES.has(status)) return;
    const window = this.traffic.concurrency(id);
    const now = this.clock.now();
    const current = this.runtime.count(id);
    const decision = decideReplicas({
      now,
      settings,
      current,
      averageConcurrency: window?.average(now, settings.autoscalingWindow) ?? 0,
      inFlight: window?.inFlight ?? 0,
      lastActivityAt: window?.lastActivityAt ?? 0,
      lastReadyAt: this.runtime.lastReadyAt(id),
      lowSince: this.lowSince.get(id) ?? null,
    });
    this.lowSince.set(id, decision.lowSince);
    if (decision.desired === current) return;
    if (decision.desired < current && !READY_STATUSES.has(status)) return;
    const reason =
      decision.desired === 0
        ? `no traffic for ${settings.scaleDownDelay} s`
        : `average concurrency ${(window?.average(now, settings.autoscalingWindow) ?? 0).toFixed(2)} over ${settings.autoscalingWindow} s`;
    await this.controller.scaleTo(id, decision.desired, reason);
  }
}

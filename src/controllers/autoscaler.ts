import { decideReplicas } from "../domain/autoscaler.ts";
import { type AutoscalingSettings, effectiveAutoscaling } from "../domain/autoscaling.ts";
import type { Clock } from "../domain/clock.ts";
import { AWAITING_REPLICA_STATUSES, type DeploymentStatus, READY_STATUSES } from "../domain/status.ts";
import { NO_OTHER_MEMBERS, type OtherMembersTraffic } from "../metrics/shared-traffic.ts";
import type { ConcurrencyReadings } from "../metrics/traffic.ts";
import type { Runtime } from "../runtime/runtime.ts";
import type { ServiceContext } from "../services/context.ts";
import type { RemoteConcurrency } from "../store/traffic.ts";

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
 * the concurrency figures (this process's gateway's, plus what the other
 * members' gateways counted: requests are counted where they entered) and the
 * runtime's replica count, asks the scaling rule (domain/autoscaler.ts) for a
 * replica count, and hands changes to the deployment controller, which
 * actuates them.
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
    private readonly others: OtherMembersTraffic = NO_OTHER_MEMBERS,
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
      const settings = rows.map((row) => ({ row, settings: effectiveAutoscaling(row) }));
      const nowSecond = Math.floor(this.clock.now() / 1000);
      const remote = await this.others.concurrency(
        settings.map(({ row, settings: s }) => ({
          deploymentId: row.id,
          // A second more than the window: the others' last second is written a moment after it ends.
          busySince: nowSecond - s.autoscalingWindow,
          activeSince: nowSecond - Math.max(s.autoscalingWindow, s.scaleDownDelay) - 1,
        })),
      );
      for (const { row, settings: s } of settings)
        await this.evaluate(row.id, row.status, s, remote.get(row.id));
    } catch (error) {
      this.ctx.log.error({ err: error }, "autoscaler tick failed");
    } finally {
      this.running = false;
    }
  }

  private async evaluate(
    id: string,
    status: DeploymentStatus,
    settings: AutoscalingSettings,
    remote: RemoteConcurrency | undefined,
  ): Promise<void> {
    if (!READY_STATUSES.has(status) && !AWAITING_REPLICA_STATUSES.has(status)) return;
    const window = this.traffic.concurrency(id);
    const now = this.clock.now();
    const current = this.runtime.count(id);
    const averageConcurrency =
      (window?.average(now, settings.autoscalingWindow) ?? 0) +
      (remote?.busyMs ?? 0) / (settings.autoscalingWindow * 1000);
    const decision = decideReplicas({
      now,
      settings,
      current,
      averageConcurrency,
      inFlight: (window?.inFlight ?? 0) + (remote?.inFlight ?? 0),
      lastActivityAt: Math.max(window?.lastActivityAt ?? 0, remote?.lastActivityAt ?? 0),
      lastReadyAt: this.runtime.lastReadyAt(id),
      lowSince: this.lowSince.get(id) ?? null,
    });
    this.lowSince.set(id, decision.lowSince);
    if (decision.desired === current) return;
    if (decision.desired < current && !READY_STATUSES.has(status)) return;
    const reason =
      decision.desired === 0
        ? `no traffic for ${settings.scaleDownDelay} s`
        : `average concurrency ${averageConcurrency.toFixed(2)} over ${settings.autoscalingWindow} s`;
    await this.controller.scaleTo(id, decision.desired, reason);
  }
}

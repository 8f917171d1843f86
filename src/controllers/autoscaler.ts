import { decideReplicas } from "../domain/autoscaler.ts";
import { type AutoscalingSettings, effectiveAutoscaling } from "../domain/autoscaling.ts";
import type { Clock } from "../domain/clock.ts";
import { type DeploymentStatus, READY_STATUSES } from "../domain/status.ts";
import type { TrafficMeter } from "../metrics/traffic.ts";
import type { ProcessRuntime } from "../runtime/process-runtime.ts";
import type { ServiceContext } from "../services/context.ts";
import type { DeploymentController } from "./deployments.ts";

/** Still starting: only scaling up makes sense (requests are piling up while the first replica loads). */
const STARTING: ReadonlySet<DeploymentStatus> = new Set<DeploymentStatus>([
  "DEPLOYING",
  "LOADING_MODEL",
  "WAKING_UP",
]);

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
    private readonly controller: DeploymentController,
    private readonly runtime: ProcessRuntime,
    private readonly traffic: TrafficMeter,
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
      if (ids.length === 0) return;
      const rows = await this.ctx.db.prisma.deployment.findMany({
        where: { id: { in: ids }, deletedAt: null },
        select: { id: true, status: true, autoscaling: true, promotionAutoscaling: true },
      });
      for (const row of rows) await this.evaluate(row.id, row.status, effectiveAutoscaling(row));
      for (const id of this.lowSince.keys()) if (!ids.includes(id)) this.lowSince.delete(id);
    } catch (error) {
      this.ctx.log.error({ err: error }, "autoscaler tick failed");
    } finally {
      this.running = false;
    }
  }

  private async evaluate(id: string, status: DeploymentStatus, settings: AutoscalingSettings): Promise<void> {
    if (!READY_STATUSES.has(status) && !STARTING.has(status)) return;
    const window = this.traffic.get(id);
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

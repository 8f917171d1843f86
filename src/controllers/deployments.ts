import { readFile } from "node:fs/promises";
import { hostname } from "node:os";
import { baselineReplicas, effectiveAutoscaling } from "../domain/autoscaling.ts";
import { type DeploymentStatus, RUNNING_STATUSES, STOPPED_STATUSES } from "../domain/status.ts";
import type { Change } from "../events/bus.ts";
import type { Deployment } from "../generated/prisma/client.ts";
import { buildSpec, type ReplicaSpec } from "../runtime/build.ts";
import type { ProcessRuntime, RuntimeObserver } from "../runtime/process-runtime.ts";
import type { Replica } from "../runtime/replica.ts";
import type { ServiceContext } from "../services/context.ts";
import { modelRoot } from "../store/artifacts.ts";
import { announceReplicas, transition } from "../store/deployments.ts";
import { claimable, leasedTo, RELEASED } from "./leases.ts";
import { KeyedSerializer } from "./serial.ts";

const TICK_MS = 5_000;

const STARTING_FROM: DeploymentStatus[] = ["DEPLOYING", "LOADING_MODEL", "WAKING_UP", "UPDATING"];

/**
 * Drives deployments toward their status: builds them, keeps their replicas
 * running, stops them when deactivated or deleted, and records what the
 * runtime reports. A deployment is run by the one Hangar process holding its
 * lease, so several processes can share a database.
 */
export class DeploymentController implements RuntimeObserver {
  /** This process's name on leases and replica rows: host, PID and start time. */
  readonly owner: string;
  private readonly serial = new KeyedSerializer();
  private readonly specs = new Map<string, ReplicaSpec>();
  /** Replica counts chosen by the autoscaler, per deployment run here. */
  private readonly desired = new Map<string, number>();
  private timer: NodeJS.Timeout | null = null;
  private unsubscribe: (() => void) | null = null;
  private stopping = false;
  runtime!: ProcessRuntime;

  constructor(private readonly ctx: ServiceContext) {
    this.owner = `${hostname()}:${process.pid}:${ctx.clock.now().toString(36)}`;
  }

  async start(runtime: ProcessRuntime): Promise<void> {
    this.runtime = runtime;
    await this.reapOrphans();
    this.unsubscribe = this.ctx.bus.on((change) => this.onChange(change));
    await this.tick();
    this.timer = setInterval(() => void this.tick(), TICK_MS);
  }

  async stop(): Promise<void> {
    this.stopping = true;
    if (this.timer) clearInterval(this.timer);
    this.unsubscribe?.();
    await this.serial.idle();
    await this.runtime.stopAll("Hangar is shutting down");
    await this.serial.idle();
    await this.ctx.db.prisma.deployment.updateMany({
      where: { leaseOwner: this.owner },
      data: RELEASED,
    });
  }

  /** The time, from the context's clock (a fake one in tests). */
  private now(): Date {
    return new Date(this.ctx.clock.now());
  }

  private onError = (error: unknown) => {
    if (!this.stopping) this.ctx.log.error({ err: error }, "deployment controller error");
  };

  private onChange(change: Change): void {
    if (change.kind === "event" && change.deploymentId) this.reconcile(change.deploymentId);
  }

  /** Renews leases and reconciles every deployment that should run or is running here. */
  private async tick(): Promise<void> {
    if (this.stopping) return;
    try {
      const { prisma } = this.ctx.db;
      await prisma.deployment.updateMany({
        where: { leaseOwner: this.owner },
        data: { leaseExpiresAt: leasedTo(this.owner, this.now()).leaseExpiresAt },
      });
      const rows = await prisma.deployment.findMany({
        where: {
          OR: [
            { status: { in: [...RUNNING_STATUSES, "SCALED_TO_ZERO"] }, deletedAt: null },
            { leaseOwner: this.owner },
          ],
        },
        select: { id: true },
      });
      await Promise.all(rows.map((row) => this.reconcile(row.id)));
    } catch (error) {
      this.onError(error);
    }
  }

  reconcile(id: string): Promise<void> {
    return this.serial.run(id, () => this.reconcileNow(id), this.onError);
  }

  private async reconcileNow(id: string): Promise<void> {
    if (this.stopping) return;
    const { prisma } = this.ctx.db;
    const deployment = await prisma.deployment.findUnique({ where: { id } });
    if (!deployment) return;
    if (STOPPED_STATUSES.has(deployment.status) || deployment.deletedAt) {
      if (this.runtime.has(id)) await this.runtime.stop(id, `deployment is ${deployment.status}`);
      this.specs.delete(id);
      this.desired.delete(id);
      if (deployment.status === "DEACTIVATING") {
        await transition(this.ctx.db.prisma, id, ["DEACTIVATING"], "INACTIVE", "replicas stopped");
      }
      if (deployment.leaseOwner === this.owner) {
        await prisma.deployment.updateMany({
          where: { id, leaseOwner: this.owner },
          data: RELEASED,
        });
      }
      return;
    }
    const scaledToZero = deployment.status === "SCALED_TO_ZERO";
    if (!RUNNING_STATUSES.has(deployment.status) && !scaledToZero) return;
    if (!(await this.claim(deployment))) return;
    let spec = this.specs.get(id);
    if (deployment.status === "BUILDING" || !spec || spec.artifactHash !== deployment.artifactHash) {
      spec = await this.build(deployment);
      if (!spec) return;
    }
    if (!this.runtime.has(id)) {
      // A fresh start (new, activated, woken, or Hangar restarted): the autoscaler starts over.
      this.desired.delete(id);
      if (deployment.status === "ACTIVE" || deployment.status === "UPDATING") {
        await transition(this.ctx.db.prisma, id, ["ACTIVE", "UPDATING"], "DEPLOYING", "starting replicas");
      }
    }
    const settings = effectiveAutoscaling(deployment);
    const development = deployment.kind === "DEVELOPMENT";
    let replicas = scaledToZero ? 0 : (this.desired.get(id) ?? baselineReplicas(settings, development));
    if (!scaledToZero) {
      // Settings may have changed since the autoscaler chose this count.
      replicas = Math.min(Math.max(replicas, baselineReplicas(settings, development)), settings.maxReplica);
    }
    this.desired.set(id, replicas);
    this.runtime.ensure(spec, replicas);
  }

  /** The autoscaler's decision: run `replicas` replicas (0: scale to zero). */
  async scaleTo(id: string, replicas: number, reason: string): Promise<void> {
    if (replicas === 0) {
      // The status moves first: from then on a request wakes it rather than waiting for a replica.
      if (!(await transition(this.ctx.db.prisma, id, ["ACTIVE"], "SCALED_TO_ZERO", reason))) return;
      this.desired.set(id, 0);
    } else {
      this.desired.set(id, replicas);
      this.log(id, null, "system", `scaling to ${replicas} replica${replicas === 1 ? "" : "s"}: ${reason}`);
    }
    await this.reconcile(id);
  }

  /**
   * Live reload of a development deployment run here: builds the spec of the
   * new artifact, loads it into the running replica, then lets `commit` record
   * it. With no replica running here (scaled to zero, or run by another
   * process) it only commits: the new code takes effect at the next start.
   */
  async reloadCode(
    deployment: Deployment,
    artifactHash: string,
    commit: (how: "in place" | "at next start") => Promise<void>,
  ): Promise<{ applied: true } | { applied: false; error: string }> {
    let outcome: Awaited<ReturnType<DeploymentController["reloadCode"]>> = { applied: true };
    // Serialised with reconciles, and committed inside: a reconcile in between
    // would otherwise see new code running and the old hash stored, and restart it.
    await this.serial.run(
      deployment.id,
      async () => {
        if (this.runtime.ready(deployment.id).length === 0) {
          await commit("at next start");
          return;
        }
        const dir = await modelRoot(this.ctx.artifacts.dir(artifactHash));
        const built = await buildSpec({
          deploymentId: deployment.id,
          artifactHash,
          dir,
          environmentName: deployment.environmentName,
        });
        if ("error" in built) {
          outcome = { applied: false, error: built.error };
          return;
        }
        const result = await this.runtime.reload(built.spec);
        if ("error" in result) {
          outcome = { applied: false, error: result.error };
          return;
        }
        this.specs.set(deployment.id, built.spec);
        await commit(result.reloaded > 0 ? "in place" : "at next start");
      },
      (error) => {
        outcome = { applied: false, error: (error as Error).message };
      },
    );
    return outcome;
  }

  /**
   * The fast path of a wake, with no database work: when this process runs
   * the deployment and has scaled it to zero, start its replica now (the long
   * pole); the status change follows. True when it started one.
   */
  startLocally(id: string): boolean {
    const spec = this.specs.get(id);
    if (!spec || !this.runtime.has(id) || this.runtime.count(id) > 0 || this.desired.get(id) !== 0)
      return false;
    this.desired.delete(id);
    this.runtime.ensure(spec, 1);
    return true;
  }

  /** Starts a scaled-to-zero deployment (a request arrived, or /wake). Idempotent. */
  async wake(id: string): Promise<void> {
    this.startLocally(id);
    if (await transition(this.ctx.db.prisma, id, ["SCALED_TO_ZERO"], "WAKING_UP", "woken by a request")) {
      this.desired.delete(id);
      await this.reconcile(id);
    }
  }

  /** Takes or renews this process's lease on the deployment; false when another process holds it. */
  private async claim(deployment: Deployment): Promise<boolean> {
    const now = this.now();
    const { count } = await this.ctx.db.prisma.deployment.updateMany({
      where: {
        id: deployment.id,
        ...claimable(this.owner, now),
      },
      data: leasedTo(this.owner, now),
    });
    return count === 1;
  }

  private async build(deployment: Deployment): Promise<ReplicaSpec | undefined> {
    const { id } = deployment;
    const logBuild = (line: string) =>
      this.ctx.logs.write({ deploymentId: id, replica: null, stream: "build", line });
    let result: Awaited<ReturnType<typeof buildSpec>>;
    if (!(await this.ctx.artifacts.has(deployment.artifactHash))) {
      result = { error: `artifact ${deployment.artifactHash} is missing from the data dir`, log: [] };
    } else {
      const dir = await modelRoot(this.ctx.artifacts.dir(deployment.artifactHash));
      result = await buildSpec({
        deploymentId: id,
        artifactHash: deployment.artifactHash,
        dir,
        environmentName: deployment.environmentName,
      });
    }
    if (deployment.status === "BUILDING") for (const line of result.log) logBuild(line);
    if ("error" in result) {
      logBuild(`build failed: ${result.error}`);
      await this.ctx.logs.flush();
      await transition(this.ctx.db.prisma, id, ["BUILDING"], "BUILD_FAILED", result.error);
      return undefined;
    }
    this.specs.set(id, result.spec);
    if (deployment.status === "BUILDING") {
      logBuild("build succeeded");
      await transition(this.ctx.db.prisma, id, ["BUILDING"], "DEPLOYING", "build succeeded");
    }
    return result.spec;
  }

  /**
   * Whether the Hangar process that wrote `owner` is gone. The embedded
   * database admits one process per data dir, so there every other owner is
   * dead; on PostgreSQL, only an owner on this host whose PID is gone is known
   * dead, and any other waits for its lease to lapse.
   */
  private ownerIsDead(owner: string): boolean {
    if (owner === this.owner) return false;
    if (this.ctx.db.kind === "pglite") return true;
    const [host, pid] = owner.split(":");
    if (host !== hostname()) return false;
    try {
      process.kill(Number(pid), 0);
      return false;
    } catch {
      return true;
    }
  }

  /**
   * Cleans up after Hangar processes that died without stopping (SIGKILL, a
   * crash): frees their leases at once and kills the replica processes they
   * left, so deployments come back without waiting for leases to lapse.
   */
  private async reapOrphans(): Promise<void> {
    const { prisma } = this.ctx.db;
    const now = this.now();
    const query = {
      where: { leaseOwner: { not: null } },
      distinct: ["leaseOwner" as const],
      select: { leaseOwner: true },
    };
    const owners = new Set(
      [...(await prisma.deployment.findMany(query)), ...(await prisma.promotion.findMany(query))].map(
        (r) => r.leaseOwner,
      ),
    );
    for (const leaseOwner of owners) {
      if (leaseOwner && this.ownerIsDead(leaseOwner)) {
        await prisma.deployment.updateMany({ where: { leaseOwner }, data: RELEASED });
        // The promotion controller runs under the same owner name.
        await prisma.promotion.updateMany({ where: { leaseOwner }, data: RELEASED });
      }
    }
    const stale = await prisma.replica.findMany({
      where: { state: { in: ["STARTING", "READY", "STOPPING"] }, owner: { not: this.owner } },
    });
    for (const replica of stale) {
      if (!this.ownerIsDead(replica.owner)) {
        const holder = await prisma.deployment.findFirst({
          where: { leaseOwner: replica.owner, leaseExpiresAt: { gt: now } },
          select: { id: true },
        });
        if (holder) continue; // its process may be alive and still runs it
      }
      if (replica.pid && (await isOurReplica(replica.pid, replica.id))) {
        try {
          process.kill(-replica.pid, "SIGKILL");
        } catch {
          // Already gone.
        }
      }
      await prisma.replica.update({
        where: { id: replica.id },
        data: { state: "STOPPED", stoppedAt: now, exitReason: replica.exitReason ?? "owner process died" },
      });
    }
  }

  // RuntimeObserver: facts from the runtime, recorded in order per deployment.

  replicaStarting(replica: Replica): void {
    void this.serial.run(
      replica.deploymentId,
      async () => {
        await this.ctx.db.prisma.replica.create({
          data: {
            id: replica.id,
            deploymentId: replica.deploymentId,
            owner: this.owner,
            pid: replica.pid,
            port: replica.port,
            startedAt: new Date(replica.startedAt),
          },
        });
        await transition(
          this.ctx.db.prisma,
          replica.deploymentId,
          ["DEPLOYING"],
          "LOADING_MODEL",
          "replica process started",
        );
      },
      this.onError,
    );
  }

  /** Updates a replica's row and tells deploymentStatus subscribers the replica count moved. */
  private async recordReplica(
    id: string,
    data: { state: "READY" | "STOPPING" | "STOPPED"; readyAt?: Date; stoppedAt?: Date; exitReason?: string },
  ): Promise<void> {
    await this.ctx.db.prisma.$transaction(async (tx) => {
      const row = await tx.replica.update({
        where: { id },
        data,
        include: { deployment: { select: { id: true, modelId: true } } },
      });
      await announceReplicas(tx, row.deployment);
    });
  }

  replicaReady(replica: Replica): void {
    void this.serial.run(
      replica.deploymentId,
      async () => {
        await this.recordReplica(replica.id, {
          state: "READY",
          readyAt: new Date(replica.readyAt ?? this.ctx.clock.now()),
        });
        await transition(
          this.ctx.db.prisma,
          replica.deploymentId,
          STARTING_FROM,
          "ACTIVE",
          "a replica is ready",
        );
      },
      this.onError,
    );
  }

  replicaDraining(replica: Replica): void {
    void this.serial.run(
      replica.deploymentId,
      () => this.recordReplica(replica.id, { state: "STOPPING" }),
      this.onError,
    );
  }

  replicaStopped(replica: Replica, reason: string): void {
    void this.serial.run(
      replica.deploymentId,
      async () => {
        await this.recordReplica(replica.id, { state: "STOPPED", stoppedAt: this.now(), exitReason: reason });
        if (!this.stopping && this.runtime.has(replica.deploymentId)) {
          if (this.runtime.ready(replica.deploymentId).length === 0) {
            await transition(
              this.ctx.db.prisma,
              replica.deploymentId,
              ["ACTIVE"],
              "DEPLOYING",
              `no replica is ready: ${reason}`,
            );
          }
        }
      },
      this.onError,
    );
  }

  deploymentFailed(deploymentId: string, status: "DEPLOY_FAILED" | "UNHEALTHY", reason: string): void {
    void this.serial.run(
      deploymentId,
      async () => {
        await this.ctx.logs.flush();
        await transition(this.ctx.db.prisma, deploymentId, [...RUNNING_STATUSES], status, reason);
      },
      this.onError,
    );
  }

  log(
    deploymentId: string,
    replicaId: string | null,
    stream: "stdout" | "stderr" | "system",
    line: string,
  ): void {
    this.ctx.logs.write({ deploymentId, replica: replicaId, stream, line });
  }
}

/** Guards against PID reuse: the process must carry the replica's ID in its environment. */
async function isOurReplica(pid: number, replicaId: string): Promise<boolean> {
  try {
    const environ = await readFile(`/proc/${pid}/environ`, "latin1");
    return environ.split("\0").includes(`HANGAR_REPLICA_ID=${replicaId}`);
  } catch {
    return false;
  }
}

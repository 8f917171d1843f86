import { readFile } from "node:fs/promises";
import { hostname } from "node:os";
import { baselineReplicas, effectiveAutoscaling } from "../domain/autoscaling.ts";
import { type Clock, systemClock } from "../domain/clock.ts";
import {
  factReason,
  isCrashLoop,
  type LifecycleFact,
  MAX_START_ATTEMPTS,
  recentCrashes,
  startRetry,
} from "../domain/deployment-lifecycle.ts";
import { storedResources } from "../domain/resources.ts";
import { type DeploymentStatus, SERVABLE_STATUSES, STOPPED_STATUSES } from "../domain/status.ts";
import type { Change } from "../events/bus.ts";
import type { Deployment } from "../generated/prisma/client.ts";
import { buildSpec, type ReplicaSpec } from "../runtime/build.ts";
import { machineOwnerHasEnded } from "../runtime/process-identity.ts";
import type { Replica } from "../runtime/replica.ts";
import type { LogStream, ReplicaExit, Runtime, RuntimeFacts } from "../runtime/runtime.ts";
import type { ServiceContext } from "../services/context.ts";
import { modelRoot } from "../store/artifacts.ts";
import { announceReplicas, keepResources, transition } from "../store/deployments.ts";
import { endReplicasOf, HEARTBEAT_MS, processesOf } from "../store/members.ts";
import { claimable, leasedTo, leaseOwnerName, RELEASED } from "./leases.ts";
import { Membership } from "./membership.ts";
import { KeyedSerializer } from "./serial.ts";

/** Each tick renews leases and is this process's heartbeat. */
const TICK_MS = HEARTBEAT_MS;
/**
 * How often it looks for work nobody holds (a lease released, or left by a gone member): a dead
 * member's deployments come back on the others within its expiry and this (API.md section 10).
 */
const TAKEOVER_MS = 1_000;

/** Start failures and crashes of a deployment run here, for the retry and crash-loop policies. */
interface Failures {
  /** Consecutive failed starts (a ready replica resets it). */
  starts: number;
  /** Times of recent crashes of ready replicas. */
  crashes: number[];
}

/**
 * Drives deployments toward their status: builds them, keeps their replicas
 * running, stops them when deactivated or deleted, and records what the
 * runtime reports. A deployment is run by the one Hangar process holding its
 * lease, so several processes can share a database.
 */
export class DeploymentController implements RuntimeFacts {
  readonly owner: string;
  readonly membership: Membership;
  private readonly serial = new KeyedSerializer();
  private readonly specs = new Map<string, ReplicaSpec>();
  /** Replica counts chosen by the autoscaler, per deployment run here. */
  private readonly desired = new Map<string, number>();
  /** The last order given to the runtime per deployment: a retried start repeats it. */
  private readonly ordered = new Map<string, { spec: ReplicaSpec; replicas: number }>();
  private readonly failures = new Map<string, Failures>();
  /** Deployments given up on (DEPLOY_FAILED, UNHEALTHY) whose status is being recorded: nothing starts. */
  private readonly givenUp = new Set<string>();
  /** Wakes under way, so that many held requests make one. */
  private readonly waking = new Map<string, Promise<boolean>>();
  /** Deployments whose replica a wake started here (startLocally) while their WAKING_UP is not written yet. */
  private readonly wokenHere = new Set<string>();
  private timer: NodeJS.Timeout | null = null;
  private takeoverTimer: NodeJS.Timeout | null = null;
  private unsubscribe: (() => void) | null = null;
  private stopping = false;
  /** Why it last said it stopped acting (said once per cause, not every tick). */
  private notActing: string | null = null;

  constructor(
    private readonly ctx: ServiceContext,
    private readonly runtime: Runtime,
    private readonly clock: Clock = systemClock,
    /** This start in the cluster: the server passes its own; alone, it names itself. */
    membership?: Membership,
  ) {
    const id = leaseOwnerName(clock.now());
    this.membership =
      membership ??
      new Membership(ctx.db, { id, name: id, url: "", host: hostname(), pid: process.pid }, clock);
    this.owner = this.membership.id;
    // The runtime reports to the one that orders it.
    runtime.reportTo(this);
  }

  private now(): Date {
    return new Date(this.clock.now());
  }

  async start(): Promise<void> {
    await this.membership.join();
    await this.reapOrphans();
    this.unsubscribe = this.ctx.bus.on((change) => this.onChange(change));
    await this.tick();
    this.timer = setInterval(() => void this.tick(), TICK_MS);
    // The embedded database has no other member to take over from.
    if (this.ctx.db.kind === "postgres") {
      this.takeoverTimer = setInterval(() => void this.takeOver(), TAKEOVER_MS);
    }
  }

  async stop(): Promise<void> {
    this.stopping = true;
    if (this.timer) clearInterval(this.timer);
    if (this.takeoverTimer) clearInterval(this.takeoverTimer);
    this.unsubscribe?.();
    await this.serial.idle();
    await this.runtime.stopAll("Hangar is shutting down");
    await this.serial.idle();
    await this.membership.leave().catch(this.onError);
    await this.ctx.db.prisma.deployment.updateMany({
      where: { leaseOwner: this.owner },
      data: RELEASED,
    });
  }

  /** Whether it may act now; says so in the log when that changes. */
  private mayAct(): boolean {
    const why = this.membership.whyNotActing();
    if (why !== this.notActing) {
      if (why) this.ctx.log.warn(`member ${this.membership.name} stops acting (it keeps serving): ${why}`);
      else this.ctx.log.info(`member ${this.membership.name} acts again`);
      this.notActing = why;
    }
    return why === null;
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
      await this.membership.beat();
      if (!this.mayAct()) return;
      await prisma.deployment.updateMany({
        where: { leaseOwner: this.owner },
        data: { leaseExpiresAt: leasedTo(this.owner, this.now()).leaseExpiresAt },
      });
      const rows = await prisma.deployment.findMany({
        where: {
          OR: [{ status: { in: [...SERVABLE_STATUSES] }, deletedAt: null }, { leaseOwner: this.owner }],
        },
        select: { id: true },
      });
      const listed = new Set(rows.map((row) => row.id));
      // Run here but no longer listed (deleted, or its lease taken while this member could not act).
      const orphaned = this.runtime.deploymentIds().filter((id) => !listed.has(id));
      await Promise.all([...rows.map((row) => row.id), ...orphaned].map((id) => this.reconcile(id)));
    } catch (error) {
      this.onError(error);
    }
  }

  reconcile(id: string): Promise<void> {
    return this.serial.run(id, () => this.reconcileNow(id), this.onError);
  }

  /** Deployments nobody may be running (released, or held by a gone member): reconciled, to claim them. */
  private async takeOver(): Promise<void> {
    if (this.stopping || !this.membership.canAct()) return;
    try {
      const { prisma } = this.ctx.db;
      const held = await prisma.deployment.findMany({
        where: { status: { in: [...SERVABLE_STATUSES] }, deletedAt: null, leaseOwner: { not: this.owner } },
        select: { id: true, leaseOwner: true },
      });
      const gone = await this.membership.gone(
        held.flatMap((row) => (row.leaseOwner ? [row.leaseOwner] : [])),
      );
      const free = held.filter((row) => row.leaseOwner === null || gone.has(row.leaseOwner));
      await Promise.all(free.map((row) => this.reconcile(row.id)));
    } catch (error) {
      this.onError(error);
    }
  }

  private async reconcileNow(id: string): Promise<void> {
    if (this.stopping || !this.mayAct()) return;
    const { prisma } = this.ctx.db;
    const deployment = await prisma.deployment.findUnique({ where: { id } });
    if (!deployment) return;
    if (this.runtime.has(id) && deployment.leaseOwner !== this.owner && deployment.leaseOwner !== null) {
      // Another member took it over while this one could not act: it runs there now, not here too.
      await this.runtime.stop(id, `member ${deployment.leaseOwner} runs it now`);
      this.forget(id);
      return;
    }
    if (STOPPED_STATUSES.has(deployment.status) || deployment.deletedAt) {
      if (this.runtime.has(id)) await this.runtime.stop(id, `deployment is ${deployment.status}`);
      this.forget(id);
      if (deployment.status === "DEACTIVATING") {
        // Queued behind the exits the stop reported (they wait for this task): INACTIVE is said only
        // once every replica's row says when it stopped.
        void this.serial.run(
          id,
          async () => void (await transition(this.ctx.db.prisma, id, { kind: "replicas stopped" })),
          this.onError,
        );
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
    if (!SERVABLE_STATUSES.has(deployment.status) || this.givenUp.has(id)) return;
    if (!(await this.claim(deployment))) return;
    let spec = this.specs.get(id);
    if (deployment.status === "BUILDING" || !spec || spec.artifactHash !== deployment.artifactHash) {
      spec = await this.build(deployment);
      if (!spec) return;
    }
    if (!this.runtime.has(id)) {
      // A fresh start (new, activated, woken, or Hangar restarted): the autoscaler starts over.
      this.desired.delete(id);
      this.failures.delete(id);
      await transition(this.ctx.db.prisma, id, { kind: "starting again" });
    }
    // Woken here since its status was read (WAKING_UP is not written yet): the replica that wake started
    // must not be put away.
    if (scaledToZero && this.wokenHere.has(id)) return;
    const settings = effectiveAutoscaling(deployment);
    const development = deployment.kind === "DEVELOPMENT";
    let replicas = scaledToZero ? 0 : (this.desired.get(id) ?? baselineReplicas(settings, development));
    if (!scaledToZero) {
      // Settings may have changed since the autoscaler chose this count.
      replicas = Math.min(Math.max(replicas, baselineReplicas(settings, development)), settings.maxReplica);
    }
    this.desired.set(id, replicas);
    void this.order(spec, replicas);
  }

  /**
   * Orders the runtime to run `replicas` of the spec; new code starts with a clean failure record.
   * Resolves once the replicas it starts are spawned (Runtime.ensure).
   */
  private order(spec: ReplicaSpec, replicas: number): Promise<void> {
    const last = this.ordered.get(spec.deploymentId);
    if (last && last.spec.artifactHash !== spec.artifactHash) this.failures.delete(spec.deploymentId);
    this.ordered.set(spec.deploymentId, { spec, replicas });
    return this.runtime.ensure(spec, replicas);
  }

  /** Drops what this process kept about a deployment it no longer runs. */
  private forget(id: string): void {
    this.specs.delete(id);
    this.desired.delete(id);
    this.ordered.delete(id);
    this.failures.delete(id);
  }

  /** The autoscaler's decision: run `replicas` replicas (0: scale to zero). */
  async scaleTo(id: string, replicas: number, reason: string): Promise<void> {
    if (replicas === 0) {
      // The status moves first: from then on a request wakes it rather than waiting for a replica.
      if (!(await transition(this.ctx.db.prisma, id, { kind: "scaled to zero", reason }))) return;
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
          // The spec kept for a fast wake (startLocally) is the old code's: the next start builds the new one.
          this.specs.delete(deployment.id);
          await commit("at next start");
          return;
        }
        if (!(await this.ctx.artifacts.ensure(artifactHash)))
          throw new Error(`artifact ${artifactHash} is missing`);
        const dir = await modelRoot(this.ctx.artifacts.dir(artifactHash));
        const built = await buildSpec({
          deploymentId: deployment.id,
          artifactHash,
          dir,
          environmentName: deployment.environmentName,
          resourceDefaults: this.ctx.config.replicaResources,
        });
        if ("error" in built) {
          outcome = { applied: false, error: built.error };
          return;
        }
        // A patch that changes `resources` needs a full deploy (domain/patch.ts): the running ones stay.
        const resources = storedResources(deployment.resources) ?? built.spec.resources;
        const spec = { ...built.spec, resources };
        const result = await this.runtime.reload(spec);
        if ("error" in result) {
          outcome = { applied: false, error: result.error };
          return;
        }
        this.specs.set(deployment.id, spec);
        const last = this.ordered.get(deployment.id);
        if (last) this.ordered.set(deployment.id, { ...last, spec });
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
   * pole); the status change follows. Answers the replica's spawn (resolved
   * once its process is spawned) when it started one, else null.
   */
  startLocally(id: string): Promise<void> | null {
    const spec = this.specs.get(id);
    if (!spec || !this.runtime.has(id) || this.runtime.count(id) > 0 || this.desired.get(id) !== 0)
      return null;
    this.desired.delete(id);
    this.wokenHere.add(id);
    return this.order(spec, 1);
  }

  /**
   * The gateway's fact: a request is waiting for the deployment (it saw it in
   * `seen`, when it looked). This decides whether that wakes it: when this
   * process scaled it to zero, its replica starts at once (startLocally) and
   * the status follows; when the gateway saw it asleep, or this process does
   * not run it (yet), the wake goes through the database. Many waiting
   * requests make one wake.
   */
  waiting(id: string, seen?: DeploymentStatus): Promise<boolean> {
    const spawning = this.startLocally(id);
    if (!spawning && seen !== "SCALED_TO_ZERO" && this.specs.has(id)) return Promise.resolve(false);
    const under = this.waking.get(id);
    // A wake under way is another request's: this one woke nothing.
    if (under) return under.then(() => false);
    const wake = this.wake(id, spawning)
      .catch((error: unknown) => {
        this.onError(error);
        return false;
      })
      .finally(() => this.waking.delete(id));
    this.waking.set(id, wake);
    return wake;
  }

  /**
   * Starts a scaled-to-zero deployment (a request arrived, /wake, or a promotion). Idempotent. A replica
   * started here (`spawning`, from startLocally) is spawned before anything is written: the database
   * works on this event loop, and its transactions would hold back the steps that lead to the spawn.
   */
  async wake(id: string, spawning: Promise<void> | null = this.startLocally(id)): Promise<boolean> {
    let woken = false;
    // Queued at once among the deployment's facts, so that WAKING_UP is written before the replica's
    // readiness, however soon that is reported.
    await this.serial.run(
      id,
      async () => {
        try {
          if (spawning) await spawning;
          woken = (await transition(this.ctx.db.prisma, id, { kind: "woken" })) !== null;
        } finally {
          this.wokenHere.delete(id);
        }
      },
      this.onError,
    );
    if (woken) {
      this.desired.delete(id);
      // Started here, it needs nothing more now (the reconcile its WAKING_UP event brings sees to the
      // rest); otherwise this reconcile starts it.
      if (!spawning) await this.reconcile(id);
    }
    // Woken from zero: its status moved, or its replica was started here (the status follows).
    return woken || spawning !== null;
  }

  /**
   * Takes or renews this process's lease on the deployment; false when another process holds it. Taken
   * from a gone member, the replicas that member ran end as it did (at its last heartbeat).
   */
  private async claim(deployment: Deployment): Promise<boolean> {
    const now = this.now();
    const previous = deployment.leaseOwner;
    const gone =
      previous && previous !== this.owner ? await this.membership.gone([previous]) : new Set<string>();
    const { count } = await this.ctx.db.prisma.deployment.updateMany({
      where: {
        id: deployment.id,
        // The owner it was read with: a lease taken by another meanwhile is not taken from it.
        leaseOwner: previous,
        ...claimable(this.owner, gone),
      },
      data: leasedTo(this.owner, now),
    });
    if (count === 1 && previous && gone.has(previous)) {
      await endReplicasOf(this.ctx.db.prisma, previous, deployment.id);
      this.log(deployment.id, null, "system", `taken over from member start ${previous}, which is gone`);
    }
    return count === 1;
  }

  private async build(deployment: Deployment): Promise<ReplicaSpec | undefined> {
    const { id } = deployment;
    const logBuild = (line: string) =>
      this.ctx.logs.write({ deploymentId: id, replica: null, stream: "build", line });
    let result: Awaited<ReturnType<typeof buildSpec>>;
    const stored = await this.ctx.artifacts.ensure(deployment.artifactHash).catch((error: Error) => error);
    if (stored !== true) {
      const why = stored === false ? "is missing from the data dir" : `cannot be read: ${stored.message}`;
      result = { error: `artifact ${deployment.artifactHash} ${why}`, log: [] };
    } else {
      const dir = await modelRoot(this.ctx.artifacts.dir(deployment.artifactHash));
      result = await buildSpec({
        deploymentId: id,
        artifactHash: deployment.artifactHash,
        dir,
        environmentName: deployment.environmentName,
        resourceDefaults: this.ctx.config.replicaResources,
      });
    }
    if (deployment.status === "BUILDING") for (const line of result.log) logBuild(line);
    if ("error" in result) {
      logBuild(`build failed: ${result.error}`);
      await this.ctx.logs.flush();
      await transition(this.ctx.db.prisma, id, { kind: "build failed", reason: result.error });
      return undefined;
    }
    // Resolved once and kept on the row (store/deployments.ts keepResources): what Deployment.resources says.
    const resources = await keepResources(this.ctx.db.prisma, id, result.spec.resources);
    const spec: ReplicaSpec = { ...result.spec, resources };
    this.specs.set(id, spec);
    if (deployment.status === "BUILDING") {
      logBuild(
        `resources: ${resources.cpu} cpu, ${resources.memoryMb} MB of memory, ${resources.pids} processes`,
      );
      logBuild("build succeeded");
      await transition(this.ctx.db.prisma, id, { kind: "build succeeded" });
    }
    return spec;
  }

  /**
   * At start, what Hangar processes that are gone left behind (a SIGKILL, a crash). Who is gone is the
   * membership's verdict (on the embedded database every earlier owner is): the replica rows they left
   * recorded as running end as they did (store/members.ts endReplicasOf: at their last heartbeat), and
   * their leases are taken by the claims that follow (claim, takeOver). What is this process's own to
   * do is local: a replica process that outlived the start that ran it on this machine (one whose
   * process has ended, runtime/process-identity.ts) is killed, by its PID, if it still is that replica.
   */
  private async reapOrphans(): Promise<void> {
    const { prisma } = this.ctx.db;
    const left = await prisma.replica.findMany({
      where: { state: { in: ["STARTING", "READY", "STOPPING"] }, owner: { not: this.owner } },
      select: { id: true, owner: true, pid: true },
    });
    const gone = await this.membership.gone(left.map((replica) => replica.owner));
    if (gone.size === 0) return;
    const ranHere = await processesOf(prisma, [...gone]);
    for (const replica of left) {
      const start = ranHere.get(replica.owner);
      if (!replica.pid || !gone.has(replica.owner) || !start || !machineOwnerHasEnded(start)) continue;
      await killLeftReplica(replica.pid, replica.id);
    }
    for (const owner of gone) await endReplicasOf(prisma, owner);
  }

  // RuntimeFacts: what the runtime reports, recorded in order per deployment; the policy is decided here.

  replicaStarted(replica: Replica): void {
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
        await transition(this.ctx.db.prisma, replica.deploymentId, { kind: "replica started" });
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
    const failures = this.failures.get(replica.deploymentId);
    if (failures) failures.starts = 0;
    void this.serial.run(
      replica.deploymentId,
      async () => {
        await this.recordReplica(replica.id, {
          state: "READY",
          readyAt: new Date(replica.readyAt ?? this.clock.now()),
        });
        await transition(this.ctx.db.prisma, replica.deploymentId, { kind: "replica ready" });
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

  replicaExited(replica: Replica, exit: ReplicaExit): void {
    const { deploymentId } = replica;
    const { reason } = exit;
    void this.serial.run(
      deploymentId,
      async () => {
        await this.recordReplica(replica.id, { state: "STOPPED", stoppedAt: this.now(), exitReason: reason });
        if (
          !this.stopping &&
          this.runtime.has(deploymentId) &&
          this.runtime.ready(deploymentId).length === 0
        ) {
          await transition(this.ctx.db.prisma, deploymentId, { kind: "no replica ready", reason });
        }
      },
      this.onError,
    );
    if (exit.kind === "stop" || this.stopping || this.givenUp.has(deploymentId)) return;
    // A member that may not act starts nothing, a crashed replica's replacement included.
    if (!this.membership.canAct()) return;
    // Decided at once, as the exit is reported, so that no reconcile in between restarts it uncounted.
    const failures = this.failures.get(deploymentId) ?? { starts: 0, crashes: [] };
    this.failures.set(deploymentId, failures);
    if (exit.kind === "start") {
      failures.starts++;
      const retry = startRetry(failures.starts);
      if (!retry.retry) {
        this.giveUp(deploymentId, { kind: "start failed", attempts: failures.starts, reason });
        return;
      }
      this.log(
        deploymentId,
        null,
        "system",
        `retrying start (attempt ${retry.nextAttempt} of ${MAX_START_ATTEMPTS})`,
      );
    } else {
      const now = this.clock.now();
      failures.crashes = [...recentCrashes(failures.crashes, now), now];
      if (isCrashLoop(failures.crashes, now)) {
        this.giveUp(deploymentId, { kind: "crashed", crashes: failures.crashes, now, reason });
        return;
      }
      this.log(deploymentId, null, "system", "restarting crashed replica");
    }
    const last = this.ordered.get(deploymentId);
    if (last && this.runtime.has(deploymentId)) this.runtime.ensure(last.spec, last.replicas);
  }

  /** The policy gave up on the deployment: its replicas stop and the table records why. */
  private giveUp(deploymentId: string, fact: LifecycleFact): void {
    this.givenUp.add(deploymentId);
    const reason = factReason(fact);
    this.log(deploymentId, null, "system", reason);
    const stopped = this.runtime.stop(deploymentId, reason);
    void this.serial.run(
      deploymentId,
      async () => {
        await this.ctx.logs.flush();
        await transition(this.ctx.db.prisma, deploymentId, fact);
        await stopped;
        this.forget(deploymentId);
        this.givenUp.delete(deploymentId);
      },
      this.onError,
    );
  }

  log(deploymentId: string, replicaId: string | null, stream: LogStream, line: string): void {
    this.ctx.logs.write({ deploymentId, replica: replicaId, stream, line });
  }
}

/**
 * Kills the process group of a replica left by a gone start. Guards against PID reuse: the process must
 * carry the replica's ID in its environment.
 */
async function killLeftReplica(pid: number, replicaId: string): Promise<void> {
  let environ: string;
  try {
    environ = await readFile(`/proc/${pid}/environ`, "latin1");
  } catch {
    return; // gone, or not ours to read
  }
  if (!environ.split("\0").includes(`HANGAR_REPLICA_ID=${replicaId}`)) return;
  try {
    process.kill(-pid, "SIGKILL");
  } catch {
    // Already gone.
  }
}

import { EventEmitter } from "node:events";
import { type Clock, systemClock } from "../domain/clock.ts";
import { newId } from "../domain/ids.ts";
import { ReplicaOutput, type Schedule } from "../domain/log-lines.ts";
import { packagePath } from "../package-root.ts";
import type { ReplicaSpec } from "./build.ts";
import { nextEmit } from "./changes.ts";
import { Replica } from "./replica.ts";
import { newReplicaSecret, replicaPool } from "./replica-channel.ts";
import type { Runtime, RuntimeFacts } from "./runtime.ts";
import { quietPipes, type ReplicaLaunch, type Sandbox } from "./sandbox.ts";
import { Spawner } from "./spawner.ts";
import type { Workspace } from "./workspace.ts";

// A plain script (no TypeScript): replicas start without a loader, from src/ in every mode.
const MODEL_SERVER = packagePath("src", "runtime", "model-server.mjs");

export interface RuntimeOptions {
  /** Where replicas' private files live on the host (sockets, HOME, TMPDIR). */
  workspace: Workspace;
  /** How replicas are launched: fenced or not. */
  sandbox: Sandbox;
  /** A replica not ready this long after spawning is killed (and reported as a failed start). */
  startTimeoutMs: number;
  /** How long a stopping replica may take to finish its in-flight requests. */
  drainTimeoutMs: number;
}

export const DEFAULT_TIMEOUTS: Pick<RuntimeOptions, "startTimeoutMs" | "drainTimeoutMs"> = {
  startTimeoutMs: 10 * 60_000,
  drainTimeoutMs: 5 * 60_000,
};

interface DeploymentEntry {
  spec: ReplicaSpec;
  desired: number;
  replicas: Set<Replica>;
  /** Starts ordered whose replica is not in `replicas` yet (its folders are being made). */
  pending: number;
  /** Being stopped: no replica starts any more. */
  stopping: boolean;
  lastReadyAt: number;
}

/** Until a sink is set, facts go nowhere (nothing runs before the first order anyway). */
const NO_SINK: RuntimeFacts = {
  replicaStarted() {},
  replicaReady() {},
  replicaDraining() {},
  replicaExited() {},
  log() {},
};

/**
 * How long the report that a replica is ready (database work, on this event loop) may wait for the
 * requests the replica got as it became ready (held ones, from a wake) to be answered first.
 */
export const READY_REPORT_WAIT_MS = 200;

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

const unrefTimer: Schedule = (ms, fn) => {
  const timer = setTimeout(fn, ms);
  timer.unref();
  return () => clearTimeout(timer);
};

/**
 * The embedded runtime: every replica is a child process on this machine, in
 * its own process group so that a server command's own children stop with it.
 */
export class ProcessRuntime implements Runtime {
  private readonly deployments = new Map<string, DeploymentEntry>();
  private readonly changes = new EventEmitter();
  private closed = false;
  private observer: RuntimeFacts = NO_SINK;
  /** How each live replica was launched (for reloads and the clean-up after its exit). */
  private readonly launches = new Map<Replica, ReplicaLaunch>();
  private readonly workspace: Workspace;
  private readonly sandbox: Sandbox;
  /** Spawns the replicas' processes, so that this (large) process is not forked for each. */
  private readonly spawner = new Spawner();
  /** Ready replicas whose report is waiting for their first requests to be answered (reportReady). */
  private readonly readyReports = new Map<Replica, () => void>();

  constructor(
    private readonly options: RuntimeOptions,
    private readonly clock: Clock = systemClock,
  ) {
    this.changes.setMaxListeners(0);
    this.workspace = options.workspace;
    this.sandbox = options.sandbox;
  }

  reportTo(sink: RuntimeFacts): void {
    this.observer = sink;
  }

  ready(deploymentId: string): Replica[] {
    const entry = this.deployments.get(deploymentId);
    if (!entry) return [];
    const out: Replica[] = [];
    for (const replica of entry.replicas) if (replica.state === "ready") out.push(replica);
    return out;
  }

  has(deploymentId: string): boolean {
    return this.deployments.has(deploymentId);
  }

  /** Deployments with replicas managed here. */
  deploymentIds(): string[] {
    return [...this.deployments.keys()];
  }

  /** Replicas running or starting (not those being removed). */
  count(deploymentId: string): number {
    let n = 0;
    for (const replica of this.deployments.get(deploymentId)?.replicas ?? []) {
      if (replica.state === "starting" || replica.state === "ready") n++;
    }
    return n;
  }

  replicasOf(deploymentId: string): readonly Replica[] {
    return [...(this.deployments.get(deploymentId)?.replicas ?? [])].filter((r) => r.state !== "stopped");
  }

  /** When a replica of the deployment last became ready (ms), 0 when none has. */
  lastReadyAt(deploymentId: string): number {
    return this.deployments.get(deploymentId)?.lastReadyAt ?? 0;
  }

  /** Resolves on the next replica change of the deployment (or after `ms`). */
  nextChange(deploymentId: string, ms: number): Promise<void> {
    return nextEmit(this.changes, deploymentId, ms);
  }

  /**
   * Makes `desired` replicas of the spec run; replicas of other code are replaced. Resolves once the
   * replicas it starts have been spawned (or have failed before): what waits for it (a wake's database
   * work) does not hold their spawn back.
   */
  ensure(spec: ReplicaSpec, desired: number): Promise<void> {
    if (this.closed) return Promise.resolve();
    let entry = this.deployments.get(spec.deploymentId);
    if (entry && entry.spec.artifactHash !== spec.artifactHash) {
      for (const replica of entry.replicas) void this.stopReplica(entry, replica, "replaced by new code");
    }
    if (!entry) {
      entry = { spec, desired, replicas: new Set(), pending: 0, stopping: false, lastReadyAt: 0 };
      this.deployments.set(spec.deploymentId, entry);
    }
    entry.spec = spec;
    entry.desired = desired;
    return this.scale(entry);
  }

  private scale(entry: DeploymentEntry): Promise<void> {
    if (entry.stopping || this.closed) return Promise.resolve();
    const live = [...entry.replicas].filter((r) => r.state === "starting" || r.state === "ready");
    const spawns: Promise<void>[] = [];
    // Starts under way count, or two orders in a row would start twice as many.
    for (let n = live.length + entry.pending; n < entry.desired; n++) {
      entry.pending++;
      spawns.push(new Promise((spawned) => void this.startReplica(entry, spawned)));
    }
    // Remove not-yet-ready replicas first: they serve nobody yet.
    const surplus = live
      .sort((a, b) => Number(a.state === "ready") - Number(b.state === "ready") || b.startedAt - a.startedAt)
      .slice(0, Math.max(0, live.length - entry.desired));
    for (const replica of surplus) void this.stopReplica(entry, replica, "scaled down");
    return spawns.length === 0 ? Promise.resolve() : Promise.all(spawns).then(() => undefined);
  }

  /**
   * Loads new code into the running replicas in place (same processes), for
   * Hangar's JavaScript model server only. On success the new spec becomes the
   * one later replicas start from. With no ready replica, nothing is loaded
   * and the spec is left to the next start.
   */
  async reload(spec: ReplicaSpec): Promise<{ reloaded: number } | { error: string }> {
    const entry = this.deployments.get(spec.deploymentId);
    const ready = this.ready(spec.deploymentId);
    if (!entry || ready.length === 0) return { reloaded: 0 };
    for (const replica of ready) {
      const launch = this.launches.get(replica);
      if (!launch) continue;
      const dir = await launch.stage(spec);
      const response = await replica.pool.request({
        method: "POST",
        path: "/_hangar/reload",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ dir, config: spec.config ?? {} }),
        headersTimeout: this.options.startTimeoutMs,
        bodyTimeout: this.options.startTimeoutMs,
      });
      const text = await response.body.text();
      if (response.statusCode !== 200) {
        let message = text;
        try {
          message = (JSON.parse(text) as { error?: string }).error ?? text;
        } catch {
          // not JSON: keep the text
        }
        return { error: message };
      }
    }
    entry.spec = spec;
    return { reloaded: ready.length };
  }

  /** Drains and stops every replica of a deployment and forgets it. */
  async stop(deploymentId: string, reason: string): Promise<void> {
    const entry = this.deployments.get(deploymentId);
    if (!entry) return;
    entry.desired = 0;
    entry.stopping = true;
    await Promise.all([...entry.replicas].map((r) => this.stopReplica(entry, r, reason)));
    if (this.deployments.get(deploymentId) === entry) this.deployments.delete(deploymentId);
    this.changes.emit(deploymentId);
  }

  async stopAll(reason: string): Promise<void> {
    this.closed = true;
    await Promise.all([...this.deployments.keys()].map((id) => this.stop(id, reason)));
    this.spawner.close();
    await this.workspace.close();
  }

  /** Starts one replica; `spawned` is called once its process is spawned, or once no process will be. */
  private async startReplica(entry: DeploymentEntry, spawned: () => void): Promise<void> {
    try {
      await this.launchReplica(entry, spawned);
    } finally {
      spawned();
    }
  }

  private async launchReplica(entry: DeploymentEntry, spawned: () => void): Promise<void> {
    const { spec } = entry;
    const id = newId("Replica");
    const dirs = await this.workspace.forReplica(id).finally(() => {
      entry.pending--;
    });
    // Stopped meanwhile, or scaled down below what is already running.
    if (
      entry.stopping ||
      this.closed ||
      this.deployments.get(spec.deploymentId) !== entry ||
      this.count(spec.deploymentId) >= entry.desired
    ) {
      await this.workspace.removeReplica(id);
      return;
    }
    const secret = newReplicaSecret();
    const replica = new Replica(
      id,
      spec.deploymentId,
      spec.artifactHash,
      spec.predictPath,
      this.clock.now(),
      replicaPool(dirs.socket, secret),
    );
    entry.replicas.add(replica);
    let launch: ReplicaLaunch;
    try {
      launch = await this.sandbox.prepare({ id, spec, dirs, runner: MODEL_SERVER });
    } catch (error) {
      // A start that failed before any process existed: reported as one that exited at once.
      this.observer.replicaStarted(replica);
      await this.workspace.removeReplica(id).catch(() => {});
      this.onExit(entry, replica, `could not start: ${(error as Error).message}`);
      return;
    }
    // Stopped meanwhile: by a stop of its deployment, or on its own (scaled down, replaced by new code),
    // which found no process to end and left it to this check. Spawned now, it would run unowned.
    const stoppedMeanwhile = () => entry.stopping || this.closed || replica.state !== "starting";
    if (stoppedMeanwhile()) {
      entry.replicas.delete(replica);
      void replica.pool.destroy().catch(() => {});
      await launch.release().catch(() => {});
      await this.workspace.removeReplica(id).catch(() => {});
      return;
    }
    replica.port = launch.settings.port;
    this.launches.set(replica, launch);
    // stdin carries the runner's settings and then stays open: its end tells the replica to stop, and
    // it ends by itself when this process dies. Its channel, listening at dirs.socket, is fd 3
    // (CHANNEL_FD); the spawner makes it.
    const child = await this.spawner.spawn({
      file: launch.file,
      args: launch.args,
      env: launch.env,
      cwd: launch.cwd,
      socketPath: dirs.socket,
      extraPipes: launch.extraPipes,
    });
    if (stoppedMeanwhile()) {
      // Stopped while it was being spawned: it goes at once, never having served.
      entry.replicas.delete(replica);
      this.launches.delete(replica);
      const gone = new Promise<void>((resolve) => child.once("close", () => resolve()));
      quietPipes(child);
      if (child.pid && child.exitCode === null && child.signalCode === null) {
        try {
          process.kill(-child.pid, "SIGKILL");
        } catch {
          // Already gone.
        }
        await gone;
      }
      void replica.pool.destroy().catch(() => {});
      await launch.release().catch(() => {});
      await this.workspace.removeReplica(id).catch(() => {});
      return;
    }
    replica.child = child;
    replica.spawnedAt = this.clock.now();
    quietPipes(child);
    child.stdin?.write(`${JSON.stringify({ ...launch.settings, secret })}\n`);
    let exitReason = "";
    let exitCode: number | null = null;
    let exitSignal: NodeJS.Signals | null = null;
    const closed = new Promise<void>((resolve) => child.once("close", () => resolve()));
    // Resolves once the exit is reported: whoever waits for the replica to stop finds it recorded.
    replica.exited = closed.then(async () => {
      const explained = await launch.explainExit(exitCode, exitSignal).catch(() => null);
      this.onExit(entry, replica, explained ?? (exitReason || "exited"));
    });
    // Lines are cut, rate-limited and cleaned as they are read (domain/log-lines.ts): a replica's output
    // never costs more than one capped line per stream in memory, however it is written.
    const output = new ReplicaOutput(
      this.clock,
      (stream, line) => this.observer.log(spec.deploymentId, replica.id, stream, line),
      unrefTimer,
    );
    for (const [stream, source] of [
      ["stdout", child.stdout],
      ["stderr", child.stderr],
    ] as const) {
      source?.on("data", (chunk: Buffer) => output.write(stream, chunk));
      source?.once("end", () => output.end(stream));
    }
    child.once("close", () => output.close());
    child.once("error", (error) => {
      exitReason = `could not start: ${error.message}`;
    });
    child.once("exit", (code, signal) => {
      exitCode = code;
      exitSignal = signal;
      exitReason ||= signal ? `killed by ${signal}` : `exited with code ${code}`;
    });
    this.observer.replicaStarted(replica);
    spawned();
    this.observer.log(
      spec.deploymentId,
      replica.id,
      "system",
      `replica started (pid ${child.pid}${launch.settings.port === null ? "" : `, port ${launch.settings.port}`})`,
    );
    void replica.exited.then(async () => {
      this.launches.delete(replica);
      await launch.release().catch(() => {});
      await this.workspace.removeReplica(replica.id).catch(() => {});
    });
    const note = await launch.attach(child).catch((error: Error) => error.message);
    if (note) this.observer.log(spec.deploymentId, replica.id, "system", note);
    if (launch.settings.awaitNetwork) {
      child.stdin?.write(`${JSON.stringify({ network: note === null ? "up" : "none" })}\n`);
    }
    await this.probe(entry, replica, spec.readinessPath);
  }

  private async probe(entry: DeploymentEntry, replica: Replica, readinessPath: string): Promise<void> {
    const deadline = this.clock.now() + this.options.startTimeoutMs;
    const spawnedAt = this.clock.now();
    while (replica.state === "starting") {
      if (this.clock.now() > deadline) {
        this.observer.log(
          replica.deploymentId,
          replica.id,
          "system",
          "replica not ready in time; stopping it",
        );
        this.kill(replica, "SIGKILL");
        return;
      }
      try {
        const response = await replica.pool.request({
          method: "GET",
          path: readinessPath,
          headersTimeout: 2_000,
          bodyTimeout: 2_000,
        });
        await response.body.dump();
        if (response.statusCode === 200 && replica.state === "starting") {
          replica.state = "ready";
          replica.readyAt = this.clock.now();
          entry.lastReadyAt = replica.readyAt;
          // Held requests go first: they are sent on within this turn of the event loop, and the fact,
          // whose recording is database work on this same event loop, waits for their answers.
          this.changes.emit(replica.deploymentId);
          this.reportReady(replica);
          return;
        }
      } catch {
        // Not listening yet.
      }
      // Probe tightly at first: a request waiting on a wake-up pays for every millisecond between the
      // replica becoming ready and us noticing. Loopback probes are cheap; slow loaders get fewer.
      const age = this.clock.now() - spawnedAt;
      await sleep(age < 5_000 ? 5 : age < 60_000 ? 50 : 250);
    }
  }

  /**
   * Reports that the replica is ready once the requests sent to it as it became ready (those a wake
   * held, sent on in the same turn of the event loop) have been answered, at most READY_REPORT_WAIT_MS
   * later: the sink records the fact in the database, on this event loop, and would otherwise hold back
   * those answers. A later fact about the replica (draining, exited) reports it first.
   */
  private reportReady(replica: Replica): void {
    const report = () => {
      if (this.readyReports.get(replica) !== report) return;
      this.readyReports.delete(replica);
      this.observer.replicaReady(replica);
      this.observer.log(replica.deploymentId, replica.id, "system", "replica ready");
    };
    this.readyReports.set(replica, report);
    setImmediate(() => {
      // A turn later again, so that the last answer's bytes are written out first (a response's end is
      // flushed on the next tick, after the microtasks that the recording would fill).
      if (this.readyReports.get(replica) === report)
        replica.whenAnswered(() => setImmediate(report), READY_REPORT_WAIT_MS);
    });
  }

  /** Reports now that the replica is ready, when that report is still waiting (reportReady). */
  private readyReportFirst(replica: Replica): void {
    this.readyReports.get(replica)?.();
  }

  /** Reports the exit and forgets the replica; whether to start another is the sink's decision. */
  private onExit(entry: DeploymentEntry, replica: Replica, reason: string): void {
    this.readyReportFirst(replica);
    const wasState = replica.state;
    replica.state = "stopped";
    entry.replicas.delete(replica);
    void replica.pool.destroy().catch(() => {});
    const ordered = wasState === "draining" || entry.stopping || this.closed;
    if (!ordered) this.observer.log(replica.deploymentId, replica.id, "system", `replica ${reason}`);
    this.observer.replicaExited(replica, {
      reason,
      kind: ordered ? "stop" : wasState === "starting" ? "start" : "crash",
    });
    this.changes.emit(replica.deploymentId);
  }

  /** Takes the replica out of rotation, lets in-flight requests finish, then stops it. */
  private async stopReplica(entry: DeploymentEntry, replica: Replica, reason: string): Promise<void> {
    if (replica.state === "stopped") return;
    if (replica.state !== "draining") {
      this.readyReportFirst(replica);
      const wasReady = replica.state === "ready";
      replica.state = "draining";
      if (wasReady) this.observer.replicaDraining(replica);
      this.changes.emit(entry.spec.deploymentId);
      const deadline = this.clock.now() + this.options.drainTimeoutMs;
      while (replica.inFlight > 0 && this.clock.now() < deadline) await sleep(10);
      this.observer.log(replica.deploymentId, replica.id, "system", `stopping replica: ${reason}`);
      // The end of stdin is the runner's stop order (as SIGTERM is), fenced or not.
      replica.child?.stdin?.end();
      const timer = setTimeout(() => this.kill(replica, "SIGKILL"), 10_000);
      await replica.exited;
      clearTimeout(timer);
    } else {
      await replica.exited;
    }
  }

  private kill(replica: Replica, signal: NodeJS.Signals): void {
    const pid = replica.pid;
    if (!pid || replica.child?.exitCode !== null || replica.child?.signalCode !== null) return;
    try {
      process.kill(-pid, signal);
    } catch {
      // Already gone.
    }
  }
}

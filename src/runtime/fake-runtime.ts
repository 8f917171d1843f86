/**
 * An in-memory Runtime for tests: no processes. Replicas start when ordered
 * and then wait; they become ready, fail to start or crash when the test
 * says, and the facts go to the sink as a real runtime would report them.
 */

import { EventEmitter } from "node:events";
import { Pool } from "undici";
import { type Clock, systemClock } from "../domain/clock.ts";
import { newId } from "../domain/ids.ts";
import type { ReplicaSpec } from "./build.ts";
import { nextEmit } from "./changes.ts";
import { Replica } from "./replica.ts";
import type { ReplicaExit, Runtime, RuntimeFacts } from "./runtime.ts";

interface Entry {
  spec: ReplicaSpec;
  desired: number;
  replicas: Set<Replica>;
  lastReadyAt: number;
}

export class FakeRuntime implements Runtime {
  private readonly deployments = new Map<string, Entry>();
  private readonly changes = new EventEmitter();
  private sink: RuntimeFacts | null = null;
  private closed = false;
  /** Every order received, in order (for assertions). */
  readonly orders: string[] = [];
  /** Replicas ever started, per deployment. */
  readonly started = new Map<string, number>();
  /** While true, a started replica's spawn waits for releaseSpawns() (it is counted, but not reported started). */
  holdSpawns = false;
  private readonly heldSpawns: (() => void)[] = [];

  constructor(private readonly clock: Clock = systemClock) {
    this.changes.setMaxListeners(0);
  }

  reportTo(sink: RuntimeFacts): void {
    this.sink = sink;
  }

  private get facts(): RuntimeFacts {
    if (!this.sink) throw new Error("FakeRuntime: an order came before reportTo()");
    return this.sink;
  }

  ensure(spec: ReplicaSpec, replicas: number): Promise<void> {
    if (this.closed) return Promise.resolve();
    this.orders.push(`ensure ${spec.deploymentId} ${replicas}`);
    let entry = this.deployments.get(spec.deploymentId);
    if (entry && entry.spec.artifactHash !== spec.artifactHash) {
      for (const replica of entry.replicas)
        this.remove(replica, { kind: "stop", reason: "replaced by new code" });
    }
    if (!entry) {
      entry = { spec, desired: replicas, replicas: new Set(), lastReadyAt: 0 };
      this.deployments.set(spec.deploymentId, entry);
    }
    entry.spec = spec;
    entry.desired = replicas;
    const live = this.live(spec.deploymentId);
    const spawns: Promise<void>[] = [];
    for (let n = live.length; n < replicas; n++) spawns.push(this.startOne(entry));
    const surplus = live
      .sort((a, b) => Number(a.state === "ready") - Number(b.state === "ready"))
      .slice(0, Math.max(0, live.length - replicas));
    for (const replica of surplus) this.remove(replica, { kind: "stop", reason: "scaled down" });
    return Promise.all(spawns).then(() => undefined);
  }

  /** The spawns held back while holdSpawns was true happen now. */
  releaseSpawns(): void {
    this.holdSpawns = false;
    for (const spawn of this.heldSpawns.splice(0)) spawn();
  }

  async reload(spec: ReplicaSpec): Promise<{ reloaded: number } | { error: string }> {
    this.orders.push(`reload ${spec.deploymentId}`);
    const entry = this.deployments.get(spec.deploymentId);
    const ready = this.ready(spec.deploymentId);
    if (!entry || ready.length === 0) return { reloaded: 0 };
    entry.spec = spec;
    return { reloaded: ready.length };
  }

  async stop(deploymentId: string, reason: string): Promise<void> {
    const entry = this.deployments.get(deploymentId);
    if (!entry) return;
    this.orders.push(`stop ${deploymentId}`);
    this.deployments.delete(deploymentId);
    for (const replica of entry.replicas) this.remove(replica, { kind: "stop", reason });
  }

  async stopAll(reason: string): Promise<void> {
    this.closed = true;
    for (const id of [...this.deployments.keys()]) await this.stop(id, reason);
  }

  ready(deploymentId: string): Replica[] {
    return [...(this.deployments.get(deploymentId)?.replicas ?? [])].filter((r) => r.state === "ready");
  }

  nextChange(deploymentId: string, ms: number): Promise<void> {
    return nextEmit(this.changes, deploymentId, ms);
  }

  /** The spec last ordered for the deployment (for assertions), while it runs here. */
  specOf(deploymentId: string): ReplicaSpec | undefined {
    return this.deployments.get(deploymentId)?.spec;
  }

  has(deploymentId: string): boolean {
    return this.deployments.has(deploymentId);
  }

  deploymentIds(): string[] {
    return [...this.deployments.keys()];
  }

  count(deploymentId: string): number {
    return this.live(deploymentId).length;
  }

  replicasOf(deploymentId: string): readonly Replica[] {
    return [...(this.deployments.get(deploymentId)?.replicas ?? [])].filter((r) => r.state !== "stopped");
  }

  lastReadyAt(deploymentId: string): number {
    return this.deployments.get(deploymentId)?.lastReadyAt ?? 0;
  }

  // What the test says happens.

  /** The starting replicas of the deployment (all, or the first `n`) become ready. */
  becomeReady(deploymentId: string, n = Number.POSITIVE_INFINITY): number {
    const entry = this.deployments.get(deploymentId);
    let done = 0;
    for (const replica of entry?.replicas ?? []) {
      if (done >= n || replica.state !== "starting") continue;
      replica.state = "ready";
      replica.readyAt = this.clock.now();
      if (entry) entry.lastReadyAt = replica.readyAt;
      done++;
      this.changes.emit(deploymentId);
      this.facts.replicaReady(replica);
    }
    return done;
  }

  /** A starting replica of the deployment exits before it is ready. */
  failStart(deploymentId: string, reason = "exited with code 1"): boolean {
    const replica = this.live(deploymentId).find((r) => r.state === "starting");
    if (replica) this.remove(replica, { kind: "start", reason });
    return Boolean(replica);
  }

  /** A ready replica of the deployment exits on its own. */
  crash(deploymentId: string, reason = "killed by SIGKILL"): boolean {
    const replica = this.ready(deploymentId)[0];
    if (replica) this.remove(replica, { kind: "crash", reason });
    return Boolean(replica);
  }

  private live(deploymentId: string): Replica[] {
    return [...(this.deployments.get(deploymentId)?.replicas ?? [])].filter(
      (r) => r.state === "starting" || r.state === "ready",
    );
  }

  private startOne(entry: Entry): Promise<void> {
    const { spec } = entry;
    const replica = new Replica(
      newId("Replica"),
      spec.deploymentId,
      spec.artifactHash,
      spec.predictPath,
      this.clock.now(),
      // Never connected: the fake's replicas are not called over HTTP.
      new Pool("http://127.0.0.1:1"),
    );
    entry.replicas.add(replica);
    this.started.set(spec.deploymentId, (this.started.get(spec.deploymentId) ?? 0) + 1);
    if (!this.holdSpawns) {
      this.facts.replicaStarted(replica);
      return Promise.resolve();
    }
    return new Promise((spawned) => {
      this.heldSpawns.push(() => {
        if (replica.state !== "stopped") this.facts.replicaStarted(replica);
        spawned();
      });
    });
  }

  private remove(replica: Replica, exit: ReplicaExit): void {
    if (replica.state === "stopped") return;
    if (exit.kind === "stop" && replica.state === "ready") {
      replica.state = "draining";
      this.facts.replicaDraining(replica);
    }
    replica.state = "stopped";
    this.deployments.get(replica.deploymentId)?.replicas.delete(replica);
    void replica.pool.destroy().catch(() => {});
    this.facts.replicaExited(replica, exit);
    this.changes.emit(replica.deploymentId);
  }
}

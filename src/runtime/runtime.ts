/**
 * The runtime port: where replicas actually run. It takes orders (run n
 * replicas of a spec, stop a deployment, reload its code) and reports facts
 * to one sink (started, ready, draining, exited with why, log lines). It
 * holds no policy: what an exit means (retry, DEPLOY_FAILED, UNHEALTHY) is the
 * deployment controller's, by domain/deployment-lifecycle.ts.
 */
import type { ReplicaSpec } from "./build.ts";
import type { Replica } from "./replica.ts";

export type LogStream = "stdout" | "stderr" | "system";

/** How a replica ended, from the runtime's point of view. */
export interface ReplicaExit {
  reason: string;
  /**
   * "start": it exited (or was killed for being late) before it was ready — a failed start;
   * "crash": it exited on its own after it was ready;
   * "stop": it was stopped by an order (scaled down, replaced, deployment stopped).
   */
  kind: "start" | "crash" | "stop";
}

/** Facts the runtime reports; the sink decides what they mean. */
export interface RuntimeFacts {
  replicaStarted(replica: Replica): void;
  /**
   * The replica is ready (it is in `ready()` from then on). Reported once the requests it got as it
   * became ready have been answered, so that recording it does not delay them; always before any
   * later fact about the replica.
   */
  replicaReady(replica: Replica): void;
  /** The replica takes no new requests and is finishing its in-flight ones before it stops. */
  replicaDraining(replica: Replica): void;
  replicaExited(replica: Replica, exit: ReplicaExit): void;
  log(deploymentId: string, replicaId: string | null, stream: LogStream, line: string): void;
}

/** What the gateway needs to route: ready replicas, and a signal when they change. */
export interface ReplicaRouter {
  /** Ready replicas that may take a new request. */
  ready(deploymentId: string): Replica[];
  /** Resolves on the next replica change of the deployment (or after `ms`). */
  nextChange(deploymentId: string, ms: number): Promise<void>;
}

export interface Runtime extends ReplicaRouter {
  /** Where facts go; set once, by the one that gives the orders, before the first. */
  reportTo(sink: RuntimeFacts): void;
  /**
   * Makes `replicas` replicas of the spec run (starting or ready): starts the
   * missing ones, removes surplus ones; replicas of other code are replaced.
   * Resolves once the replicas it starts have been spawned (reported started)
   * or have failed before: database work that waits for it does not hold a
   * spawn back.
   */
  ensure(spec: ReplicaSpec, replicas: number): Promise<void>;
  /** Loads new code into the ready replicas in place; with none ready, loads nothing. */
  reload(spec: ReplicaSpec): Promise<{ reloaded: number } | { error: string }>;
  /** Drains and stops every replica of a deployment and forgets it. */
  stop(deploymentId: string, reason: string): Promise<void>;
  /** Stops everything and takes no more orders (shutdown). */
  stopAll(reason: string): Promise<void>;
  /** Whether the deployment has replicas managed here (since its first ensure, until stop). */
  has(deploymentId: string): boolean;
  deploymentIds(): string[];
  /** Replicas starting or ready (not those being removed). */
  count(deploymentId: string): number;
  /** Every replica of the deployment managed here, in any state but stopped (for hangar_replicas). */
  replicasOf(deploymentId: string): readonly Replica[];
  /** When a replica of the deployment last became ready (ms), 0 when none has. */
  lastReadyAt(deploymentId: string): number;
}

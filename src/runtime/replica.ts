import type { ChildProcess } from "node:child_process";
import type { Dispatcher } from "undici";

export type ReplicaState = "starting" | "ready" | "draining" | "stopped";

/**
 * One replica process as this Hangar process sees it. The gateway reads
 * `state` and bumps `inFlight`; the runtime owns everything else.
 */
export class Replica {
  state: ReplicaState = "starting";
  inFlight = 0;
  readyAt: number | null = null;
  child: ChildProcess | null = null;
  /** Resolves when the process has exited. */
  exited: Promise<void> = Promise.resolve();

  constructor(
    readonly id: string,
    readonly deploymentId: string,
    readonly artifactHash: string,
    readonly predictPath: string,
    /** When it was spawned (ms, by the runtime's clock). */
    readonly startedAt: number,
    /** Keep-alive connections to the replica (runtime/replica-channel.ts). */
    readonly pool: Dispatcher & { destroy(): Promise<void> },
  ) {}

  /** The TCP port a server command listens on (private to the replica when fenced); null for Hangar's model server. */
  port: number | null = null;

  get pid(): number | null {
    return this.child?.pid ?? null;
  }
}

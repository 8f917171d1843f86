import type { ChildProcess } from "node:child_process";
import { Pool } from "undici";

export type ReplicaState = "starting" | "ready" | "draining" | "stopped";

/**
 * One replica process as this Hangar process sees it. The gateway reads
 * `state` and bumps `inFlight`; the runtime owns everything else.
 */
export class Replica {
  state: ReplicaState = "starting";
  inFlight = 0;
  readonly pool: Pool;
  readyAt: number | null = null;
  child: ChildProcess | null = null;
  /** Resolves when the process has exited. */
  exited: Promise<void> = Promise.resolve();

  constructor(
    readonly id: string,
    readonly deploymentId: string,
    readonly artifactHash: string,
    readonly port: number,
    readonly predictPath: string,
    /** When it was spawned (ms, by the runtime's clock). */
    readonly startedAt: number,
  ) {
    // Keep-alive connections to the replica: one socket per concurrent request.
    this.pool = new Pool(`http://127.0.0.1:${port}`, {
      connections: 256,
      pipelining: 1,
      keepAliveTimeout: 60_000,
    });
  }

  get pid(): number | null {
    return this.child?.pid ?? null;
  }
}

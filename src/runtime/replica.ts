import type { Dispatcher } from "undici";
import type { ReplicaProcess } from "./spawner.ts";

export type ReplicaState = "starting" | "ready" | "draining" | "stopped";

/**
 * One replica process as this Hangar process sees it. The gateway reads
 * `state` and bumps `inFlight`; the runtime owns everything else.
 */
export class Replica {
  state: ReplicaState = "starting";
  private requests = 0;
  /** whenAnswered: how many more requests must finish before `answered` is called. */
  private awaited = 0;
  private answered: (() => void) | null = null;
  readyAt: number | null = null;
  /** When its process was spawned (ms), once it is. */
  spawnedAt: number | null = null;
  child: ReplicaProcess | null = null;
  /** Resolves when the process has exited. */
  exited: Promise<void> = Promise.resolve();

  constructor(
    readonly id: string,
    readonly deploymentId: string,
    readonly artifactHash: string,
    readonly predictPath: string,
    /** When its start was ordered (ms, by the runtime's clock). */
    readonly startedAt: number,
    /** Keep-alive connections to the replica (runtime/replica-channel.ts). */
    readonly pool: Dispatcher & { destroy(): Promise<void> },
  ) {}

  /** The TCP port a server command listens on (private to the replica when fenced); null for Hangar's model server. */
  port: number | null = null;

  /** Requests the gateway has sent to the replica and not finished yet. */
  get inFlight(): number {
    return this.requests;
  }

  set inFlight(count: number) {
    const finished = count < this.requests;
    this.requests = count;
    if (finished && this.answered && --this.awaited <= 0) {
      const answered = this.answered;
      this.answered = null;
      answered();
    }
  }

  /**
   * Calls `fn` once as many requests have finished as are in flight now (at once when none is), or
   * after `ms` at the latest: what waits behind the requests a replica got as it became ready.
   */
  whenAnswered(fn: () => void, ms: number): void {
    if (this.requests === 0) {
      fn();
      return;
    }
    let called = false;
    const once = () => {
      if (called) return;
      called = true;
      clearTimeout(timer);
      if (this.answered === once) this.answered = null;
      fn();
    };
    const timer = setTimeout(once, ms);
    timer.unref();
    this.awaited = this.requests;
    this.answered = once;
  }

  get pid(): number | null {
    return this.child?.pid ?? null;
  }
}

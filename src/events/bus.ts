import { EventEmitter } from "node:events";
import type { Database, Tx } from "../db/client.ts";
import type { DeploymentStatus, ModelEventType } from "../generated/prisma/enums.ts";

/**
 * Change notifications. Every change is announced with NOTIFY inside the
 * transaction that makes it, so PostgreSQL delivers it only on commit, to
 * every Hangar process sharing the database (this one included). Payloads are
 * small pointers; readers fetch the rows, so a missed or merged notice never
 * loses data, only a little latency.
 */
export const CHANNEL = "hangar_changes";

export type Change =
  /** A model event row was committed (seq is the per-model cursor). */
  | {
      kind: "event";
      modelId: string;
      seq: number;
      deploymentId?: string | null;
      environmentId?: string | null;
      promotionId?: string | null;
      /** The event's type, and for DEPLOYMENT_STATUS_CHANGED the status moved to (older notices lack both). */
      type?: ModelEventType;
      deploymentStatus?: DeploymentStatus | null;
    }
  /** Something about a deployment changed that is not an event: replica counts. */
  | { kind: "deployment"; modelId: string; deploymentId: string }
  /** New log lines were written for a deployment. */
  | { kind: "logs"; deploymentId: string }
  /** Webhook deliveries were queued (store/webhooks.ts): the webhook workers look for work. */
  | { kind: "webhooks" }
  /**
   * The notices between two moments were lost (the database connection was down): every cache and
   * every reader must look again. Emitted locally, never sent.
   */
  | { kind: "resync" };

export async function announce(tx: Tx, change: Change): Promise<void> {
  await tx.$executeRaw`SELECT pg_notify(${CHANNEL}, ${JSON.stringify(change)})`;
}

export class ChangeBus {
  private readonly emitter = new EventEmitter();
  private unlisten: (() => Promise<void>) | null = null;
  private unwatch: (() => void) | null = null;

  constructor() {
    // One listener per open subscription; thousands are expected.
    this.emitter.setMaxListeners(0);
  }

  async start(db: Database): Promise<void> {
    this.unlisten = await db.listen(CHANNEL, (payload) => {
      let change: Change;
      try {
        change = JSON.parse(payload) as Change;
      } catch {
        return;
      }
      this.emitter.emit("change", change);
    });
    this.unwatch = db.onConnection((event) => {
      if (event.kind === "restored") this.emitter.emit("change", { kind: "resync" } satisfies Change);
    });
  }

  async stop(): Promise<void> {
    this.unwatch?.();
    await this.unlisten?.();
    this.unlisten = null;
  }

  /** Announces a change that has no transaction (tests, in-process signals). */
  emitLocal(change: Change): void {
    this.emitter.emit("change", change);
  }

  on(listener: (change: Change) => void): () => void {
    this.emitter.on("change", listener);
    return () => this.emitter.off("change", listener);
  }
}

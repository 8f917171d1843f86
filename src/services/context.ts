import type { Config } from "../config.ts";
import type { Database, Tx } from "../db/client.ts";
import type { Access } from "../domain/access.ts";
import type { Clock } from "../domain/clock.ts";
import type { ChangeBus } from "../events/bus.ts";
import { withActor } from "../events/log.ts";
import type { Deployment } from "../generated/prisma/client.ts";
import type { Logger } from "../logger.ts";
import type { TrafficFigures } from "../metrics/traffic-figures.ts";
import type { IsolationReport } from "../runtime/isolation.ts";
import type { ArtifactStore } from "../store/artifacts.ts";
import { isWriteConflict } from "../store/errors.ts";
import type { LogWriter } from "../store/logs.ts";

/** Loads new code into a running development deployment (the deployment controller). */
export interface CodeReloader {
  reloadCode(
    deployment: Deployment,
    artifactHash: string,
    commit: (how: "in place" | "at next start") => Promise<void>,
  ): Promise<{ applied: true } | { applied: false; error: string }>;
}

/** What every use case needs; built once by the composition root. */
export interface ServiceContext {
  config: Config;
  db: Database;
  bus: ChangeBus;
  artifacts: ArtifactStore;
  logs: LogWriter;
  log: Logger;
  /** Every rule that reads the time reads it here (a fake clock in controller tests). */
  clock: Clock;
  /** This start's id: the owner of the leases its controllers hold and of the replicas it runs. */
  member: string;
  /** The member's name (HANGAR_MEMBER_NAME; serverInfo's `member`). */
  memberName: string;
  /** What the runtime can enforce on replicas, decided at start (serverInfo's `sandbox` and `limits`). */
  isolation: IsolationReport;
  /** Set once the deployment controller exists (it is built from this context). */
  reloader?: CodeReloader;
  /** Every member's traffic figures (Deployment.metrics and the like); set by the composition root. */
  figures?: TrafficFigures;
}

/** A use case asked for by a client: what its key allows is part of the rules. */
export interface RequestContext extends ServiceContext {
  access: Access;
}

/**
 * One transaction of a use case. Events it appends name the caller's key as
 * their actor; controllers open their own transactions and leave it null.
 */
export function transaction<T>(
  ctx: ServiceContext | RequestContext,
  run: (tx: Tx) => Promise<T>,
): Promise<T> {
  const actor = "access" in ctx ? ctx.access.name : null;
  const attempt = () => ctx.db.prisma.$transaction((tx) => run(actor === null ? tx : withActor(tx, actor)));
  return retryConflicts(attempt);
}

/** How often a use case's transaction is tried when PostgreSQL aborts it for a deadlock. */
const CONFLICT_ATTEMPTS = 3;

/**
 * Runs a transaction again when PostgreSQL chose it as a deadlock's victim: it did nothing, and the
 * caller would otherwise get an internal error for a race it cannot see.
 */
async function retryConflicts<T>(attempt: () => Promise<T>): Promise<T> {
  for (let n = 1; ; n++) {
    try {
      return await attempt();
    } catch (error) {
      if (n >= CONFLICT_ATTEMPTS || !isWriteConflict(error)) throw error;
      await new Promise((resolve) => setTimeout(resolve, 5 + Math.random() * 20 * n));
    }
  }
}

/**
 * Retention (API.md section 8): log lines older than HANGAR_RETENTION_DAYS go, and so do artifacts no
 * deployment has referenced for that long; what a killed process left half-done in the artifact store
 * goes too. A sweep runs at start and then hourly.
 *
 * What "referenced" means, so that nothing that can still run loses its code:
 * - a deployment row in any status but DELETED references its artifact: it is never removed (and is
 *   marked used at every sweep, which is how "unreferenced for N days" is measured once it stops being
 *   referenced: a development deployment's old code after a push or a patch, say);
 * - a DELETED deployment references its artifact until N days after its deletedAt;
 * - an artifact just stored or deduplicated by a push is marked used by the store itself, so a sweep
 *   between the upload and the transaction that writes its deployment row leaves it alone.
 */
import type { Database } from "../db/client.ts";
import type { Clock } from "../domain/clock.ts";
import type { Logger } from "../logger.ts";
import type { ArtifactStore } from "../store/artifacts.ts";

const DAY_MS = 24 * 60 * 60 * 1000;

export interface RetentionOptions {
  db: Database;
  artifacts: ArtifactStore;
  retentionDays: number;
  clock: Clock;
  log: Logger;
  /** Between sweeps. */
  intervalMs?: number;
  /** Log lines looked at per DELETE: each statement is short, so a big table is never locked for long. */
  batchSize?: number;
  /** Temporary work older than this is a leftover (younger may be a put still running, maybe elsewhere). */
  leftoverAgeMs?: number;
}

export interface SweepResult {
  logLines: number;
  artifacts: number;
  leftovers: number;
  /** Browser sessions and sign-in links that ended (or expired) a day ago or more. */
  sessions: number;
  /** Hangar processes (Member rows) last seen a day ago or more, with no replica left unstopped. */
  members: number;
}

export class Retention {
  private readonly intervalMs: number;
  private readonly batchSize: number;
  private readonly leftoverAgeMs: number;
  private timer: NodeJS.Timeout | null = null;
  private running: Promise<unknown> = Promise.resolve();

  constructor(private readonly opts: RetentionOptions) {
    this.intervalMs = opts.intervalMs ?? 60 * 60 * 1000;
    this.batchSize = opts.batchSize ?? 5000;
    this.leftoverAgeMs = opts.leftoverAgeMs ?? 10 * 60 * 1000;
  }

  /** Sweeps now, then every interval; a failed sweep (the database away, say) is logged and retried then. */
  start(): void {
    const run = () => {
      this.running = this.sweep().then(
        (result) => {
          if (result.logLines + result.artifacts + result.leftovers + result.sessions + result.members > 0)
            this.opts.log.info(result, "retention sweep");
        },
        (error: unknown) =>
          this.opts.log.warn({ err: error }, "retention sweep failed; retrying at the next one"),
      );
    };
    run();
    this.timer = setInterval(run, this.intervalMs);
    this.timer.unref();
  }

  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    await this.running;
  }

  async sweep(): Promise<SweepResult> {
    const cutoff = this.opts.clock.now() - this.opts.retentionDays * DAY_MS;
    const leftovers = await this.opts.artifacts.sweep(this.leftoverAgeMs);
    const logLines = await this.sweepLogs(new Date(cutoff));
    const artifacts = await this.sweepArtifacts(cutoff);
    const dayAgo = new Date(this.opts.clock.now() - DAY_MS);
    const sessions = await this.sweepSessions(dayAgo);
    const members = await this.sweepMembers(dayAgo);
    return { logLines, artifacts, leftovers, sessions, members };
  }

  /**
   * Ended sessions and spent sign-in links are no use to anyone: they go a day
   * after they stopped counting (kept that long to explain a sign-in problem).
   */
  private async sweepSessions(before: Date): Promise<number> {
    const { prisma } = this.opts.db;
    const sessions = await prisma.session.deleteMany({
      where: { OR: [{ endedAt: { lt: before } }, { expiresAt: { lt: before } }] },
    });
    const links = await prisma.signInLink.deleteMany({ where: { expiresAt: { lt: before } } });
    return sessions.count + links.count;
  }

  /**
   * A Hangar process's row outlives it while usage may still need its last heartbeat: while a replica
   * it ran is not marked stopped (store/members.ts). One row per start, so they go a day after.
   */
  private async sweepMembers(before: Date): Promise<number> {
    const { prisma } = this.opts.db;
    const running = await prisma.replica.findMany({
      where: { stoppedAt: null },
      distinct: ["owner"],
      select: { owner: true },
    });
    const gone = await prisma.member.deleteMany({
      where: { lastSeenAt: { lt: before }, id: { notIn: running.map((r) => r.owner) } },
    });
    return gone.count;
  }

  /**
   * Deletes log lines older than the cutoff, a batch at a time in id order. Ids grow with time (a line's
   * `at` is when it was written), so the old lines are the first ones: the walk stops at the first batch
   * that holds a newer line, and never reads the rest of the table. A line out of order by a few seconds
   * (another member's clock) goes at a later sweep.
   */
  private async sweepLogs(cutoff: Date): Promise<number> {
    let after = -1n;
    let deleted = 0;
    for (;;) {
      const [row] = await this.opts.db.prisma.$queryRaw<
        { deleted: number; last: bigint | null; newer: number }[]
      >`
        WITH batch AS (
          SELECT id, at FROM "LogLine" WHERE id > ${after} ORDER BY id LIMIT ${this.batchSize}
        ), gone AS (
          DELETE FROM "LogLine" l USING batch b WHERE l.id = b.id AND b.at < ${cutoff} RETURNING l.id
        )
        SELECT (SELECT count(*) FROM gone)::int AS deleted,
               (SELECT max(id) FROM batch) AS last,
               (SELECT count(*) FROM batch WHERE at >= ${cutoff})::int AS newer`;
      deleted += row?.deleted ?? 0;
      if (!row || row.last === null || row.newer > 0) return deleted;
      after = row.last;
    }
  }

  private async sweepArtifacts(cutoff: number): Promise<number> {
    const { artifacts, clock } = this.opts;
    // Read first, and fail the sweep if the database cannot say: never remove on a guess.
    const rows = await this.opts.db.prisma.$queryRaw<
      { artifactHash: string; live: boolean; deletedAt: Date | null }[]
    >`
      SELECT "artifactHash",
             bool_or(status <> 'DELETED' OR "deletedAt" IS NULL) AS live,
             max("deletedAt") AS "deletedAt"
      FROM "Deployment" GROUP BY "artifactHash"`;
    const references = new Map(rows.map((r) => [r.artifactHash, r]));
    const now = new Date(clock.now());
    // Counted once each, whether this disk's copy, the shared one or both went.
    const removed = new Set<string>();
    for (const { hash, usedAt } of await artifacts.stored()) {
      const reference = references.get(hash);
      if (reference?.live) {
        await artifacts.markUsed(hash, now);
        continue;
      }
      const lastUse = Math.max(usedAt, reference?.deletedAt?.getTime() ?? 0);
      if (lastUse < cutoff && (await artifacts.remove(hash, cutoff))) removed.add(hash);
    }
    // The members' shared copies, by the same rule (this disk's copy above is one member's cache). A live
    // deployment's upload stays however long ago it was pushed: another member may have to fetch it.
    for (const { hash, usedAt } of (await artifacts.shared?.list()) ?? []) {
      const reference = references.get(hash);
      if (reference?.live) continue;
      const lastUse = Math.max(usedAt, reference?.deletedAt?.getTime() ?? 0);
      if (lastUse < cutoff && (await artifacts.shared?.remove(hash, cutoff))) removed.add(hash);
    }
    return removed.size;
  }
}

/**
 * Traffic counts shared by the members of one Hangar (API.md section 10). A request is counted once, by
 * the member it entered (it may be served by another's replica); each member writes its seconds to the
 * TrafficSecond table about every second, and the readers (the autoscaler of the deployment's owner, the
 * canary of the promotion's driver) add the other members' rows to their own live meter. With the
 * embedded database there are no other members: NO_OTHER_MEMBERS answers nothing, and nothing is written.
 */
import type { Clock } from "../domain/clock.ts";
import type { PrismaClient } from "../generated/prisma/client.ts";
import type { Logger } from "../logger.ts";
import {
  type ConcurrencyQuery,
  insertColdStarts,
  otherMembersAnswers,
  otherMembersConcurrency,
  pruneColdStarts,
  pruneTrafficMinutes,
  pruneTrafficSeconds,
  type RemoteConcurrency,
  rollUpTrafficMinutes,
  writeTrafficSeconds,
} from "../store/traffic.ts";
import type { ColdStartRecords, TrafficSeconds } from "./traffic.ts";

/** What the other members counted. */
export interface OtherMembersTraffic {
  concurrency(queries: readonly ConcurrencyQuery[]): Promise<Map<string, RemoteConcurrency>>;
  /** Answers of the deployment from `sinceSecond` (ms / 1000) on, and what is in flight now. */
  answers(
    deploymentId: string,
    sinceSecond: number,
  ): Promise<{ answered: number; failed: number; inFlight: number }>;
}

export const NO_OTHER_MEMBERS: OtherMembersTraffic = {
  concurrency: async () => new Map(),
  answers: async () => ({ answered: 0, failed: 0, inFlight: 0 }),
};

/** Between writes of this member's seconds. */
export const WRITE_INTERVAL_MS = 1_000;
/** Rows older than this go: the longest autoscaling window (an hour) is the longest any reader looks back. */
export const KEEP_SECONDS = 3600 + 60;
/** The minute roll-up is kept this long: metricsSeries reaches 24 h back (API.md section 11). */
export const KEEP_MINUTES = 25 * 60;
/** Cold-start records are kept this long. */
export const KEEP_COLD_STARTS_MS = 7 * 24 * 3600_000;
/** A write that failed (the database away) is made up for by the next, up to this far back. */
const CATCH_UP_SECONDS = 60;
const PRUNE_EVERY_WRITES = 60;

export class SharedTraffic implements OtherMembersTraffic {
  private timer: NodeJS.Timeout | null = null;
  /** The first second the next write covers: the last write's current second is written again. */
  private from: number;
  private writes = 0;
  private writing: Promise<void> = Promise.resolve();

  constructor(
    private readonly prisma: PrismaClient,
    private readonly memberId: string,
    private readonly source: TrafficSeconds & ColdStartRecords,
    private readonly clock: Clock,
    private readonly log: Logger,
  ) {
    this.from = this.second();
  }

  start(): void {
    this.timer = setInterval(() => void this.write(), WRITE_INTERVAL_MS);
    this.timer.unref();
  }

  /** Stops writing, after one last write of what was counted. */
  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    await this.write();
  }

  /** Writes the seconds since the last write (one write at a time). */
  write(): Promise<void> {
    this.writing = this.writing.then(async () => {
      const now = this.second();
      const from = Math.max(this.from, now - CATCH_UP_SECONDS);
      let coldStarts = this.source.takeColdStarts();
      try {
        const rows = this.source.secondsSince(from);
        await writeTrafficSeconds(this.prisma, this.memberId, rows);
        if (rows.length > 0) await rollUpTrafficMinutes(this.prisma, this.memberId, from);
        await insertColdStarts(this.prisma, this.memberId, coldStarts);
        coldStarts = [];
        this.from = now;
        if (++this.writes % PRUNE_EVERY_WRITES === 0) {
          await pruneTrafficSeconds(this.prisma, now - KEEP_SECONDS);
          await pruneTrafficMinutes(this.prisma, Math.floor(now / 60) - KEEP_MINUTES);
          await pruneColdStarts(this.prisma, new Date(now * 1000 - KEEP_COLD_STARTS_MS));
        }
      } catch (error) {
        // The next write covers these seconds again, and takes these cold starts again.
        this.source.returnColdStarts(coldStarts);
        this.log.debug({ err: error }, "writing traffic counts failed");
      }
    });
    return this.writing;
  }

  concurrency(queries: readonly ConcurrencyQuery[]): Promise<Map<string, RemoteConcurrency>> {
    return otherMembersConcurrency(this.prisma, this.memberId, queries);
  }

  answers(deploymentId: string, sinceSecond: number) {
    return otherMembersAnswers(this.prisma, this.memberId, deploymentId, sinceSecond);
  }

  private second(): number {
    return Math.floor(this.clock.now() / 1000);
  }
}

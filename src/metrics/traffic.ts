import type { Clock } from "../domain/clock.ts";
import { ConcurrencyWindow } from "../domain/concurrency.ts";
import { emptyLatencyCounts, type LatencyCounts, latencyBucket } from "./latency.ts";

/** Answers a deployment gave, as this process's gateway counted them: the canary's error rate reads these. */
export interface AnswerCounts {
  answered: number;
  /** With a 5xx status. */
  failed: number;
}

/** What the gateway reports of its traffic. */
export interface TrafficSink {
  /**
   * A request was routed to the deployment (held time counts: a wake from zero sees its demand).
   * Answers the time it was counted at, for answered()'s `since`.
   */
  started(deploymentId: string): number;
  finished(deploymentId: string): void;
  /**
   * A request to the deployment was answered with `status` (its own answer or the gateway's error for
   * it); `since` is what started() answered for the request's first attempt: its latency runs from there.
   * Answers that latency (ms).
   */
  answered(deploymentId: string, status: number, since: number): number;
}

/** What the autoscaler reads. */
export interface ConcurrencyReadings {
  concurrency(deploymentId: string): ConcurrencyWindow | undefined;
}

/** What the canary reads (controllers/promotions.ts). */
export interface AnswerReadings {
  /** Running totals (a copy): differences between two readings give a stage's outcome. */
  answerCounts(deploymentId: string): AnswerCounts;
  /** Requests routed to the deployment and not finished yet (held ones included): answers to come. */
  inFlight(deploymentId: string): number;
}

/** One deployment's traffic in one second (ms / 1000), as this process's gateway counted it so far. */
export interface TrafficSecond {
  deploymentId: string;
  second: number;
  answered: number;
  failed: number;
  /** Request-milliseconds in flight during the second: 1000 x its average concurrency. */
  busyMs: number;
  /** In flight now (the same on every row of one reading). */
  inFlight: number;
  /** The answers' latencies added up (ms), and counted in the buckets of metrics/latency.ts. */
  latencyMs: number;
  latency: LatencyCounts;
}

/** What the other members are told (metrics/shared-traffic.ts writes it to the database). */
export interface TrafficSeconds {
  secondsSince(fromSecond: number): TrafficSecond[];
}

/**
 * How long an entry of a deployment not run here is kept once idle: requests
 * that entered here for a replica elsewhere are counted here (API.md section 10),
 * and a canary driven here reads its totals across quiet spells.
 */
export const IDLE_ENTRY_MS = 10 * 60_000;
/** Seconds of answer counts kept per deployment for secondsSince (a writer reads every second or so). */
const RECENT_SECONDS = 60;

/** One second of a deployment's answers. */
interface RecentSecond {
  second: number;
  answered: number;
  failed: number;
  latencyMs: number;
  latency: LatencyCounts;
}

/** One deployment's figures. */
class DeploymentTraffic {
  readonly window: ConcurrencyWindow;
  readonly totals: AnswerCounts = { answered: 0, failed: 0 };
  lastActivityAt: number;
  /** Answer counts of the recent seconds, oldest first. */
  private recent: RecentSecond[] = [];

  constructor(now: number) {
    this.window = new ConcurrencyWindow(now);
    this.lastActivityAt = now;
  }

  answer(now: number, failed: boolean, latencyMs: number): void {
    this.lastActivityAt = now;
    this.totals.answered++;
    if (failed) this.totals.failed++;
    const second = Math.floor(now / 1000);
    let last = this.recent.at(-1);
    if (last?.second !== second) {
      last = { second, answered: 0, failed: 0, latencyMs: 0, latency: emptyLatencyCounts() };
      this.recent.push(last);
      if (this.recent.length > RECENT_SECONDS) this.recent.shift();
    }
    last.answered++;
    if (failed) last.failed++;
    last.latencyMs += latencyMs;
    const bucket = latencyBucket(latencyMs);
    last.latency[bucket] = (last.latency[bucket] as number) + 1;
  }

  secondsSince(deploymentId: string, fromSecond: number, now: number): TrafficSecond[] {
    const bySecond = new Map<number, TrafficSecond>();
    const inFlight = this.window.inFlight;
    const row = (second: number): TrafficSecond => {
      let found = bySecond.get(second);
      if (!found) {
        found = {
          deploymentId,
          second,
          answered: 0,
          failed: 0,
          busyMs: 0,
          inFlight,
          latencyMs: 0,
          latency: emptyLatencyCounts(),
        };
        bySecond.set(second, found);
      }
      return found;
    };
    for (const { second, busyMs } of this.window.areasSince(fromSecond, now)) row(second).busyMs = busyMs;
    for (const counts of this.recent) {
      if (counts.second < fromSecond) continue;
      const found = row(counts.second);
      found.answered = counts.answered;
      found.failed = counts.failed;
      found.latencyMs = counts.latencyMs;
      found.latency = [...counts.latency];
    }
    // In flight with nothing accumulated yet (started this very millisecond): still news for the others.
    if (inFlight > 0 && bySecond.size === 0) row(Math.floor(now / 1000));
    return [...bySecond.values()].sort((a, b) => a.second - b.second);
  }
}

/**
 * The traffic meter: in-flight requests and answer counts per deployment, as
 * this process's gateway sees them. The gateway writes; the autoscaler, the
 * canary and the shared table (metrics/shared-traffic.ts) read; entries of
 * deployments no longer run here go once idle (retain).
 */
export class TrafficMeter implements TrafficSink, ConcurrencyReadings, AnswerReadings, TrafficSeconds {
  private readonly entries = new Map<string, DeploymentTraffic>();

  constructor(private readonly clock: Clock) {}

  private entry(deploymentId: string, now: number): DeploymentTraffic {
    let entry = this.entries.get(deploymentId);
    if (!entry) {
      entry = new DeploymentTraffic(now);
      this.entries.set(deploymentId, entry);
    }
    return entry;
  }

  started(deploymentId: string): number {
    const now = this.clock.now();
    const entry = this.entry(deploymentId, now);
    entry.window.started(now);
    entry.lastActivityAt = now;
    return now;
  }

  finished(deploymentId: string): void {
    const now = this.clock.now();
    const entry = this.entries.get(deploymentId);
    if (!entry) return;
    entry.window.finished(now);
    entry.lastActivityAt = now;
  }

  answered(deploymentId: string, status: number, since: number): number {
    const now = this.clock.now();
    const latencyMs = Math.max(0, now - since);
    this.entry(deploymentId, now).answer(now, status >= 500, latencyMs);
    return latencyMs;
  }

  answerCounts(deploymentId: string): AnswerCounts {
    const totals = this.entries.get(deploymentId)?.totals;
    return totals ? { ...totals } : { answered: 0, failed: 0 };
  }

  inFlight(deploymentId: string): number {
    return this.entries.get(deploymentId)?.window.inFlight ?? 0;
  }

  concurrency(deploymentId: string): ConcurrencyWindow | undefined {
    return this.entries.get(deploymentId)?.window;
  }

  secondsSince(fromSecond: number): TrafficSecond[] {
    const now = this.clock.now();
    const rows: TrafficSecond[] = [];
    for (const [id, entry] of this.entries) {
      if (entry.window.inFlight === 0 && Math.floor(entry.lastActivityAt / 1000) < fromSecond) continue;
      rows.push(...entry.secondsSince(id, fromSecond, now));
    }
    return rows;
  }

  /**
   * Drops the entries of every deployment `runHere` says no longer runs here
   * (deleted, deactivated, given up on, or run by another process) once they
   * have been idle for IDLE_ENTRY_MS: none with requests in flight (they are
   * held for it and will finish).
   */
  retain(runHere: (deploymentId: string) => boolean): void {
    const now = this.clock.now();
    for (const [id, entry] of this.entries) {
      const idle = entry.window.inFlight === 0 && now - entry.lastActivityAt >= IDLE_ENTRY_MS;
      if (idle && !runHere(id)) this.entries.delete(id);
    }
  }

  /** Deployments with entries (tests, and to see that none stays forever). */
  size(): number {
    return this.entries.size;
  }
}

import type { Clock } from "../domain/clock.ts";
import { ConcurrencyWindow } from "../domain/concurrency.ts";
import { countLatency, emptyLatencyCounts, type LatencyCounts } from "./latency.ts";

/** Answers a deployment gave, as this process's gateway counted them: the canary's error rate reads these. */
export interface AnswerCounts {
  answered: number;
  /** With a 5xx status. */
  failed: number;
}

/** A wake-up caused by a request (API.md section 11), as the gateway saw it through. */
export interface ColdStart {
  modelId: string;
  deploymentId: string;
  /** The environment whose path the request came by; "" on deployment and development paths. */
  environmentId: string;
  /** The replica that answered, when it ran on this member (its phases are known only then). */
  replicaId: string | null;
  /** The arrival of the request that caused the wake (ms). */
  requestedAt: number;
  /** When the replica's process was spawned, and when its model was loaded (ready); null: not known here. */
  processStartedAt: number | null;
  modelLoadedAt: number | null;
  /** The answer to that request: a cold start lasts from requestedAt to here. */
  answeredAt: number;
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
   * `environmentId` is the environment whose path it came by ("" for none). Answers that latency (ms).
   */
  answered(deploymentId: string, status: number, since: number, environmentId?: string): number;
  /** A request's wake-up of the deployment is over: its answer went. */
  coldStarted(start: ColdStart): void;
}

/** Cold starts counted here and not yet written to the database (metrics/shared-traffic.ts). */
export interface ColdStartRecords {
  takeColdStarts(): ColdStart[];
  /** Gives back what a failed write took, to be taken again first. */
  returnColdStarts(starts: readonly ColdStart[]): void;
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

/**
 * One deployment's traffic in one second (ms / 1000), as this process's gateway counted it so far: answers
 * by the environment whose path they came by ("" for none), concurrency on the "" row only.
 */
export interface TrafficSecond {
  deploymentId: string;
  environmentId: string;
  second: number;
  answered: number;
  failed: number;
  /** Request-milliseconds in flight during the second: 1000 x its average concurrency. */
  busyMs: number;
  /** In flight now (the same on every "" row of one reading; 0 on the others). */
  inFlight: number;
  /** The answers' latencies added up (ms), and counted in the buckets of metrics/latency.ts. */
  latencyMs: number;
  latency: LatencyCounts;
  /** Cold starts that ended with an answer in the second, their durations added up and in buckets. */
  coldStarts: number;
  coldStartMs: number;
  coldStartLatency: LatencyCounts;
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
/** Cold-start records kept for the writer while the database is away (each is one wake: few). */
const MAX_PENDING_COLD_STARTS = 1_000;

/** One second of a deployment's answers through one path kind (an environment, or "" for none). */
interface RecentSecond {
  second: number;
  environmentId: string;
  answered: number;
  failed: number;
  latencyMs: number;
  latency: LatencyCounts;
  coldStarts: number;
  coldStartMs: number;
  coldStartLatency: LatencyCounts;
}

/** One deployment's figures. */
class DeploymentTraffic {
  readonly window: ConcurrencyWindow;
  readonly totals: AnswerCounts = { answered: 0, failed: 0 };
  lastActivityAt: number;
  /** Answer counts of the recent seconds, oldest first (a second has one per path it was asked by). */
  private recent: RecentSecond[] = [];

  constructor(now: number) {
    this.window = new ConcurrencyWindow(now);
    this.lastActivityAt = now;
  }

  answer(now: number, failed: boolean, latencyMs: number, environmentId: string): void {
    this.lastActivityAt = now;
    this.totals.answered++;
    if (failed) this.totals.failed++;
    const counts = this.secondOf(now, environmentId);
    counts.answered++;
    if (failed) counts.failed++;
    counts.latencyMs += latencyMs;
    countLatency(counts.latency, latencyMs);
  }

  coldStart(now: number, ms: number, environmentId: string): void {
    const counts = this.secondOf(now, environmentId);
    counts.coldStarts++;
    counts.coldStartMs += ms;
    countLatency(counts.coldStartLatency, ms);
  }

  private secondOf(now: number, environmentId: string): RecentSecond {
    const second = Math.floor(now / 1000);
    for (let i = this.recent.length - 1; i >= 0; i--) {
      const counts = this.recent[i] as RecentSecond;
      if (counts.second !== second) break;
      if (counts.environmentId === environmentId) return counts;
    }
    const counts: RecentSecond = {
      second,
      environmentId,
      answered: 0,
      failed: 0,
      latencyMs: 0,
      latency: emptyLatencyCounts(),
      coldStarts: 0,
      coldStartMs: 0,
      coldStartLatency: emptyLatencyCounts(),
    };
    this.recent.push(counts);
    while ((this.recent[0] as RecentSecond).second <= second - RECENT_SECONDS) this.recent.shift();
    return counts;
  }

  secondsSince(deploymentId: string, fromSecond: number, now: number): TrafficSecond[] {
    const rows = new Map<string, TrafficSecond>();
    const inFlight = this.window.inFlight;
    const row = (second: number, environmentId: string): TrafficSecond => {
      const key = `${second}:${environmentId}`;
      let found = rows.get(key);
      if (!found) {
        found = {
          deploymentId,
          environmentId,
          second,
          answered: 0,
          failed: 0,
          busyMs: 0,
          inFlight: environmentId === "" ? inFlight : 0,
          latencyMs: 0,
          latency: emptyLatencyCounts(),
          coldStarts: 0,
          coldStartMs: 0,
          coldStartLatency: emptyLatencyCounts(),
        };
        rows.set(key, found);
      }
      return found;
    };
    for (const { second, busyMs } of this.window.areasSince(fromSecond, now)) row(second, "").busyMs = busyMs;
    for (const counts of this.recent) {
      if (counts.second < fromSecond) continue;
      const found = row(counts.second, counts.environmentId);
      found.answered = counts.answered;
      found.failed = counts.failed;
      found.latencyMs = counts.latencyMs;
      found.latency = [...counts.latency];
      found.coldStarts = counts.coldStarts;
      found.coldStartMs = counts.coldStartMs;
      found.coldStartLatency = [...counts.coldStartLatency];
    }
    // In flight with nothing accumulated yet (started this very millisecond): still news for the others.
    if (inFlight > 0 && rows.size === 0) row(Math.floor(now / 1000), "");
    return [...rows.values()].sort((a, b) => a.second - b.second);
  }
}

/**
 * The traffic meter: in-flight requests and answer counts per deployment, as
 * this process's gateway sees them. The gateway writes; the autoscaler, the
 * canary and the shared table (metrics/shared-traffic.ts) read; entries of
 * deployments no longer run here go once idle (retain).
 */
export class TrafficMeter
  implements TrafficSink, ConcurrencyReadings, AnswerReadings, TrafficSeconds, ColdStartRecords
{
  private readonly entries = new Map<string, DeploymentTraffic>();
  /** Cold starts not yet taken by the writer; the oldest go first past MAX_PENDING_COLD_STARTS. */
  private coldStarts: ColdStart[] = [];

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

  answered(deploymentId: string, status: number, since: number, environmentId = ""): number {
    const now = this.clock.now();
    const latencyMs = Math.max(0, now - since);
    this.entry(deploymentId, now).answer(now, status >= 500, latencyMs, environmentId);
    return latencyMs;
  }

  coldStarted(start: ColdStart): void {
    const now = this.clock.now();
    this.entry(start.deploymentId, now).coldStart(
      now,
      Math.max(0, start.answeredAt - start.requestedAt),
      start.environmentId,
    );
    this.coldStarts.push(start);
    if (this.coldStarts.length > MAX_PENDING_COLD_STARTS) this.coldStarts.shift();
  }

  takeColdStarts(): ColdStart[] {
    const taken = this.coldStarts;
    this.coldStarts = [];
    return taken;
  }

  returnColdStarts(starts: readonly ColdStart[]): void {
    if (starts.length === 0) return;
    this.coldStarts = [...starts, ...this.coldStarts].slice(-MAX_PENDING_COLD_STARTS);
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

import type { Clock } from "../domain/clock.ts";
import { ConcurrencyWindow } from "../domain/concurrency.ts";

/** Answers a deployment gave, as this process's gateway counted them: the canary's error rate reads these. */
export interface AnswerCounts {
  answered: number;
  /** With a 5xx status. */
  failed: number;
}

/** What the gateway reports of its traffic. */
export interface TrafficSink {
  /** A request was routed to the deployment (held time counts: a wake from zero sees its demand). */
  started(deploymentId: string): void;
  finished(deploymentId: string): void;
  /** A request to the deployment was answered with `status` (its own answer or the gateway's error for it). */
  answered(deploymentId: string, status: number): void;
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
 * The traffic meter: in-flight requests and answer counts per deployment, as
 * this process's gateway sees them. The gateway writes, the autoscaler and
 * the canary read; entries of deployments no longer run here go (retain).
 */
export class TrafficMeter implements TrafficSink, ConcurrencyReadings, AnswerReadings {
  private readonly windows = new Map<string, ConcurrencyWindow>();
  private readonly answers = new Map<string, AnswerCounts>();

  constructor(private readonly clock: Clock) {}

  started(deploymentId: string): void {
    const now = this.clock.now();
    let window = this.windows.get(deploymentId);
    if (!window) {
      window = new ConcurrencyWindow(now);
      this.windows.set(deploymentId, window);
    }
    window.started(now);
  }

  finished(deploymentId: string): void {
    this.windows.get(deploymentId)?.finished(this.clock.now());
  }

  answered(deploymentId: string, status: number): void {
    let counts = this.answers.get(deploymentId);
    if (!counts) {
      counts = { answered: 0, failed: 0 };
      this.answers.set(deploymentId, counts);
    }
    counts.answered++;
    if (status >= 500) counts.failed++;
  }

  answerCounts(deploymentId: string): AnswerCounts {
    const counts = this.answers.get(deploymentId);
    return counts ? { ...counts } : { answered: 0, failed: 0 };
  }

  inFlight(deploymentId: string): number {
    return this.windows.get(deploymentId)?.inFlight ?? 0;
  }

  concurrency(deploymentId: string): ConcurrencyWindow | undefined {
    return this.windows.get(deploymentId);
  }

  /**
   * Drops the entries of every deployment `runHere` says no longer runs here
   * (deleted, deactivated, given up on, or run by another process), except one
   * with requests still in flight (they are held for it and will finish).
   */
  retain(runHere: (deploymentId: string) => boolean): void {
    for (const [id, window] of this.windows) {
      if (!runHere(id) && window.inFlight === 0) this.windows.delete(id);
    }
    for (const id of this.answers.keys()) {
      if (!runHere(id) && !this.windows.has(id)) this.answers.delete(id);
    }
  }

  /** Deployments with entries (tests, and to see that none stays forever). */
  size(): number {
    return new Set([...this.windows.keys(), ...this.answers.keys()]).size;
  }
}

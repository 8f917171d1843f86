import type { Clock } from "../domain/clock.ts";
import { ConcurrencyWindow } from "../domain/concurrency.ts";

/** Answers a deployment gave since this process started: the canary's error rate reads these. */
export interface AnswerCounts {
  answered: number;
  /** With a 5xx status. */
  failed: number;
}

/**
 * In-flight requests per deployment, as this process's gateway sees them:
 * counted from the moment a request is routed to a deployment (held requests
 * included, so a wake from zero sees its demand) until its answer is sent.
 */
export class TrafficMeter {
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

  /** A request to the deployment was answered with `status` (its own answer or the gateway's error for it). */
  answered(deploymentId: string, status: number): void {
    let counts = this.answers.get(deploymentId);
    if (!counts) {
      counts = { answered: 0, failed: 0 };
      this.answers.set(deploymentId, counts);
    }
    counts.answered++;
    if (status >= 500) counts.failed++;
  }

  /** Running totals (a copy): differences between two readings give a stage's outcome. */
  answerCounts(deploymentId: string): AnswerCounts {
    const counts = this.answers.get(deploymentId);
    return counts ? { ...counts } : { answered: 0, failed: 0 };
  }

  get(deploymentId: string): ConcurrencyWindow | undefined {
    return this.windows.get(deploymentId);
  }

  forget(deploymentId: string): void {
    this.windows.delete(deploymentId);
    this.answers.delete(deploymentId);
  }
}

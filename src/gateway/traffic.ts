import type { Clock } from "../domain/clock.ts";
import { ConcurrencyWindow } from "../domain/concurrency.ts";

/**
 * In-flight requests per deployment, as this process's gateway sees them:
 * counted from the moment a request is routed to a deployment (held requests
 * included, so a wake from zero sees its demand) until its answer is sent.
 */
export class TrafficMeter {
  private readonly windows = new Map<string, ConcurrencyWindow>();

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

  get(deploymentId: string): ConcurrencyWindow | undefined {
    return this.windows.get(deploymentId);
  }

  forget(deploymentId: string): void {
    this.windows.delete(deploymentId);
  }
}

/**
 * The traffic figures of the API (API.md section 11: Deployment.metrics and metricsSeries, the same of an
 * Environment): every member's counts summed from the shared tables, this member's own written out first
 * so that what its gateway has just counted is in them. Seconds serve windows up to an hour; longer
 * series come from the minute roll-up, kept for 25 hours.
 */
import type { Clock } from "../domain/clock.ts";
import type { PrismaClient } from "../generated/prisma/client.ts";
import { type TrafficScope, type TrafficSums, trafficSums } from "../store/traffic.ts";
import { emptyLatencyCounts, type LatencyCounts, latencyQuantile } from "./latency.ts";

export type { TrafficScope } from "../store/traffic.ts";

/** Milliseconds; null without data. */
export interface LatencySummary {
  p50: number | null;
  p95: number | null;
  p99: number | null;
}

export interface TrafficMetrics {
  windowSeconds: number;
  requests: number;
  /** 5xx answers. */
  errors: number;
  requestsPerSecond: number;
  latencyMs: LatencySummary;
  coldStarts: number;
  coldStartMs: LatencySummary;
}

export interface TrafficPoint {
  /** The start of the step. */
  at: Date;
  requests: number;
  errors: number;
  latencyMs: LatencySummary;
}

/** Limits of the arguments (API.md section 11). */
export const METRICS_WINDOW = { min: 1, max: 3600 } as const;
export const SERIES_WINDOW = { min: 1, max: 24 * 3600 } as const;
/** A series has at most this many points. */
export const MAX_SERIES_POINTS = 1440;
/** Seconds are kept a little over an hour: windows up to this long are read from them. */
const SECONDS_REACH = 3600;

/** A figure's arguments out of range: the message says which and why. */
export class FigureRangeError extends Error {}

/** Throws the client's error unless `value` is a whole number in [min, max] (`maxName` says what max is). */
function wholeNumberIn(
  name: string,
  value: number,
  { min, max }: { min: number; max: number },
  maxName = String(max),
): void {
  if (!Number.isInteger(value) || value < min || value > max) {
    throw new FigureRangeError(`${name} must be a whole number from ${min} to ${maxName}`);
  }
}

function summary(counts: LatencyCounts): LatencySummary {
  return {
    p50: latencyQuantile(counts, 0.5),
    p95: latencyQuantile(counts, 0.95),
    p99: latencyQuantile(counts, 0.99),
  };
}

const NONE: TrafficSums = {
  answered: 0,
  failed: 0,
  latency: emptyLatencyCounts(),
  coldStarts: 0,
  coldStartLatency: emptyLatencyCounts(),
};

export class TrafficFigures {
  constructor(
    private readonly prisma: PrismaClient,
    /** Writes this member's counts out (metrics/shared-traffic.ts write()). */
    private readonly writeOwn: () => Promise<void>,
    private readonly clock: Clock,
  ) {}

  /** The last `windowSeconds` seconds, the current one included. */
  async metrics(scope: TrafficScope, windowSeconds: number): Promise<TrafficMetrics> {
    wholeNumberIn("windowSeconds", windowSeconds, METRICS_WINDOW);
    await this.writeOwn();
    const to = Math.floor(this.clock.now() / 1000) + 1;
    const from = to - windowSeconds;
    const sums =
      (await trafficSums(this.prisma, scope, { from, to, step: windowSeconds, minutes: false })).get(0) ??
      NONE;
    return {
      windowSeconds,
      requests: sums.answered,
      errors: sums.failed,
      requestsPerSecond: sums.answered / windowSeconds,
      latencyMs: summary(sums.latency),
      coldStarts: sums.coldStarts,
      coldStartMs: summary(sums.coldStartLatency),
    };
  }

  /**
   * Steps of `stepSeconds` covering the last `windowSeconds`, oldest first, the current step last; steps
   * start at multiples of `stepSeconds` (Unix time), and a step without traffic is there with zeros.
   */
  async series(scope: TrafficScope, windowSeconds: number, stepSeconds: number): Promise<TrafficPoint[]> {
    wholeNumberIn("windowSeconds", windowSeconds, SERIES_WINDOW);
    wholeNumberIn("stepSeconds", stepSeconds, { min: 1, max: windowSeconds }, "windowSeconds");
    const points = Math.ceil(windowSeconds / stepSeconds);
    if (points > MAX_SERIES_POINTS) {
      throw new FigureRangeError(`a series has at most ${MAX_SERIES_POINTS} points: make stepSeconds larger`);
    }
    const minutes = windowSeconds > SECONDS_REACH;
    if (minutes && stepSeconds % 60 !== 0) {
      throw new FigureRangeError("over an hour, stepSeconds must be a whole number of minutes");
    }
    await this.writeOwn();
    const now = Math.floor(this.clock.now() / 1000);
    const to = (Math.floor(now / stepSeconds) + 1) * stepSeconds;
    const from = to - points * stepSeconds;
    const sums = await trafficSums(this.prisma, scope, { from, to, step: stepSeconds, minutes });
    return Array.from({ length: points }, (_, i) => {
      const step = sums.get(i) ?? NONE;
      return {
        at: new Date((from + i * stepSeconds) * 1000),
        requests: step.answered,
        errors: step.failed,
        latencyMs: summary(step.latency),
      };
    });
  }
}

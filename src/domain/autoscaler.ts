import type { AutoscalingSettings } from "./autoscaling.ts";

/** What the autoscaler knows about one deployment at one moment. */
export interface ScalingInput {
  now: number;
  settings: AutoscalingSettings;
  /** Replicas running or starting (not the ones being removed). */
  current: number;
  /** In-flight requests averaged over settings.autoscalingWindow. */
  averageConcurrency: number;
  /** In-flight requests right now. */
  inFlight: number;
  /** Last request start or finish (ms), 0 when never. */
  lastActivityAt: number;
  /** When a replica last became ready (ms), 0 when never: the scale-down clock restarts then. */
  lastReadyAt: number;
  /** When demand first fell below `current` and has stayed below since; null when it has not. */
  lowSince: number | null;
}

export interface ScalingDecision {
  desired: number;
  lowSince: number | null;
  /** What the average alone asks for, clamped (for logs and tests). */
  recommended: number;
}

/** Floating-point slack so that, e.g., 1.4 / 0.7 does not round up to 3. */
const EPSILON = 1e-9;

/**
 * The scaling rule of API.md section 6 as a pure function of the metrics and
 * the time: desired = ceil(average / (concurrencyTarget x utilization)),
 * clamped to [minReplica, maxReplica]; up at once; down only after demand has
 * stayed lower for scaleDownDelay, by at most max(1, half) per step; to zero
 * (minReplica 0) only after scaleDownDelay without any traffic.
 */
export function decideReplicas(input: ScalingInput): ScalingDecision {
  const { settings, current, now } = input;
  const capacity = settings.concurrencyTarget * (settings.targetUtilizationPercentage / 100);
  const raw = Math.ceil(input.averageConcurrency / capacity - EPSILON);
  const delayMs = settings.scaleDownDelay * 1000;
  const quietSince = Math.max(input.lastActivityAt, input.lastReadyAt);
  const idle = settings.minReplica === 0 && input.inFlight === 0 && now - quietSince >= delayMs;
  // Idle wins over the window's memory of earlier traffic: nothing has happened for the whole delay.
  const recommended = idle
    ? 0
    : Math.min(Math.max(raw, Math.max(1, settings.minReplica)), settings.maxReplica);

  if (recommended >= current) return { desired: recommended, lowSince: null, recommended };

  // Demand is below what runs. The clock starts when it first fell, or when a replica last became ready.
  const lowSince = Math.max(input.lowSince ?? now, input.lastReadyAt);
  // Going to zero has its own clock (no traffic for the delay), already checked by `idle`.
  if (recommended > 0 && now - lowSince < delayMs) return { desired: current, lowSince, recommended };
  const step = Math.max(1, Math.floor(current / 2));
  return { desired: Math.max(recommended, current - step), lowSince, recommended };
}

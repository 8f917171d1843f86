/** Autoscaling settings: defaults, ranges and validation (API.md section 6, Autoscaling). */
export interface AutoscalingSettings {
  minReplica: number;
  maxReplica: number;
  autoscalingWindow: number;
  scaleDownDelay: number;
  concurrencyTarget: number;
  targetUtilizationPercentage: number;
}

export type AutoscalingPatch = { [K in keyof AutoscalingSettings]?: number | null };

export const DEFAULT_AUTOSCALING: Readonly<AutoscalingSettings> = Object.freeze({
  minReplica: 0,
  maxReplica: 1,
  autoscalingWindow: 60,
  scaleDownDelay: 900,
  concurrencyTarget: 1,
  targetUtilizationPercentage: 70,
});

const RANGES: Record<keyof AutoscalingSettings, [number, number]> = {
  minReplica: [0, 1000],
  maxReplica: [1, 1000],
  autoscalingWindow: [1, 3600],
  scaleDownDelay: [0, 3600],
  concurrencyTarget: [1, 100_000],
  targetUtilizationPercentage: [1, 100],
};

export interface SettingsProblem {
  field: string;
  message: string;
}

/**
 * Applies a partial update (only the fields sent change) and validates the
 * result as a whole. `development` pins min 0 / max 1.
 */
export function mergeAutoscaling(
  current: AutoscalingSettings,
  patch: AutoscalingPatch,
  opts: { development?: boolean } = {},
): { settings: AutoscalingSettings } | { problem: SettingsProblem } {
  const next = { ...current };
  for (const key of Object.keys(RANGES) as (keyof AutoscalingSettings)[]) {
    const value = patch[key];
    if (value === undefined) continue;
    if (value === null) return { problem: { field: key, message: `${key} cannot be null` } };
    const [lo, hi] = RANGES[key];
    if (!Number.isInteger(value) || value < lo || value > hi) {
      return { problem: { field: key, message: `${key} must be an integer in ${lo}..${hi}, got ${value}` } };
    }
    next[key] = value;
  }
  if (next.minReplica > next.maxReplica) {
    return {
      problem: {
        field: "minReplica",
        message: `minReplica (${next.minReplica}) must not exceed maxReplica (${next.maxReplica})`,
      },
    };
  }
  if (opts.development && (next.minReplica !== 0 || next.maxReplica !== 1)) {
    return {
      problem: {
        field: next.minReplica !== 0 ? "minReplica" : "maxReplica",
        message: "the development deployment is fixed at minReplica 0 and maxReplica 1",
      },
    };
  }
  return { settings: next };
}

/** Reads settings stored as JSON, filling anything missing with defaults. */
export function parseAutoscaling(value: unknown): AutoscalingSettings {
  const stored = (value && typeof value === "object" ? value : {}) as Partial<AutoscalingSettings>;
  return { ...DEFAULT_AUTOSCALING, ...stored };
}

/**
 * The settings a deployment runs with: while a promotion starts or ramps it,
 * the promotion's (API.md section 6, Autoscaling on promotion); else its own.
 */
export function effectiveAutoscaling(row: {
  autoscaling: unknown;
  promotionAutoscaling: unknown;
}): AutoscalingSettings {
  return parseAutoscaling(row.promotionAutoscaling ?? row.autoscaling);
}

/**
 * Replicas a running deployment keeps before the autoscaler exists: a started
 * deployment always runs at least one (API.md section 6, Starting).
 */
export function baselineReplicas(settings: AutoscalingSettings, development: boolean): number {
  return development ? 1 : Math.max(1, settings.minReplica);
}

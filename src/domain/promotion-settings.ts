/** PromotionSettings: defaults, ranges, partial updates (API.md section 5). */
export const CLEANUP_STRATEGIES = ["KEEP", "SCALE_TO_ZERO", "DEACTIVATE"] as const;
export type CleanupStrategy = (typeof CLEANUP_STRATEGIES)[number];

export interface PromotionSettings {
  redeployOnPromotion: boolean;
  rampUpWhilePromoting: boolean;
  rampUpDurationSeconds: number;
  cleanupStrategy: CleanupStrategy;
  progressDeadlineSeconds: number;
  errorRateThresholdPercent: number | null;
}

/** Fields absent from the input stay; an explicit null turns errorRateThresholdPercent off. */
export interface PromotionSettingsPatch {
  redeployOnPromotion?: boolean | null;
  rampUpWhilePromoting?: boolean | null;
  rampUpDurationSeconds?: number | null;
  cleanupStrategy?: CleanupStrategy | null;
  progressDeadlineSeconds?: number | null;
  errorRateThresholdPercent?: number | null;
}

export const DEFAULT_PROMOTION_SETTINGS: Readonly<PromotionSettings> = Object.freeze({
  redeployOnPromotion: false,
  rampUpWhilePromoting: false,
  rampUpDurationSeconds: 600,
  cleanupStrategy: "SCALE_TO_ZERO",
  progressDeadlineSeconds: 600,
  errorRateThresholdPercent: null,
});

export function parsePromotionSettings(value: unknown): PromotionSettings {
  const stored = (value && typeof value === "object" ? value : {}) as Partial<PromotionSettings>;
  return { ...DEFAULT_PROMOTION_SETTINGS, ...stored };
}

const RANGES = {
  rampUpDurationSeconds: [1, 86_400],
  progressDeadlineSeconds: [1, 86_400],
  errorRateThresholdPercent: [1, 100],
} as const;

export function mergePromotionSettings(
  current: PromotionSettings,
  patch: PromotionSettingsPatch,
): { settings: PromotionSettings } | { problem: { field: string; message: string } } {
  const next: PromotionSettings = { ...current };
  for (const key of ["redeployOnPromotion", "rampUpWhilePromoting"] as const) {
    const value = patch[key];
    if (value === undefined) continue;
    if (value === null) return { problem: { field: key, message: `${key} cannot be null` } };
    next[key] = value;
  }
  if (patch.cleanupStrategy !== undefined) {
    if (patch.cleanupStrategy === null || !CLEANUP_STRATEGIES.includes(patch.cleanupStrategy)) {
      return {
        problem: {
          field: "cleanupStrategy",
          message: `cleanupStrategy must be one of ${CLEANUP_STRATEGIES.join(", ")}`,
        },
      };
    }
    next.cleanupStrategy = patch.cleanupStrategy;
  }
  for (const key of Object.keys(RANGES) as (keyof typeof RANGES)[]) {
    const value = patch[key];
    if (value === undefined) continue;
    if (value === null) {
      if (key !== "errorRateThresholdPercent")
        return { problem: { field: key, message: `${key} cannot be null` } };
      next.errorRateThresholdPercent = null;
      continue;
    }
    const [lo, hi] = RANGES[key];
    if (!Number.isInteger(value) || value < lo || value > hi) {
      return { problem: { field: key, message: `${key} must be an integer in ${lo}..${hi}, got ${value}` } };
    }
    next[key] = value;
  }
  return { settings: next };
}

/**
 * Answer latency as a histogram with fixed buckets, so that histograms from several seconds and several
 * members add up bucket by bucket (API.md sections 10 and 11). The bounds suit inference: 1 ms to 60 s.
 */

/** Upper bounds (ms, inclusive) of the buckets; one more bucket holds everything slower. */
export const LATENCY_BOUNDS_MS: readonly number[] = [
  1, 2.5, 5, 10, 25, 50, 100, 250, 500, 1_000, 2_500, 5_000, 10_000, 30_000, 60_000,
];

/** Counts per bucket: LATENCY_BOUNDS_MS.length + 1 of them, the last for answers slower than 60 s. */
export type LatencyCounts = number[];

export function emptyLatencyCounts(): LatencyCounts {
  return new Array<number>(LATENCY_BOUNDS_MS.length + 1).fill(0);
}

/** The bucket an answer of `ms` falls in. */
export function latencyBucket(ms: number): number {
  const bounds = LATENCY_BOUNDS_MS;
  for (let i = 0; i < bounds.length; i++) if (ms <= (bounds[i] as number)) return i;
  return bounds.length;
}

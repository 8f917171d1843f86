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

/** Counts one answer of `ms` in its bucket. */
export function countLatency(counts: LatencyCounts, ms: number): void {
  const bucket = latencyBucket(ms);
  counts[bucket] = (counts[bucket] as number) + 1;
}

/**
 * The `q` quantile (0..1) of the answers counted in `counts`, in ms, interpolated linearly within its
 * bucket as Prometheus's histogram_quantile does; null without answers. Answers slower than the last
 * bound count as that bound: the buckets say no more of them.
 */
export function latencyQuantile(counts: LatencyCounts, q: number): number | null {
  const total = counts.reduce((sum, n) => sum + n, 0);
  if (total === 0) return null;
  const rank = q * total;
  let below = 0;
  for (let i = 0; i < counts.length; i++) {
    const inBucket = counts[i] as number;
    if (inBucket > 0 && below + inBucket >= rank) {
      const upper = LATENCY_BOUNDS_MS[i];
      if (upper === undefined) return LATENCY_BOUNDS_MS.at(-1) as number;
      const lower = i === 0 ? 0 : (LATENCY_BOUNDS_MS[i - 1] as number);
      return lower + (upper - lower) * ((rank - below) / inBucket);
    }
    below += inBucket;
  }
  return LATENCY_BOUNDS_MS.at(-1) as number;
}

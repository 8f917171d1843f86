/**
 * Time-weighted concurrency of one deployment: the area under its in-flight
 * request count, kept in one-second buckets so that the average over any
 * autoscaling window (1..3600 s) is a sum over buckets. Fed by the gateway,
 * read by the autoscaler.
 */
const BUCKET_MS = 1000;
const MAX_WINDOW_S = 3600;

export class ConcurrencyWindow {
  inFlight = 0;
  /** When a request last started or finished (ms); 0 when never. */
  lastActivityAt = 0;
  private lastChangeAt: number;
  // One more slot than the longest window: a window spans up to MAX_WINDOW_S + 1 buckets.
  private readonly area = new Float64Array(MAX_WINDOW_S + 2);
  private readonly bucketOf = new Float64Array(MAX_WINDOW_S + 2).fill(-1);

  constructor(now: number) {
    this.lastChangeAt = now;
  }

  started(now: number): void {
    this.accumulate(now);
    this.inFlight++;
    this.lastActivityAt = now;
  }

  finished(now: number): void {
    this.accumulate(now);
    this.inFlight = Math.max(0, this.inFlight - 1);
    this.lastActivityAt = now;
  }

  /** Average in-flight requests over the last `windowS` seconds. */
  average(now: number, windowS: number): number {
    this.accumulate(now);
    const window = Math.min(Math.max(1, Math.floor(windowS)), MAX_WINDOW_S);
    const start = now - window * BUCKET_MS;
    const first = Math.floor(start / BUCKET_MS);
    const last = Math.floor(now / BUCKET_MS);
    let sum = 0;
    for (let b = first; b <= last; b++) {
      const slot = ((b % this.area.length) + this.area.length) % this.area.length;
      if (this.bucketOf[slot] !== b) continue;
      // The oldest bucket straddles the window's start: count the part inside, assuming even spread.
      const weight = b === first ? ((b + 1) * BUCKET_MS - start) / BUCKET_MS : 1;
      sum += (this.area[slot] as number) * weight;
    }
    return sum / (window * BUCKET_MS);
  }

  /** Adds inFlight x elapsed time to the buckets it spans. */
  private accumulate(now: number): void {
    const from = this.lastChangeAt;
    this.lastChangeAt = Math.max(from, now);
    if (this.inFlight === 0 || now <= from) return;
    // Only the last window's worth of buckets can ever be read.
    let t = Math.max(from, now - MAX_WINDOW_S * BUCKET_MS);
    while (t < now) {
      const b = Math.floor(t / BUCKET_MS);
      const end = Math.min(now, (b + 1) * BUCKET_MS);
      const slot = b % this.area.length;
      if (this.bucketOf[slot] !== b) {
        this.bucketOf[slot] = b;
        this.area[slot] = 0;
      }
      this.area[slot] = (this.area[slot] as number) + this.inFlight * (end - t);
      t = end;
    }
  }
}

/**
 * Time-weighted concurrency of one deployment: the area under its in-flight
 * request count, in one-second buckets so that the average over any
 * autoscaling window (1..3600 s) is a sum over buckets. Fed by the gateway,
 * read by the autoscaler.
 *
 * Only buckets that saw a request in flight are kept, oldest first, and none
 * older than the longest window: an idle deployment costs nothing, a busy one
 * at most one entry per second of the last hour.
 */
const BUCKET_MS = 1000;
const MAX_WINDOW_S = 3600;
/** A window spans up to MAX_WINDOW_S + 1 buckets (its oldest one partly). */
const KEPT_BUCKETS = MAX_WINDOW_S + 1;

export class ConcurrencyWindow {
  inFlight = 0;
  /** When a request last started or finished (ms); 0 when never. */
  lastActivityAt = 0;
  private lastChangeAt: number;
  /** Bucket numbers (ms / BUCKET_MS), increasing from `head`; areas in request-ms alongside. */
  private buckets: number[] = [];
  private areas: number[] = [];
  private head = 0;

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
    for (let i = this.buckets.length - 1; i >= this.head; i--) {
      const b = this.buckets[i] as number;
      if (b < first) break;
      if (b > last) continue;
      // The oldest bucket straddles the window's start: count the part inside, assuming even spread.
      const weight = b === first ? ((b + 1) * BUCKET_MS - start) / BUCKET_MS : 1;
      sum += (this.areas[i] as number) * weight;
    }
    return sum / (window * BUCKET_MS);
  }

  /**
   * The request-milliseconds in flight in each second from `fromSecond` (ms / 1000) up to now's, the
   * current one so far: what a member writes for the others to read (metrics/shared-traffic.ts).
   */
  areasSince(fromSecond: number, now: number): { second: number; busyMs: number }[] {
    this.accumulate(now);
    const out: { second: number; busyMs: number }[] = [];
    for (let i = this.buckets.length - 1; i >= this.head; i--) {
      const b = this.buckets[i] as number;
      if (b < fromSecond) break;
      out.push({ second: b, busyMs: this.areas[i] as number });
    }
    return out.reverse();
  }

  /** Adds inFlight x elapsed time to the buckets it spans, and drops buckets no window reaches. */
  private accumulate(now: number): void {
    const from = this.lastChangeAt;
    this.lastChangeAt = Math.max(from, now);
    if (this.inFlight > 0 && now > from) {
      // Only the last window's worth of buckets can ever be read.
      let t = Math.max(from, now - MAX_WINDOW_S * BUCKET_MS);
      while (t < now) {
        const b = Math.floor(t / BUCKET_MS);
        const end = Math.min(now, (b + 1) * BUCKET_MS);
        const n = this.buckets.length;
        if (n > this.head && this.buckets[n - 1] === b) {
          this.areas[n - 1] = (this.areas[n - 1] as number) + this.inFlight * (end - t);
        } else {
          this.buckets.push(b);
          this.areas.push(this.inFlight * (end - t));
        }
        t = end;
      }
    }
    this.prune(Math.floor(now / BUCKET_MS) - KEPT_BUCKETS);
  }

  private prune(oldest: number): void {
    while (this.head < this.buckets.length && (this.buckets[this.head] as number) < oldest) this.head++;
    // Compact now and then rather than shifting on every drop.
    if (this.head > 0 && this.head * 2 >= this.buckets.length) {
      this.buckets = this.buckets.slice(this.head);
      this.areas = this.areas.slice(this.head);
      this.head = 0;
    }
  }
}

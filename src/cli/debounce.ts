/**
 * Runs an async task after changes settle, one run at a time: `hangar watch`'s patch loop.
 *
 * - Each change restarts the quiet period: the task runs `delayMs` after the last change.
 * - Changes during a run never start a second, overlapping run: they queue exactly one more run, which
 *   starts once the current one has finished and the quiet period since the last change has passed.
 * - A failing task is reported through `onError` and does not stop later runs.
 */
export class SerialDebouncer {
  private timer: NodeJS.Timeout | null = null;
  private running: Promise<void> | null = null;
  private pending = false;
  private lastChange = 0;
  private stopped = false;

  constructor(
    private readonly task: () => Promise<void>,
    private readonly delayMs: number,
    private readonly onError: (error: unknown) => void = () => {},
  ) {}

  /** Something changed. */
  trigger(): void {
    if (this.stopped) return;
    this.lastChange = Date.now();
    if (this.running) {
      this.pending = true;
      return;
    }
    this.schedule(this.delayMs);
  }

  /** True while a run is in progress or one is waiting for its quiet period. */
  get busy(): boolean {
    return this.running !== null || this.timer !== null || this.pending;
  }

  /** No more runs; a run in progress finishes (await `idle()` for it). */
  stop(): void {
    this.stopped = true;
    this.pending = false;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
  }

  /** Resolves when the run in progress, if any, has finished. */
  async idle(): Promise<void> {
    await this.running;
  }

  private schedule(delay: number): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = setTimeout(() => {
      this.timer = null;
      this.start();
    }, delay);
  }

  private start(): void {
    if (this.stopped) return;
    this.running = (async () => {
      try {
        await this.task();
      } catch (error) {
        this.onError(error);
      }
    })().finally(() => {
      this.running = null;
      if (this.pending && !this.stopped) {
        this.pending = false;
        this.schedule(Math.max(0, this.lastChange + this.delayMs - Date.now()));
      }
    });
  }
}

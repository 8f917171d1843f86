import pg from "pg";

/** How often the LISTEN connection is checked with a query (a dead TCP peer can stay silent). */
const CHECK_MS = 10_000;
/** A check that takes longer than this counts as a lost connection. */
const CHECK_TIMEOUT_MS = 5_000;
const FIRST_RETRY_MS = 250;
const MAX_RETRY_MS = 5_000;

export interface ListenerEvents {
  /** The connection was lost (PostgreSQL restarting or unreachable); Hangar goes on without it. */
  onLost(error: Error): void;
  /** Connected again and listening on every channel: notices in between were missed. */
  onRestored(): void;
}

/**
 * The session of Hangar's own that LISTENs for change notices on PostgreSQL. Losing it must never end
 * the process (an unhandled 'error' on a pg.Client would): it reconnects with backoff, LISTENs again on
 * every channel, and says so, so that caches resynchronise. pg-boss and River keep their LISTEN
 * connection the same way.
 */
export class ReconnectingListener {
  private client: pg.Client | null = null;
  private readonly channels = new Set<string>();
  private readonly handlers = new Map<string, Set<(payload: string) => void>>();
  private timer: NodeJS.Timeout | null = null;
  private retryMs = FIRST_RETRY_MS;
  private closed = false;
  private reconnecting = false;

  constructor(
    private readonly url: string,
    private readonly events: ListenerEvents,
  ) {}

  /** The first connection: a failure here is the caller's (Hangar cannot start without its database). */
  async connect(): Promise<pg.Client> {
    const client = await this.open();
    this.timer = setInterval(() => void this.check(), CHECK_MS);
    this.timer.unref();
    return client;
  }

  async listen(channel: string, onPayload: (payload: string) => void): Promise<() => void> {
    let set = this.handlers.get(channel);
    if (!set) {
      set = new Set();
      this.handlers.set(channel, set);
    }
    set.add(onPayload);
    if (!this.channels.has(channel)) {
      this.channels.add(channel);
      await this.client?.query(`LISTEN ${pg.escapeIdentifier(channel)}`);
    }
    return () => set.delete(onPayload);
  }

  async close(): Promise<void> {
    this.closed = true;
    if (this.timer) clearInterval(this.timer);
    const client = this.client;
    this.client = null;
    await client?.end().catch(() => undefined);
  }

  private async open(): Promise<pg.Client> {
    const client = new pg.Client({ connectionString: this.url, keepAlive: true });
    // Without this handler a lost connection would be an uncaught exception.
    client.on("error", (error) => this.lost(client, error));
    client.on("end", () => this.lost(client, new Error("the connection ended")));
    client.on("notification", (msg) => {
      for (const handler of this.handlers.get(msg.channel) ?? []) handler(msg.payload ?? "");
    });
    await client.connect();
    for (const channel of this.channels) await client.query(`LISTEN ${pg.escapeIdentifier(channel)}`);
    this.client = client;
    return client;
  }

  private async check(): Promise<void> {
    const client = this.client;
    if (!client || this.reconnecting) return;
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error("the connection did not answer a check")), CHECK_TIMEOUT_MS);
    });
    try {
      await Promise.race([client.query("SELECT 1"), late]);
    } catch (error) {
      this.lost(client, error as Error);
    } finally {
      clearTimeout(timer);
    }
  }

  private lost(client: pg.Client, error: Error): void {
    if (this.closed || client !== this.client) return;
    this.client = null;
    client.removeAllListeners("end");
    void client.end().catch(() => undefined);
    this.events.onLost(error);
    void this.reconnect();
  }

  private async reconnect(): Promise<void> {
    if (this.reconnecting) return;
    this.reconnecting = true;
    try {
      while (!this.closed) {
        await new Promise((resolve) => setTimeout(resolve, this.retryMs));
        if (this.closed) return;
        try {
          const client = await this.open();
          if (this.closed) {
            await client.end().catch(() => undefined);
            return;
          }
          this.retryMs = FIRST_RETRY_MS;
          this.events.onRestored();
          return;
        } catch {
          this.retryMs = Math.min(this.retryMs * 2, MAX_RETRY_MS);
        }
      }
    } finally {
      this.reconnecting = false;
    }
  }
}

import type { Database } from "../db/client.ts";
import { limitLine } from "../domain/log-lines.ts";
import { announce } from "../events/bus.ts";

export interface LogEntry {
  deploymentId: string;
  replica: string | null;
  stream: "stdout" | "stderr" | "build" | "system";
  line: string;
  at?: Date;
}

/**
 * Buffers log lines and writes them in batches: a chatty model must not cost
 * one transaction per line. Lines are kept in the database so every Hangar
 * process (and a restarted one) can read them.
 */
export class LogWriter {
  private buffer: LogEntry[] = [];
  private timer: NodeJS.Timeout | null = null;
  private flushing: Promise<void> = Promise.resolve();

  constructor(
    private readonly db: Database,
    private readonly onError: (error: unknown) => void,
    private readonly delayMs = 50,
  ) {}

  write(entry: LogEntry): void {
    // Every line, not only a replica's: the same cap, and no NUL (PostgreSQL would refuse the whole batch).
    const line = limitLine(entry.line);
    this.buffer.push({ ...entry, line, at: entry.at ?? new Date() });
    this.timer ??= setTimeout(() => void this.flush(), this.delayMs);
  }

  /** Writes what is buffered; resolves once it is committed. */
  flush(): Promise<void> {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    const batch = this.buffer;
    this.buffer = [];
    this.flushing = this.flushing.then(async () => {
      if (batch.length === 0) return;
      try {
        await this.db.prisma.$transaction(async (tx) => {
          await tx.logLine.createMany({
            data: batch.map((e) => ({
              deploymentId: e.deploymentId,
              replica: e.replica,
              stream: e.stream,
              line: e.line,
              at: e.at ?? new Date(),
            })),
          });
          for (const deploymentId of new Set(batch.map((e) => e.deploymentId))) {
            await announce(tx, { kind: "logs", deploymentId });
          }
        });
      } catch (error) {
        this.onError(error);
      }
    });
    return this.flushing;
  }
}

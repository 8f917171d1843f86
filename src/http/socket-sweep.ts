import type WebSocket from "ws";
import type { Access } from "../domain/access.ts";
import type { Logger } from "../logger.ts";

/** How often open sockets' credentials are checked again; with the credential cache, under 5 s. */
export const SWEEP_INTERVAL_MS = 1_000;

/** graphql-ws' close code for a connection that is no longer allowed. */
const FORBIDDEN_CLOSE = 4403;

/**
 * Closes WebSockets whose credential stopped counting (key revoked or expired,
 * session ended): API.md section 7 wants them closed within 5 s. Each socket
 * is checked through the credential cache, so many sockets of one key cost
 * one database read per cache period.
 */
export class SocketSweep {
  private readonly sockets = new Map<WebSocket, () => Promise<Access | null>>();
  private readonly timer: NodeJS.Timeout;
  private running = false;

  constructor(private readonly log: Logger) {
    this.timer = setInterval(() => void this.run(), SWEEP_INTERVAL_MS);
    this.timer.unref();
  }

  watch(socket: WebSocket, check: () => Promise<Access | null>): void {
    this.sockets.set(socket, check);
    socket.once("close", () => this.sockets.delete(socket));
  }

  stop(): void {
    clearInterval(this.timer);
    this.sockets.clear();
  }

  private async run(): Promise<void> {
    if (this.running) return;
    this.running = true;
    try {
      for (const [socket, check] of this.sockets) {
        let access: Access | null;
        try {
          access = await check();
        } catch (error) {
          // The database is away: keep the socket, ask again next time.
          this.log.warn({ err: error }, "checking a WebSocket's credential failed");
          continue;
        }
        if (!access) {
          this.sockets.delete(socket);
          socket.close(FORBIDDEN_CLOSE, "Forbidden: the credential was revoked or has expired");
        }
      }
    } finally {
      this.running = false;
    }
  }
}

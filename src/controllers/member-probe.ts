import net from "node:net";

/** Connecting to a member's URL to see whether anything listens there: on its network, so short. */
export const REFUSAL_PROBE_TIMEOUT_MS = 1_000;

/**
 * Whether the member at `url` refuses connections: its machine answers, and nothing listens on the port
 * (its process is gone). Only a refusal counts: a timeout, an unreachable host or an accepted
 * connection prove nothing (a hung process, a lost network, a proxy in front), and answer false.
 */
export function refusesConnections(url: string, timeoutMs = REFUSAL_PROBE_TIMEOUT_MS): Promise<boolean> {
  let target: URL;
  try {
    target = new URL(url);
  } catch {
    return Promise.resolve(false);
  }
  const port = Number(target.port || (target.protocol === "https:" ? 443 : 80));
  const host = target.hostname.replace(/^\[(.*)\]$/, "$1");
  return new Promise((resolve) => {
    const socket = net.connect({ host, port });
    const done = (refused: boolean) => {
      socket.destroy();
      clearTimeout(timer);
      resolve(refused);
    };
    const timer = setTimeout(() => done(false), timeoutMs);
    socket.once("connect", () => done(false));
    socket.once("error", (error: NodeJS.ErrnoException) => done(error.code === "ECONNREFUSED"));
  });
}

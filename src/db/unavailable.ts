/**
 * Whether an error means the database could not be reached or went away mid-query (PostgreSQL
 * restarting, stopped, or the network to it down), as opposed to a query that failed on its own.
 * Such errors become HTTP 503 with DATABASE_UNAVAILABLE (API.md section 10) instead of an internal error.
 */
const PRISMA_CODES = new Set(["P1001", "P1002", "P1008", "P1017"]);
const SOCKET_CODES = new Set([
  "ECONNREFUSED",
  "ECONNRESET",
  "ETIMEDOUT",
  "ENOTFOUND",
  "EPIPE",
  "EHOSTUNREACH",
]);
/** SQLSTATE class 08 (connection exception) and 57P0x (the server shutting down or starting). */
const SQLSTATES = /^(08\d{3}|57P0[1-3])$/;
const MESSAGES =
  /Connection terminated|connection ended|Can't reach database server|the database system is (starting up|shutting down)/i;

export function isDatabaseUnavailable(error: unknown): boolean {
  const seen = new Set<unknown>();
  let current: unknown = error;
  while (typeof current === "object" && current !== null && !seen.has(current)) {
    seen.add(current);
    const e = current as {
      code?: unknown;
      originalCode?: unknown;
      message?: unknown;
      cause?: unknown;
      kind?: unknown;
      meta?: { driverAdapterError?: unknown };
    };
    if (
      typeof e.code === "string" &&
      (PRISMA_CODES.has(e.code) || SOCKET_CODES.has(e.code) || SQLSTATES.test(e.code))
    )
      return true;
    if (
      typeof e.originalCode === "string" &&
      (SOCKET_CODES.has(e.originalCode) || SQLSTATES.test(e.originalCode))
    )
      return true;
    if (e.kind === "DatabaseNotReachable" || e.kind === "ConnectionClosed" || e.kind === "SocketTimeout")
      return true;
    if (typeof e.message === "string" && MESSAGES.test(e.message)) return true;
    current = e.meta?.driverAdapterError ?? e.cause;
  }
  return false;
}

/** The message a client gets while the database is away. */
export const DATABASE_UNAVAILABLE_MESSAGE = "the database is unavailable; try again shortly";

import type { IncomingMessage, ServerResponse } from "node:http";
import type { Duplex } from "node:stream";
import { type Refusal, refuseOnSocket } from "./request-target.ts";

/**
 * Answers for requests Node's HTTP parser gives up on ('clientError'). Node's own
 * handler writes its 400 at once and destroys the socket, so on a keep-alive or
 * pipelined connection the answers still owed for earlier, well-formed requests
 * are lost and the client reads the 400 as the answer to one of those. Here the
 * earlier answers go out first, in order, then the refusal, then the close.
 */

/**
 * Per connection: the responses whose answers are not complete yet (each knows its request as `req`),
 * and the newest one. Made once per connection, so that a request costs no WeakMap write.
 */
interface Connection {
  open: Set<ServerResponse>;
  newest: ServerResponse | null;
}

const connections = new WeakMap<Duplex, Connection>();
/** Connections being refused: the broken parser reports again on every later byte. */
const refusing = new WeakSet<Duplex>();

function settled(res: ServerResponse): boolean {
  return res.writableFinished || res.destroyed;
}

/** Records a request on its connection; call first thing in the request listener. */
export function trackExchange(req: IncomingMessage, res: ServerResponse): void {
  const socket = req.socket;
  let connection = connections.get(socket);
  if (!connection) {
    connection = { open: new Set(), newest: null };
    connections.set(socket, connection);
  }
  connection.open.add(res);
  connection.newest = res;
  // A response emits 'close' once, finished or cut off; until then settled() tells a finished one.
  res.on("close", forgetExchange);
}

function forgetExchange(this: ServerResponse): void {
  connections.get(this.req.socket)?.open.delete(this);
}

/** Calls `then` once every response has finished or been closed. */
function whenSettled(responses: ServerResponse[], then: () => void): void {
  let left = responses.filter((res) => !settled(res));
  if (left.length === 0) {
    then();
    return;
  }
  for (const res of left) {
    const one = () => {
      res.off("finish", one);
      res.off("close", one);
      left = left.filter((other) => other !== res);
      if (left.length === 0) then();
    };
    res.on("finish", one);
    res.on("close", one);
  }
}

/** The answer to a parser error, by its code (Node's statuses, plus a JSON body). */
export function clientErrorRefusal(code: string | undefined): Refusal {
  switch (code) {
    case "HPE_HEADER_OVERFLOW":
      return { status: 431, error: "request headers too large", error_code: "headers_too_large" };
    case "HPE_CHUNK_EXTENSIONS_OVERFLOW":
      return { status: 413, error: "chunk extensions too large", error_code: "payload_too_large" };
    case "ERR_HTTP_REQUEST_TIMEOUT":
      return { status: 408, error: "request not received in time", error_code: "request_timeout" };
    case "HPE_INVALID_METHOD":
      return { status: 400, error: "unknown HTTP method", error_code: "client_error" };
    default:
      return { status: 400, error: "malformed HTTP request", error_code: "client_error" };
  }
}

/** How long a response that began before its own request's body broke may still take. */
const BROKEN_BODY_GRACE_MS = 10_000;

/**
 * The server's 'clientError' listener. Never throws. Only parser errors and
 * request timeouts get an answer; a reset or other socket error just ends the socket.
 */
export function answerClientError(error: Error & { code?: string }, socket: Duplex): void {
  const parserError = error.code?.startsWith("HPE_") || error.code === "ERR_HTTP_REQUEST_TIMEOUT";
  if (!parserError || !socket.writable) {
    socket.destroy();
    return;
  }
  if (refusing.has(socket)) return;
  refusing.add(socket);
  const refusal = clientErrorRefusal(error.code);
  const connection = connections.get(socket);
  const open = [...(connection?.open ?? [])];
  const last = connection?.newest ?? undefined;
  // An error inside a request's body (bad chunked encoding, a timeout) belongs to that request.
  const inBody = last !== undefined && !last.req.complete;
  const earlier = open.filter((res) => !(inBody && res === last));
  whenSettled(earlier, () => {
    if (inBody && last.headersSent) {
      // Its handler answered without waiting for the body: let that answer end, then close.
      const cut = setTimeout(() => socket.destroy(), BROKEN_BODY_GRACE_MS);
      cut.unref();
      socket.once("close", () => clearTimeout(cut));
      whenSettled([last], () => socket.end(() => socket.destroy()));
      return;
    }
    // The refusal is this connection's last answer; the handler of a broken request, if any,
    // sees its body cut off as if the client had gone.
    refuseOnSocket(socket, refusal);
  });
}

/**
 * An upgrade pipelined behind requests still being answered: ws would write its
 * 101 in front of those answers, so it is refused (after them, by refuseInTurn).
 */
export function pipelinedUpgrade(socket: Duplex): Refusal | null {
  const owed = [...(connections.get(socket)?.open ?? [])].some((res) => !settled(res));
  if (!owed) return null;
  return {
    status: 400,
    error: "a WebSocket handshake must not follow unanswered requests on its connection",
    error_code: "client_error",
  };
}

/**
 * Refuses an upgrade or CONNECT in its turn: once the answers owed for the requests
 * pipelined before it on the connection have gone out. Never throws.
 */
export function refuseInTurn(socket: Duplex, refusal: Refusal): void {
  // Node leaves an upgraded socket without an error listener, and the wait may be long.
  socket.on("error", () => socket.destroy());
  const owed = [...(connections.get(socket)?.open ?? [])];
  whenSettled(owed, () => refuseOnSocket(socket, refusal));
}

/**
 * A handler's error that only says the client went away (its body cut off, the
 * connection reset: Node's "aborted"), which is no fault of the server's.
 */
export function isClientGone(error: unknown, req: IncomingMessage): boolean {
  const code = typeof error === "object" && error !== null ? (error as { code?: unknown }).code : undefined;
  return (code === "ECONNRESET" || code === "EPIPE") && (req.destroyed || req.socket.destroyed);
}

/**
 * How Hangar reaches a replica: HTTP over a Unix socket that the replica's
 * runner (model-server.mjs) listens on, where every connection must open with
 * the replica's secret before its first request. No TCP port of a replica is
 * ever exposed, so no other process can take one first, and a process that
 * finds the socket (root included) is refused without the secret, which only
 * this Hangar process and the replica itself hold.
 */
import { randomBytes } from "node:crypto";
import { connect } from "node:net";
import { type buildConnector, Pool } from "undici";

/** The first bytes of every connection: this, 64 hex digits of secret, a newline (runner: PREAMBLE). */
export const PREAMBLE_PREFIX = "HANGAR-REPLICA ";

/** Socket paths longer than this do not fit sockaddr_un (108 bytes with the terminator, less on some systems). */
export const MAX_SOCKET_PATH_BYTES = 100;

export function newReplicaSecret(): string {
  return randomBytes(32).toString("hex");
}

export function preamble(secret: string): string {
  return `${PREAMBLE_PREFIX}${secret}\n`;
}

/** Opens connections to a replica's socket, each starting with the secret (undici's `connect` hook). */
export function replicaConnector(socketPath: string, secret: string): buildConnector.connector {
  const opening = preamble(secret);
  return (_options, callback) => {
    const socket = connect(socketPath);
    socket.setNoDelay(true);
    const onError = (error: Error) => callback(error, null);
    socket.once("error", onError);
    socket.once("connect", () => {
      socket.off("error", onError);
      // Written before undici writes the request: the runner reads it first, then parses HTTP.
      socket.write(opening);
      callback(null, socket);
    });
  };
}

/**
 * A keep-alive pool of connections to one replica's socket. One connection
 * per concurrent request, as over TCP before.
 */
export function replicaPool(socketPath: string, secret: string): Pool {
  return new Pool("http://replica", {
    connections: 256,
    pipelining: 1,
    keepAliveTimeout: 60_000,
    connect: replicaConnector(socketPath, secret),
  });
}

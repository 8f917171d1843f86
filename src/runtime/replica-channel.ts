/**
 * How Hangar reaches a replica: HTTP over a Unix socket that the replica's
 * runner (model-server.mjs) listens on, where every connection must open with
 * the replica's secret before its first request. No TCP port of a replica is
 * ever exposed, so no other process can take one first, and a process that
 * finds the socket (root included) is refused without the secret, which only
 * this Hangar process and the replica itself hold.
 *
 * Hangar makes the socket, in a folder only it can write, and the replica
 * inherits it already listening (as descriptor CHANNEL_FD): a replica cannot
 * put anything else at the path Hangar connects to, nor fill Hangar's disk.
 */
import { randomBytes } from "node:crypto";
import { rename } from "node:fs/promises";
import { connect, createServer } from "node:net";
import path from "node:path";
import { type buildConnector, Pool } from "undici";

/** The descriptor a replica's runner finds its listening socket on (model-server.mjs: CHANNEL_FD). */
export const CHANNEL_FD = 3;

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

/** A listening socket made for one replica, to be handed to its process and then let go of here. */
export interface ReplicaSocket {
  /** The descriptor to pass to the replica's process (as CHANNEL_FD). */
  fd: number;
  /** Closes this process's copy at once (it takes no connection after); the path and the replica's copy stay. */
  close(): void;
}

/**
 * Listens on `socketPath` for a replica. Node has no public way to make a
 * listening socket's descriptor, so a net.Server makes it and its handle's
 * descriptor is read. Closing a server also removes its socket file, so it
 * listens under a name of its own first and the file is renamed into place.
 */
export async function listenForReplica(socketPath: string): Promise<ReplicaSocket> {
  // Short (a socket address holds about 100 bytes) and random: two sockets made in one folder at once
  // do not meet.
  const first = path.join(path.dirname(socketPath), `.${randomBytes(3).toString("hex")}`);
  const server = createServer((socket) => socket.destroy());
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(first, () => {
      server.off("error", reject);
      resolve();
    });
  });
  // libuv closes the descriptor within close(), so nothing is accepted here once it returns.
  const close = () => {
    server.close();
  };
  const fd = (server as unknown as { _handle?: { fd?: unknown } })._handle?.fd;
  if (typeof fd !== "number" || fd < 0) {
    close();
    throw new Error("could not make the replica's socket: no descriptor for it");
  }
  try {
    await rename(first, socketPath);
  } catch (error) {
    close();
    throw error;
  }
  return { fd, close };
}

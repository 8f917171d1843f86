// @ts-check
// Spawns Hangar's replica processes (runtime/spawner.ts), so that Hangar need not fork itself for each:
// a fork costs in proportion to the forking process's memory, and Hangar's is large (15-25 ms per start
// at a few hundred MB, about 60 at 1 GB on a 2-core machine; a few ms from this small process).
//
// Messages over the IPC channel, from Hangar: {op: "spawn", id, file, args, env, cwd, socketPath,
// extraPipes}. To Hangar: {op: "spawned", id, pid}, then one {op: "pipe", id, fd} per pipe of the
// process (stdin, stdout, stderr, then fd 4 on), each with that pipe's socket as the message's handle,
// then {op: "exit", id, code, signal} when it exits; or {op: "failed", id, error} when nothing was
// spawned. Descriptor 3 of the process is its channel: a Unix socket listening at socketPath, made here
// as runtime/replica-channel.ts's listenForReplica makes it (see there), whose copy here is closed once
// the process has its own. Nothing the process writes is read here: its pipes are handed over unread.
//
// When Hangar goes (the channel closes, however it ended) this process exits, and the replicas go with
// it: each dies with its parent (setpriv's parent-death signal, bubblewrap's --die-with-parent), and
// their stdin, whose other end was Hangar's, has ended anyway.
import { spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { rename } from "node:fs/promises";
import { createServer } from "node:net";
import path from "node:path";

/**
 * @param {any} message
 * @param {any} [handle]
 */
function send(message, handle) {
  if (process.connected) process.send?.(message, handle);
}

/**
 * A listening socket at `socketPath` (listenForReplica's way: under a name of its own, renamed into
 * place, so that closing it here does not remove the replica's path).
 * @param {string} socketPath
 */
async function listen(socketPath) {
  const first = path.join(path.dirname(socketPath), `.${randomBytes(3).toString("hex")}`);
  const server = createServer((socket) => socket.destroy());
  await new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen(first, () => {
      server.off("error", reject);
      resolve(undefined);
    });
  });
  const fd = /** @type {any} */ (server)._handle?.fd;
  if (typeof fd !== "number" || fd < 0) {
    server.close();
    throw new Error("no descriptor for it");
  }
  try {
    await rename(first, socketPath);
  } catch (err) {
    server.close();
    throw err;
  }
  return { server, fd };
}

/** @param {unknown} err */
const messageOf = (err) => (err instanceof Error ? err.message : String(err));

/**
 * @param {{ id: string, file: string, args: string[], env: Record<string, string>, cwd: string,
 *   socketPath: string, extraPipes: number }} order
 */
async function start(order) {
  const { id } = order;
  /** @type {Awaited<ReturnType<typeof listen>>} */
  let channel;
  try {
    channel = await listen(order.socketPath);
  } catch (err) {
    send({ op: "failed", id, error: `could not make the replica's socket: ${messageOf(err)}` });
    return;
  }
  /** @type {import("node:child_process").ChildProcess} */
  let child;
  try {
    child = spawn(order.file, order.args, {
      cwd: order.cwd,
      env: order.env,
      stdio: [
        "pipe",
        "pipe",
        "pipe",
        channel.fd,
        ...Array.from({ length: order.extraPipes }, () => /** @type {const} */ ("pipe")),
      ],
      detached: true,
    });
  } catch (err) {
    channel.server.close();
    send({ op: "failed", id, error: messageOf(err) });
    return;
  }
  // The process has its copy: this one would only take connections meant for it.
  channel.server.close();
  if (child.pid === undefined) {
    // Not spawned (the program is missing, say): its error follows.
    child.once("error", (err) => send({ op: "failed", id, error: err.message }));
    return;
  }
  const pipes = /** @type {ReadonlyArray<any>} */ (child.stdio);
  for (const pipe of pipes) {
    if (!pipe?._handle) continue;
    // Read nothing here (Node starts reading a pipe as it makes it, and this turn of the event loop
    // has read nothing yet): every byte is for Hangar, which reads the same socket once it is handed over.
    pipe._handle.reading = false;
    pipe._handle.readStop?.();
    pipe.on("error", () => {});
  }
  child.once("exit", (code, signal) => send({ op: "exit", id, code, signal }));
  send({ op: "spawned", id, pid: child.pid });
  for (const [fd, pipe] of pipes.entries()) {
    if (pipe?._handle) send({ op: "pipe", id, fd }, pipe);
  }
}

process.on("message", (/** @type {any} */ message) => {
  if (message?.op === "spawn") {
    start(message).catch((err) => send({ op: "failed", id: message.id, error: messageOf(err) }));
  }
});

process.on("disconnect", () => process.exit(0));

// Starts slirp4netns for Hangar's fenced replicas (runtime/slirp.ts), so that Hangar need not fork
// itself for each one: a fork costs in proportion to the forking process's memory, and this process
// is small (about 20 ms less per fenced start with Hangar near 1 GB).
//
// Messages over the IPC channel, from Hangar: {op: "start", id, file, pid, readyMs} and
// {op: "stop", id}; to Hangar: {id, ok: true} once the replica's network is up, or {id, ok: false,
// error}. When Hangar goes (the channel closes, however it ended) every slirp4netns is killed and
// this process exits; each slirp4netns also exits by itself when its exit pipe, held here, closes.
import { spawn } from "node:child_process";

/** @type {Map<string, import("node:child_process").ChildProcess>} */
const running = new Map();

/** @param {{ id: string, ok: boolean, error?: string }} message */
function reply(message) {
  if (process.connected) process.send?.(message);
}

/** @param {{ id: string, file: string, pid: number, readyMs: number }} order */
function start({ id, file, pid, readyMs }) {
  const args = [
    "--configure",
    "--mtu=65520",
    "--disable-host-loopback",
    "--ready-fd=3",
    "--exit-fd=4",
    String(pid),
    "tap0",
  ];
  const slirp = spawn(file, args, { stdio: ["ignore", "ignore", "pipe", "pipe", "pipe"] });
  for (const pipe of slirp.stdio) pipe?.on("error", () => {});
  running.set(id, slirp);
  let said = "";
  slirp.stderr?.on("data", (chunk) => {
    said = (said + chunk.toString()).slice(-500);
  });
  let answered = false;
  /** @param {string | null} error */
  const answer = (error) => {
    if (answered) return;
    answered = true;
    clearTimeout(timer);
    if (error !== null) {
      slirp.kill("SIGKILL");
      running.delete(id);
      reply({ id, ok: false, error });
    } else {
      reply({ id, ok: true });
    }
  };
  const timer = setTimeout(() => answer(`not ready after ${readyMs} ms`), readyMs);
  slirp.stdio[3]?.once("data", () => answer(null));
  slirp.once("error", (err) => answer(`could not start: ${err.message}`));
  slirp.once("exit", () => {
    if (running.get(id) === slirp) running.delete(id);
    answer(`exited: ${said.trim()}`);
  });
}

process.on("message", (/** @type {any} */ message) => {
  if (message?.op === "start") start(message);
  else if (message?.op === "stop") {
    running.get(message.id)?.kill("SIGKILL");
    running.delete(message.id);
  }
});

process.on("disconnect", () => {
  for (const slirp of running.values()) slirp.kill("SIGKILL");
  process.exit(0);
});

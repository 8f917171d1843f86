/**
 * The spawn helper (src/runtime/spawner.ts, spawn-helper.mjs): processes spawned for Hangar by a small
 * process of its own, whose pipes Hangar then holds as if it had spawned them itself.
 */
import { mkdtemp, rm } from "node:fs/promises";
import { connect } from "node:net";
import { tmpdir } from "node:os";
import path from "node:path";
import type { Readable } from "node:stream";
import { afterEach, describe, expect, it } from "vitest";
import { type ReplicaProcess, Spawner } from "../../src/runtime/spawner.ts";

const cleanups: Array<() => unknown> = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

async function setUp() {
  const dir = await mkdtemp(path.join(tmpdir(), "hangar-spawner-"));
  const spawner = new Spawner();
  cleanups.push(() => rm(dir, { recursive: true, force: true }));
  cleanups.push(() => spawner.close());
  return { dir, spawner };
}

const node = (script: string) => ({ file: process.execPath, args: ["-e", script] });

function read(stream: Readable | null): Promise<string> {
  return new Promise((resolve) => {
    let text = "";
    stream?.setEncoding("utf8");
    stream?.on("data", (chunk: string) => {
      text += chunk;
    });
    stream?.once("close", () => resolve(text));
  });
}

function closed(child: ReplicaProcess): Promise<[number | null, NodeJS.Signals | null]> {
  return new Promise((resolve) => child.once("close", (code, signal) => resolve([code, signal])));
}

describe("Spawner", () => {
  it("hands over the process's pipes unread, its channel listening at the path, and its exit", async () => {
    const { dir, spawner } = await setUp();
    const socketPath = path.join(dir, "http.sock");
    // Writes before anything could have been handed over, echoes stdin, accepts one connection on fd 3.
    const child = await spawner.spawn({
      ...node(`
        process.stdout.write("early\\n");
        process.stderr.write("to stderr\\n");
        const server = require("node:net").createServer((s) => { s.end("channel\\n"); server.close(); });
        server.listen({ fd: 3 });
        let input = "";
        process.stdin.on("data", (d) => { input += d; });
        process.stdin.on("end", () => { process.stdout.write("got " + input); process.exit(7); });
      `),
      env: { PATH: process.env.PATH ?? "" },
      cwd: dir,
      socketPath,
      extraPipes: 0,
    });
    expect(child.pid).toBeGreaterThan(0);
    const out = read(child.stdout);
    const err = read(child.stderr);
    const done = closed(child);
    const answer = await new Promise<string>((resolve, reject) => {
      const socket = connect(socketPath);
      let text = "";
      socket.on("data", (chunk) => {
        text += chunk.toString();
      });
      socket.on("end", () => resolve(text));
      socket.on("error", reject);
    });
    expect(answer).toBe("channel\n");
    child.stdin?.end("hello\n");
    expect(await done).toEqual([7, null]);
    expect(child.exitCode).toBe(7);
    expect(await out).toBe("early\ngot hello\n");
    expect(await err).toBe("to stderr\n");
  });

  it("gives the extra pipes from fd 4 on, and reports a signal", async () => {
    const { dir, spawner } = await setUp();
    const child = await spawner.spawn({
      ...node(`require("node:fs").writeSync(4, "on four"); setInterval(() => {}, 1000);`),
      env: { PATH: process.env.PATH ?? "" },
      cwd: dir,
      socketPath: path.join(dir, "http.sock"),
      extraPipes: 1,
    });
    const four = child.stdio[4] as Readable;
    const text = await new Promise<string>((resolve) =>
      four.once("data", (chunk) => resolve(chunk.toString())),
    );
    expect(text).toBe("on four");
    const done = closed(child);
    // Detached: a process group of its own, as a replica's.
    process.kill(-(child.pid as number), "SIGTERM");
    expect(await done).toEqual([null, "SIGTERM"]);
  });

  it("says why when nothing could be spawned: an error, then close", async () => {
    const { dir, spawner } = await setUp();
    const child = await spawner.spawn({
      file: path.join(dir, "no-such-program"),
      args: [],
      env: {},
      cwd: dir,
      socketPath: path.join(dir, "http.sock"),
      extraPipes: 0,
    });
    const error = new Promise<Error>((resolve) => child.once("error", resolve));
    const done = closed(child);
    expect((await error).message).toMatch(/ENOENT/);
    await done;
    expect(child.pid).toBeUndefined();
  });

  it("after close, refuses to spawn (an error, then close)", async () => {
    const { dir, spawner } = await setUp();
    spawner.close();
    const child = await spawner.spawn({
      ...node(""),
      env: {},
      cwd: dir,
      socketPath: path.join(dir, "http.sock"),
      extraPipes: 0,
    });
    const error = new Promise<Error>((resolve) => child.once("error", resolve));
    expect((await error).message).toMatch(/not running/);
  });
});

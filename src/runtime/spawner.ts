/**
 * Replica processes spawned for Hangar by one small helper process (spawn-helper.mjs) rather than by
 * Hangar itself: a fork costs in proportion to the forking process's memory, and Hangar's is large, so
 * each start saves a fork of Hangar (15-25 ms at a few hundred MB on a 2-core machine, more under load
 * or at 1 GB), time a request waking a deployment from zero waits. The process's pipes are handed over
 * to Hangar unread (sockets passed over the IPC channel), so Hangar reads and writes them as its own;
 * only its start and its exit go through the helper. The helper starts on first use and ends with
 * Hangar, taking the replicas along (they die with their parent).
 */
import type { ChildProcess } from "node:child_process";
import { EventEmitter } from "node:events";
import type { Socket } from "node:net";
import type { Readable, Writable } from "node:stream";
import { forkHelper } from "./helper-process.ts";

/** A spawn the helper has not answered by then is given up on (and what it spawns late is killed). */
const SPAWN_TIMEOUT_MS = 30_000;

function killGroup(pid: number): void {
  try {
    process.kill(-pid, "SIGKILL");
  } catch {
    // Already gone.
  }
}

/** A replica's process as Hangar holds it. Events as a ChildProcess's: "error", "exit", "close". */
export interface ReplicaProcess extends EventEmitter {
  /** Undefined when nothing was spawned (its "error" says why). */
  readonly pid: number | undefined;
  readonly exitCode: number | null;
  readonly signalCode: NodeJS.Signals | null;
  readonly stdin: Writable | null;
  readonly stdout: Readable | null;
  readonly stderr: Readable | null;
  /** By descriptor: stdin, stdout, stderr, the channel (null: the process's own), the extra pipes. */
  readonly stdio: ReadonlyArray<Readable | Writable | null>;
}

export interface SpawnOrder {
  file: string;
  args: string[];
  env: Record<string, string>;
  cwd: string;
  /** Where the process's channel listens (made by the helper, as replica-channel.ts does); its descriptor 3. */
  socketPath: string;
  /** Pipes beyond stdin, stdout and stderr: descriptor 4 on. */
  extraPipes: number;
}

type HelperMessage =
  | { op: "spawned"; id: string; pid: number }
  | { op: "pipe"; id: string; fd: number }
  | { op: "exit"; id: string; code: number | null; signal: NodeJS.Signals | null }
  | { op: "failed"; id: string; error: string };

/** A process the helper spawned, filled in as its messages arrive. */
class HelperProcess extends EventEmitter implements ReplicaProcess {
  pid: number | undefined = undefined;
  exitCode: number | null = null;
  signalCode: NodeJS.Signals | null = null;
  readonly pipes: (Socket | null)[];
  private missing: number;
  private exited = false;

  constructor(
    extraPipes: number,
    /** Called once every pipe has come: the process is Hangar's to use. */
    private readonly complete: () => void,
  ) {
    super();
    this.pipes = Array.from({ length: 4 + extraPipes }, () => null);
    this.missing = 3 + extraPipes;
  }

  get stdin(): Writable | null {
    return this.pipes[0] ?? null;
  }

  get stdout(): Readable | null {
    return this.pipes[1] ?? null;
  }

  get stderr(): Readable | null {
    return this.pipes[2] ?? null;
  }

  get stdio(): ReadonlyArray<Readable | Writable | null> {
    return this.pipes;
  }

  pipe(fd: number, socket: Socket): void {
    if (fd === 3 || fd >= this.pipes.length || this.pipes[fd]) {
      socket.destroy();
      return;
    }
    this.pipes[fd] = socket;
    if (--this.missing === 0) this.complete();
  }

  /** The process ended (code, signal): "exit", then "close" once its output pipes have closed, as a ChildProcess does. */
  exit(code: number | null, signal: NodeJS.Signals | null): void {
    if (this.exited) return;
    this.exited = true;
    this.exitCode = code;
    this.signalCode = signal;
    this.emit("exit", code, signal);
    this.pipes[0]?.destroy();
    const open = this.pipes.slice(1).filter((pipe): pipe is Socket => pipe !== null && !pipe.closed);
    let left = open.length;
    const closed = () => {
      if (--left === 0) this.emit("close", code, signal);
    };
    if (left === 0) {
      this.emit("close", code, signal);
      return;
    }
    for (const pipe of open) pipe.once("close", closed);
  }

  /** Nothing was spawned: "error", then "close", as a ChildProcess that could not start. */
  failed(error: Error): void {
    if (this.exited) return;
    this.exited = true;
    for (const pipe of this.pipes) pipe?.destroy();
    this.emit("error", error);
    this.emit("close", null, null);
  }
}

interface Spawning {
  process: HelperProcess;
  resolve(process: HelperProcess): void;
}

export class Spawner {
  private helper: ChildProcess | null = null;
  private readonly spawning = new Map<string, Spawning>();
  /** Processes spawned and not exited, by order id. */
  private readonly live = new Map<string, HelperProcess>();
  private nextId = 0;
  private closed = false;

  /**
   * Spawns the process `order` describes (detached: a process group of its own); resolves once Hangar
   * holds its pipes. A process that could not be spawned resolves too, and then says why as a
   * ChildProcess does (an "error", then "close"), once the caller has had a turn to listen.
   */
  spawn(order: SpawnOrder): Promise<ReplicaProcess> {
    const id = String(++this.nextId);
    return new Promise((resolve) => {
      let settled = false;
      const timer = setTimeout(() => {
        if (child.pid) killGroup(child.pid);
        this.fail(id, new Error(`the spawn helper did not answer within ${SPAWN_TIMEOUT_MS / 1000} s`));
      }, SPAWN_TIMEOUT_MS);
      timer.unref();
      const settle = (process: HelperProcess) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        this.spawning.delete(id);
        resolve(process);
      };
      const child = new HelperProcess(order.extraPipes, () => {
        this.live.set(id, child);
        settle(child);
      });
      this.spawning.set(id, { process: child, resolve: settle });
      const helper = this.closed ? null : this.running();
      if (!helper?.connected) {
        this.fail(id, new Error("the spawn helper is not running"));
        return;
      }
      helper.send({ op: "spawn", id, ...order });
    });
  }

  /** Ends the helper (shutdown, once the replicas have stopped): it takes no more orders. */
  close(): void {
    this.closed = true;
    if (this.helper?.connected) this.helper.disconnect();
    this.helper = null;
  }

  private fail(id: string, error: Error): void {
    const pending = this.spawning.get(id);
    if (!pending) return;
    pending.resolve(pending.process);
    setImmediate(() => pending.process.failed(error));
  }

  private onMessage(message: HelperMessage, handle: unknown): void {
    if (message.op === "pipe") {
      const socket = handle as Socket | undefined;
      const target = this.spawning.get(message.id)?.process;
      if (!socket) return;
      if (!target) {
        socket.destroy();
        return;
      }
      socket.on("error", () => {});
      target.pipe(message.fd, socket);
    } else if (message.op === "spawned") {
      const target = this.spawning.get(message.id)?.process;
      // Spawned after it was given up on: it would run for nobody.
      if (target) target.pid = message.pid;
      else killGroup(message.pid);
    } else if (message.op === "exit") {
      const target = this.live.get(message.id);
      this.live.delete(message.id);
      target?.exit(message.code, message.signal);
    } else if (message.op === "failed") {
      this.fail(message.id, new Error(message.error));
    }
  }

  private running(): ChildProcess {
    if (this.helper?.connected) return this.helper;
    const helper = forkHelper("spawn-helper.mjs");
    this.helper = helper;
    helper.on("message", (message: HelperMessage, handle: unknown) => this.onMessage(message, handle));
    let gone = false;
    const lost = (why: string) => {
      if (gone) return;
      gone = true;
      if (this.helper === helper) this.helper = null;
      // Its replicas die with it (parent-death signal); whichever would not is killed here.
      for (const [id, child] of this.live) {
        this.live.delete(id);
        if (child.pid) killGroup(child.pid);
        child.exit(null, "SIGKILL");
      }
      for (const [id, { process: child }] of this.spawning) {
        if (child.pid) killGroup(child.pid);
        this.fail(id, new Error(`the spawn helper ${why}`));
      }
    };
    helper.once("exit", (code, signal) => lost(`exited (${signal ?? code})`));
    helper.once("error", (error) => lost(`could not run: ${error.message}`));
    // It never keeps Hangar running: Hangar's exit closes the channel, and that ends the helper.
    helper.unref();
    helper.channel?.unref();
    return helper;
  }
}

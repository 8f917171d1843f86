/**
 * slirp4netns, a fenced replica's way out (API.md section 9: replicas may open connections out),
 * started through one small helper process (slirp-helper.mjs) rather than by Hangar itself: forking
 * costs in proportion to the forking process's memory, and Hangar's is large, so each start saves a
 * fork of Hangar. The helper starts on first use and ends with Hangar, taking every slirp4netns along.
 */
import type { ChildProcess } from "node:child_process";
import { forkHelper } from "./helper-process.ts";

/** A slirp4netns not ready by then is given up on (the replica runs without a network out). */
const READY_MS = 10_000;
/** The helper's own answer may take this much longer before Hangar stops waiting for it. */
const HELPER_SLACK_MS = 5_000;

/** A replica's running slirp4netns. */
export interface SlirpNetwork {
  stop(): void;
}

interface Pending {
  helper: ChildProcess;
  settle(error: Error | null): void;
}

interface HelperReply {
  id: string;
  ok: boolean;
  error?: string;
}

export class SlirpLauncher {
  private helper: ChildProcess | null = null;
  private readonly pending = new Map<string, Pending>();
  private nextId = 0;

  constructor(private readonly file: string) {}

  /** Starts slirp4netns for the network namespace of process `pid`; resolves once it is up. */
  async start(pid: number): Promise<SlirpNetwork> {
    const helper = this.running();
    const id = String(++this.nextId);
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => {
        // Given up on here, so ended there too: a late start would run for nobody.
        if (helper.connected) helper.send({ op: "stop", id });
        this.settle(id, new Error("slirp4netns's helper did not answer"));
      }, READY_MS + HELPER_SLACK_MS);
      this.pending.set(id, {
        helper,
        settle: (error) => {
          clearTimeout(timer);
          if (error) reject(error);
          else resolve();
        },
      });
      helper.send({ op: "start", id, file: this.file, pid, readyMs: READY_MS });
    });
    return {
      stop: () => {
        if (helper.connected) helper.send({ op: "stop", id });
      },
    };
  }

  private settle(id: string, error: Error | null): void {
    const pending = this.pending.get(id);
    if (!pending) return;
    this.pending.delete(id);
    pending.settle(error);
  }

  private running(): ChildProcess {
    if (this.helper?.connected) return this.helper;
    const helper = forkHelper("slirp-helper.mjs");
    this.helper = helper;
    helper.on("message", (reply: HelperReply) => {
      this.settle(reply.id, reply.ok ? null : new Error(`slirp4netns ${reply.error ?? "failed"}`));
    });
    const gone = (why: string) => {
      if (this.helper === helper) this.helper = null;
      for (const [id, pending] of this.pending) {
        if (pending.helper === helper) this.settle(id, new Error(`slirp4netns's helper ${why}`));
      }
    };
    helper.once("exit", (code, signal) => gone(`exited (${signal ?? code})`));
    helper.once("error", (error) => gone(`could not run: ${error.message}`));
    // It never keeps Hangar running: Hangar's exit closes the channel, and that ends the helper.
    helper.unref();
    helper.channel?.unref();
    return helper;
  }
}

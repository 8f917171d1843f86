/**
 * The host side of replicas' private files: per replica, the folder its
 * channel socket lives in, and (unfenced) its own HOME and TMPDIR. Everything
 * sits under one folder per Hangar process, so that a later start can remove
 * what a killed process left behind.
 */
import { mkdir, readdir, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { ownerIsAlive, ownerOf } from "./process-identity.ts";
import { MAX_SOCKET_PATH_BYTES } from "./replica-channel.ts";

export interface ReplicaDirs {
  /** The replica's folder on the host. */
  root: string;
  /** Holds the channel socket, which Hangar makes (a replica inherits it bound); no replica writes here. */
  socketDir: string;
  socket: string;
  home: string;
  tmp: string;
}

/** Longest replica folder name used below (an ID is 20 characters) plus "/run/http.sock". */
const TAIL_BYTES = "/rep_0123456789abcdef/run/http.sock".length;

export class Workspace {
  private constructor(readonly root: string) {}

  /**
   * Opens this process's folder under `<dataDir>/run`, or under the system's
   * temporary folder when that path is too long for a socket, and removes the
   * folders of Hangar processes that are gone.
   */
  static async open(
    dataDir: string,
    owner: string = ownerOf(process.pid) ?? `p${process.pid}`,
  ): Promise<Workspace> {
    let base = path.join(dataDir, "run");
    if (Buffer.byteLength(path.join(base, owner)) + TAIL_BYTES > MAX_SOCKET_PATH_BYTES) {
      base = path.join(tmpdir(), `hangar-run-${process.getuid?.() ?? 0}`);
    }
    await mkdir(base, { recursive: true, mode: 0o700 });
    await reapDeadOwners(base);
    const root = path.join(base, owner);
    await mkdir(root, { recursive: true, mode: 0o700 });
    return new Workspace(root);
  }

  async forReplica(replicaId: string): Promise<ReplicaDirs> {
    const root = path.join(this.root, replicaId);
    const dirs: ReplicaDirs = {
      root,
      socketDir: path.join(root, "run"),
      socket: path.join(root, "run", "http.sock"),
      home: path.join(root, "home"),
      tmp: path.join(root, "tmp"),
    };
    // Side by side (each makes `root` as needed): a replica's start waits for one round trip, not three.
    await Promise.all(
      [dirs.socketDir, dirs.home, dirs.tmp].map((dir) => mkdir(dir, { recursive: true, mode: 0o700 })),
    );
    return dirs;
  }

  async removeReplica(replicaId: string): Promise<void> {
    await rm(path.join(this.root, replicaId), { recursive: true, force: true });
  }

  async close(): Promise<void> {
    await rm(this.root, { recursive: true, force: true });
  }
}

async function reapDeadOwners(base: string): Promise<void> {
  const entries = await readdir(base).catch(() => [] as string[]);
  for (const name of entries) {
    if (!ownerIsAlive(name)) {
      await rm(path.join(base, name), { recursive: true, force: true });
    }
  }
}

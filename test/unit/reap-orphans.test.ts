/**
 * What a starting deployment controller does about the Hangar processes that are gone (reapOrphans):
 * their replica rows end at their last heartbeat, by the membership's verdict, and of the processes
 * only those a gone start left on this machine are killed, and only while they still are its replicas.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { afterEach, describe, expect, it } from "vitest";
import { newId } from "../../src/domain/ids.ts";
import { machineOwnerOf } from "../../src/runtime/process-identity.ts";
import { useControllerWorld } from "../support/controller-world.ts";
import { waitFor } from "../support/wait.ts";

const w = useControllerWorld();

const children: ChildProcess[] = [];
afterEach(() => {
  for (const child of children.splice(0)) {
    try {
      if (child.pid) process.kill(-child.pid, "SIGKILL");
    } catch {
      // Gone already.
    }
  }
});

/** A process in a group of its own that sleeps, with `env` added to its environment. */
function sleeper(env: Record<string, string> = {}): ChildProcess {
  const child = spawn("sleep", ["60"], { detached: true, stdio: "ignore", env: { ...process.env, ...env } });
  children.push(child);
  return child;
}

const alive = (pid: number) => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

/** The process name (MemberStart.process) of a process that ran on this machine and has ended. */
async function endedProcessName(): Promise<string> {
  const child = sleeper();
  const name = machineOwnerOf(child.pid as number);
  const exited = new Promise((resolve) => child.once("exit", resolve));
  child.kill("SIGKILL");
  await exited;
  return name;
}

const LAST_SEEN = new Date("2026-01-02T03:04:05.000Z");

/** A start of a member, as the Member table holds it. */
async function memberStart(processName: string): Promise<string> {
  const id = `host:${Math.floor(Math.random() * 1e6)}:${newId("Replica").slice(-6)}`;
  await w.db.prisma.member.create({
    data: {
      id,
      name: id,
      process: processName,
      startedAt: new Date(LAST_SEEN.getTime() - 60_000),
      lastSeenAt: LAST_SEEN,
      expiresAt: LAST_SEEN,
    },
  });
  return id;
}

/**
 * A replica row recorded as running by `owner`, and a process under its PID: one that carries the
 * replica's ID in its environment (as a replica does), or, with `carriesId` false, one that does not (the
 * PID was reused).
 */
async function replicaLeft(deploymentId: string, owner: string, carriesId = true) {
  const id = newId("Replica");
  const child = sleeper(carriesId ? { HANGAR_REPLICA_ID: id } : {});
  await w.db.prisma.replica.create({
    data: {
      id,
      deploymentId,
      owner,
      pid: child.pid as number,
      state: "READY",
      startedAt: new Date(LAST_SEEN.getTime() - 30_000),
    },
  });
  return { id, pid: child.pid as number };
}

describe("DeploymentController at start: what gone Hangar processes left", () => {
  it("kills a replica a gone start left on this machine and ends the rows of every gone start at its last heartbeat", async () => {
    const deploymentId = await w.pushed();
    // A start on this machine whose process has ended: its replica outlived it.
    const ended = await memberStart(await endedProcessName());
    const left = await replicaLeft(deploymentId, ended);
    // Its row names a PID that another process has now: that one is not its replica.
    const reused = await replicaLeft(deploymentId, ended, false);
    // A start elsewhere (no process name this machine knows): its PIDs mean nothing here.
    const elsewhere = await replicaLeft(deploymentId, await memberStart(""));
    // A start on this machine whose process still runs (the embedded database says it is gone all the
    // same: its rows end, but its processes are its own).
    const living = await replicaLeft(deploymentId, await memberStart(machineOwnerOf(process.pid)));

    await w.restart();

    await waitFor(() => !alive(left.pid), { what: "the left replica to be killed" });
    for (const other of [reused, elsewhere, living]) expect(alive(other.pid)).toBe(true);
    const rows = await w.db.prisma.replica.findMany({
      where: { id: { in: [left, reused, elsewhere, living].map((replica) => replica.id) } },
    });
    expect(rows).toHaveLength(4);
    for (const row of rows) {
      expect(row).toMatchObject({ state: "STOPPED", stoppedAt: LAST_SEEN, exitReason: "owner process died" });
    }
  });
});

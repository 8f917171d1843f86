/**
 * Machine owner names (runtime/process-identity.ts): how a member sees that another member's process on
 * the same machine has ended, and never judges one it cannot see.
 */
import { spawn } from "node:child_process";
import { once } from "node:events";
import { describe, expect, it } from "vitest";
import { machineOwnerHasEnded, machineOwnerOf } from "../../src/runtime/process-identity.ts";

describe("machine owner names", () => {
  it("say a process on this machine has ended once it has, and not before", async () => {
    const child = spawn(process.execPath, ["-e", "setInterval(() => {}, 1000)"], { stdio: "ignore" });
    await once(child, "spawn");
    const name = machineOwnerOf(child.pid as number);
    expect(name).toMatch(/^[0-9a-f-]{36}\/p\d+-s\d+-n\d+$/);
    expect(machineOwnerHasEnded(name)).toBe(false);
    child.kill("SIGKILL");
    await once(child, "exit");
    expect(machineOwnerHasEnded(name)).toBe(true);
  });

  it("never judge a process of another machine, or a name they cannot read", () => {
    const mine = machineOwnerOf(process.pid);
    expect(machineOwnerHasEnded(mine)).toBe(false);
    const elsewhere = mine.replace(/^[0-9a-f-]{36}/, "00000000-0000-0000-0000-000000000000");
    // The same PID namespace inode and a PID that does not exist here: still not ours to judge.
    expect(machineOwnerHasEnded(elsewhere.replace(/p\d+-/, "p99999999-"))).toBe(false);
    expect(machineOwnerHasEnded("")).toBe(false);
    expect(machineOwnerHasEnded("not a name")).toBe(false);
  });
});

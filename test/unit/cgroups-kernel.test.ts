/**
 * Replica cgroups (src/runtime/cgroups.ts) on the real kernel: the limits hold for a child that joined
 * through joinCommand, killAll and reapLeftovers empty groups, close() removes what it made.
 * Needs root and a cgroup v1 or v2 filesystem with memory, cpu and pids; skipped otherwise.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { type Cgroups, joinCommand, openCgroups, type ReplicaCgroup } from "../../src/runtime/cgroups.ts";
import { ownerOf } from "../../src/runtime/process-identity.ts";

const isRoot = process.getuid?.() === 0;
const main = isRoot ? await openCgroups() : null;
const skipReason = !isRoot ? "not root" : main?.enforced ? null : main?.reason;

/** Owner names for extra instances: this process with a start time it does not have, so dead-looking to anyone. */
function fakeOwner(offset: number): string {
  const [, pid, start, ns] = /^p(\d+)-s(\d+)-n(\d+)$/.exec(ownerOf(process.pid)!)!;
  return `p${pid}-s${Number(start) + offset}-n${ns}`;
}

const instances: Cgroups[] = main ? [main] : [];
const children: ChildProcess[] = [];

afterAll(async () => {
  for (const child of children)
    if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
  for (const cgroups of instances) await cgroups.close().catch(() => {});
});

async function waitFor(what: string, cond: () => boolean | Promise<boolean>, ms = 20_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await cond())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

interface Run {
  child: ChildProcess;
  output: { stdout: string; stderr: string };
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

function startIn(group: ReplicaCgroup, file: string, args: string[], detached = false): Run {
  const [shell, shellArgs] = joinCommand(group.procsFiles, file, args);
  const child = spawn(shell, shellArgs, { env: { PATH: process.env.PATH ?? "/usr/bin:/bin" }, detached });
  children.push(child);
  const output = { stdout: "", stderr: "" };
  child.stdout?.on("data", (d: Buffer) => {
    output.stdout += d;
  });
  child.stderr?.on("data", (d: Buffer) => {
    output.stderr += d;
  });
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.on("exit", (code, signal) => resolve({ code, signal })),
  );
  return { child, output, exited };
}

/** The group directory (v1: of the hierarchy) that has this control file. */
function dirWith(group: ReplicaCgroup, file: string): string {
  const dir = group.procsFiles.map(dirname).find((d) => existsSync(join(d, file)));
  if (!dir) throw new Error(`no ${file} in ${group.procsFiles.join(", ")}`);
  return dir;
}

const counter = (text: string, key: string) =>
  Number(new RegExp(`^${key}\\s+(\\d+)`, "m").exec(text)?.[1] ?? 0);

describe.skipIf(skipReason !== null)(
  `cgroups on this kernel${skipReason ? ` (skipped: ${skipReason})` : ""}`,
  () => {
    const cgroups = main!;
    let n = 0;
    const id = (what: string) => `rep_kernel_${what}_${process.pid}_${n++}`;

    it("OOM-kills a child over its memory and says so", async () => {
      const group = await cgroups.create(id("oom"), { cpu: 1, memoryMb: 64, pids: 64 });
      const run = startIn(group, process.execPath, [
        "-e",
        "const b = []; for (let i = 0; i < 200; i++) b.push(Buffer.alloc(1 << 20, 1)); console.log('survived')",
      ]);
      const { signal } = await run.exited;
      expect(signal).toBe("SIGKILL");
      expect(run.output.stdout).not.toContain("survived");
      expect(await group.oomKilled()).toBe(true);
      await group.killAll();
      await group.remove();
      expect(await group.oomKilled()).toBe(true);
    });

    it("does not report an OOM kill for a child within its memory", async () => {
      const group = await cgroups.create(id("fits"), { cpu: 1, memoryMb: 256, pids: 64 });
      const run = startIn(group, process.execPath, ["-e", "Buffer.alloc(20 << 20, 1); console.log('fine')"]);
      expect(await run.exited).toEqual({ code: 0, signal: null });
      expect(run.output.stdout).toContain("fine");
      expect(await group.oomKilled()).toBe(false);
      await group.remove();
    });

    it("stops a fork loop at the pids limit", async () => {
      const group = await cgroups.create(id("forks"), { cpu: 1, memoryMb: 256, pids: 16 });
      const pidsDir = dirWith(group, "pids.max");
      expect(readFileSync(join(pidsDir, "pids.max"), "utf8").trim()).toBe("16");
      const run = startIn(group, "/bin/sh", [
        "-c",
        "i=0; while [ $i -lt 100 ]; do sleep 60 & i=$((i + 1)); done; wait",
      ]);
      let most = 0;
      await waitFor("the shell to be refused a fork", async () => {
        most = Math.max(most, (await group.pids()).length);
        return /Cannot fork|fork: retry|Resource temporarily unavailable|EAGAIN/i.test(run.output.stderr);
      });
      most = Math.max(most, (await group.pids()).length);
      expect(most).toBeLessThanOrEqual(16);
      expect(most).toBeGreaterThanOrEqual(10); // it did fork up to (near) the limit
      expect(counter(readFileSync(join(pidsDir, "pids.events"), "utf8"), "max")).toBeGreaterThan(0);
      await group.killAll();
      expect(await group.pids()).toEqual([]);
      await group.remove();
    });

    it("caps a busy loop at its CPU quota", async () => {
      const group = await cgroups.create(id("cpu"), { cpu: 0.2, memoryMb: 256, pids: 16 });
      const cpuDir = dirWith(group, "cpu.stat");
      const run = startIn(group, "/bin/sh", ["-c", "while :; do :; done"]);
      const pid = run.child.pid!;
      // The quota bites: the kernel throttled the group at least once.
      await waitFor(
        "the group to be throttled",
        () => counter(readFileSync(join(cpuDir, "cpu.stat"), "utf8"), "nr_throttled") > 0,
      );
      // utime + stime, in USER_HZ (100 on Linux) ticks, fields 14 and 15 (counted after the command's ')').
      const ticks = () => {
        const fields = readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1]!.split(" ");
        return Number(fields[11]) + Number(fields[12]);
      };
      const t0 = performance.now();
      const c0 = ticks();
      await waitFor("a 1.5 s measuring window", () => performance.now() - t0 >= 1500);
      const share = (ticks() - c0) / 100 / ((performance.now() - t0) / 1000);
      expect(share).toBeLessThan(0.5); // 0.2 of a core, with a wide margin for tick granularity
      await group.killAll();
      expect(await run.exited).toEqual({ code: null, signal: "SIGKILL" });
      await group.remove();
    });

    it("killAll kills every process in the group and waits until it is empty", async () => {
      const group = await cgroups.create(id("kill"), { cpu: 1, memoryMb: 256, pids: 16 });
      const run = startIn(group, "/bin/sh", ["-c", "sleep 600 & sleep 600 & exec sleep 600"]);
      await waitFor("three processes in the group", async () => (await group.pids()).length === 3);
      expect(await group.pids()).toContain(run.child.pid);
      await group.killAll();
      expect(await group.pids()).toEqual([]);
      expect((await run.exited).signal).toBe("SIGKILL");
      await group.remove();
      for (const file of group.procsFiles) expect(existsSync(dirname(file))).toBe(false);
      await group.remove(); // already gone: fine
    });

    it("reapLeftovers kills a child left in a group whose owner is dead", async () => {
      const ghostOwner = fakeOwner(1);
      const ghost = await openCgroups({ owner: ghostOwner });
      instances.push(ghost);
      const group = await ghost.create(id("left"), { cpu: 1, memoryMb: 256, pids: 16 });
      const run = startIn(group, "/bin/sh", ["-c", "exec sleep 600"], true);
      await waitFor("the leftover in its group", async () => (await group.pids()).length === 1);

      // A later Hangar: only the ghost counts as dead here, so no other process's groups are touched.
      const heir = await openCgroups({ owner: fakeOwner(2), isAlive: (owner) => owner !== ghostOwner });
      instances.push(heir);
      expect(await heir.reapLeftovers()).toBe(1);
      expect((await run.exited).signal).toBe("SIGKILL");
      for (const file of group.procsFiles) expect(existsSync(dirname(dirname(file)))).toBe(false);
      expect(await heir.reapLeftovers()).toBe(0);
      await ghost.close(); // its groups are gone already: fine
    });

    it("close() kills its replicas and removes every group it made", async () => {
      const closer = await openCgroups({ owner: fakeOwner(3) });
      instances.push(closer);
      const a = await closer.create(id("a"), { cpu: 1, memoryMb: 256, pids: 16 });
      await closer.create(id("b"), { cpu: 1, memoryMb: 256, pids: 16 });
      const run = startIn(a, "/bin/sh", ["-c", "exec sleep 600"]);
      await waitFor("the replica in its group", async () => (await a.pids()).length === 1);
      const ownerDirs = a.procsFiles.map((f) => dirname(dirname(f)));
      for (const dir of ownerDirs) expect(existsSync(dir)).toBe(true);
      await closer.close();
      expect((await run.exited).signal).toBe("SIGKILL");
      for (const dir of ownerDirs) expect(existsSync(dir)).toBe(false);
      await expect(closer.create(id("c"), { cpu: 1, memoryMb: 256, pids: 16 })).rejects.toThrow(/closed/);
    });
  },
);

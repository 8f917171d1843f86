/**
 * CPU time of the processes a benchmark measures, from Linux's /proc: user + system time of every
 * thread, in milliseconds. Null where /proc cannot tell (the process is gone, or not Linux).
 */
import { execFileSync } from "node:child_process";
import { readdirSync, readFileSync } from "node:fs";

const CLOCK_TICKS = (() => {
  try {
    return Number(execFileSync("getconf", ["CLK_TCK"], { encoding: "utf8" }).trim()) || 100;
  } catch {
    return 100;
  }
})();

/** utime + stime of one process, from its stat line (fields after the command name, which may hold spaces). */
function statCpuMs(stat: string): number {
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return ((Number(fields[11]) + Number(fields[12])) * 1000) / CLOCK_TICKS;
}

/** User + system CPU milliseconds of a process so far, or null. */
export function cpuMsOf(pid: number | null): number | null {
  if (pid === null) return null;
  try {
    return statCpuMs(readFileSync(`/proc/${pid}/stat`, "utf8"));
  } catch {
    return null;
  }
}

/**
 * CPU of a process and of every live process below it: a fenced replica's PID is bubblewrap's, and the
 * runner that does the work is two generations down.
 */
export function treeCpuMsOf(pid: number | null): number | null {
  if (pid === null) return null;
  const stats = new Map<number, { parent: number; cpuMs: number }>();
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, "utf8");
      const parent = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
      stats.set(Number(entry), { parent, cpuMs: statCpuMs(stat) });
    } catch {
      // Ended while listed.
    }
  }
  if (!stats.has(pid)) return null;
  let total = 0;
  const queue = [pid];
  for (let next = queue.pop(); next !== undefined; next = queue.pop()) {
    total += stats.get(next)?.cpuMs ?? 0;
    for (const [child, { parent }] of stats) if (parent === next) queue.push(child);
  }
  return total;
}

/** The machine's busy CPU milliseconds so far, all cores together (/proc/stat), or null. */
export function machineBusyMs(): number | null {
  try {
    const line = readFileSync("/proc/stat", "utf8").split("\n", 1)[0] ?? "";
    const [, user, nice, system, , , irq, softirq, steal] = line.trim().split(/\s+/).map(Number);
    const ticks = [user, nice, system, irq, softirq, steal].reduce((sum: number, n) => sum + (n ?? 0), 0);
    return Number.isFinite(ticks) ? (ticks * 1000) / CLOCK_TICKS : null;
  } catch {
    return null;
  }
}

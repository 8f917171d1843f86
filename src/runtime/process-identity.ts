/**
 * A name for a Hangar process that a later process can check for life: its
 * PID, the kernel's start time of that PID (a PID alone is reused) and its PID
 * namespace (where the PID means something). Leftovers of a process (replica
 * folders, cgroups) are filed under its name and reaped by whoever finds the
 * name dead.
 */
import { readFileSync, readlinkSync } from "node:fs";

const OWNER = /^p(\d+)-s(\d+)-n(\d+)$/;

interface ProcStat {
  state: string;
  startTime: string;
}

function readProcStat(pid: number | "self"): ProcStat | null {
  let text: string;
  try {
    text = readFileSync(`/proc/${pid}/stat`, "utf8");
  } catch {
    return null;
  }
  // The command name (field 2) may hold spaces and parentheses: fields are counted after its last ')'.
  const rest = text.slice(text.lastIndexOf(")") + 2).split(" ");
  const state = rest[0];
  const startTime = rest[19]; // field 22
  return state && startTime ? { state, startTime } : null;
}

function pidNamespace(pid: number | "self"): string | null {
  try {
    return /\[(\d+)\]/.exec(readlinkSync(`/proc/${pid}/ns/pid`))?.[1] ?? null;
  } catch {
    return null;
  }
}

/** The group name of a process: `p<pid>-s<start time>-n<PID namespace inode>`; null without /proc. */
export function ownerOf(pid: number): string | null {
  const stat = readProcStat(pid);
  const ns = pidNamespace(pid);
  return stat && ns ? `p${pid}-s${stat.startTime}-n${ns}` : null;
}

/**
 * Whether the process an owner name stands for still runs (a zombie does not). Names it cannot
 * judge count as alive, so they are never touched: another format, or another PID namespace (where
 * the pid means some other process).
 */
export function ownerIsAlive(owner: string): boolean {
  const m = OWNER.exec(owner);
  if (!m) return true;
  const [, pid, startTime, ns] = m;
  if (ns !== pidNamespace("self")) return true;
  const stat = readProcStat(Number(pid));
  return stat !== null && stat.startTime === startTime && stat.state !== "Z" && stat.state !== "X";
}

function bootId(): string | null {
  try {
    return readFileSync("/proc/sys/kernel/random/boot_id", "utf8").trim() || null;
  } catch {
    return null;
  }
}

/**
 * The owner name of a process qualified by the machine's boot: a PID namespace's inode repeats from
 * machine to machine (the initial one is the same everywhere), a boot id does not. "" without /proc.
 */
export function machineOwnerOf(pid: number): string {
  const boot = bootId();
  const owner = ownerOf(pid);
  return boot && owner ? `${boot}/${owner}` : "";
}

/**
 * Whether the process a machine owner name stands for has certainly ended: it ran on this machine, in
 * this PID namespace, and is no longer there. Anything it cannot judge (another machine, another
 * namespace, no name) is not known to have ended.
 */
export function machineOwnerHasEnded(name: string): boolean {
  const slash = name.indexOf("/");
  if (slash < 0 || name.slice(0, slash) !== bootId()) return false;
  const owner = name.slice(slash + 1);
  return OWNER.test(owner) && !ownerIsAlive(owner);
}

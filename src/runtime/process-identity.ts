/**
 * A name for this Hangar process that a later process can check for life:
 * its PID and the kernel's start time of that PID, so that a PID reused by
 * another program is not mistaken for a Hangar process that is still running.
 * Leftovers (replica work dirs, cgroups) are filed under it and reaped by it.
 */
import { readFileSync } from "node:fs";

/** Field 22 of /proc/<pid>/stat (clock ticks after boot), null when the process does not exist. */
export function processStartTime(pid: number): string | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "latin1");
    // The command name (field 2) may hold spaces and parentheses: count fields after its last ')'.
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    return fields[19] ?? null;
  } catch {
    return null;
  }
}

const OWNER_PATTERN = /^p(\d+)-(\d+)$/;

export function ownerName(pid: number = process.pid): string {
  return `p${pid}-${processStartTime(pid) ?? "0"}`;
}

/** Whether a name from ownerName() names a process alive now; anything else is not an owner. */
export function isOwnerAlive(name: string): boolean {
  const match = OWNER_PATTERN.exec(name);
  if (!match) return false;
  return processStartTime(Number(match[1])) === match[2];
}

export function isOwnerName(name: string): boolean {
  return OWNER_PATTERN.test(name);
}

/**
 * Failpoints for crash tests: with HANGAR_FAILPOINT=<name>, the process kills
 * itself (SIGKILL, no cleanup) the moment it passes that point, so tests can
 * crash Hangar exactly between two committed steps. Unset, this is a no-op.
 */
const armed = process.env.HANGAR_FAILPOINT ?? "";

export function failpoint(name: string): void {
  if (armed && armed === name) process.kill(process.pid, "SIGKILL");
}

/**
 * What this process's runtime can enforce on the replicas it runs (API.md section 9): whether they
 * run fenced, and whether their resources (domain/resources.ts) are limited. Decided once at start;
 * serverInfo shows it.
 */

/** FENCED: replicas run fenced; UNAVAILABLE: the machine does not allow it; OFF: HANGAR_SANDBOX=off. */
export type SandboxState = "FENCED" | "UNAVAILABLE" | "OFF";

/** What this process's runtime can enforce, decided once at start. */
export interface IsolationReport {
  sandbox: SandboxState;
  limits: boolean;
  /** why not, one line each, for the start-up line and the log */
  reasons: string[];
}

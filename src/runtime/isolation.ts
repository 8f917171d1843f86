export type SandboxState = "FENCED" | "UNAVAILABLE" | "OFF";
/** What this process's runtime can enforce, decided once at start. */
export interface IsolationReport {
  sandbox: SandboxState;
  limits: boolean /** why not, one line each, for the start-up line and the log */;
  reasons: string[];
}

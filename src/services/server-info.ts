import { packageVersion } from "../package-root.ts";
import type { SandboxState } from "../runtime/isolation.ts";
import type { ServiceContext } from "./context.ts";

/** What serverInfo answers (API.md section 9): this Hangar process, as any valid key may see it. */
export interface ServerInfo {
  /** package.json's version. */
  version: string;
  database: "pglite" | "postgresql";
  /** Whether replicas run fenced here, from the runtime's report at start. */
  sandbox: SandboxState;
  /** Whether replicas' resources are enforced here. */
  limits: boolean;
  /** This member's name (HANGAR_MEMBER_NAME, API.md section 10). */
  member: string;
}

export function serverInfo(ctx: ServiceContext): ServerInfo {
  return {
    version: packageVersion(),
    database: ctx.db.kind === "pglite" ? "pglite" : "postgresql",
    sandbox: ctx.isolation.sandbox,
    limits: ctx.isolation.limits,
    member: ctx.memberName,
  };
}

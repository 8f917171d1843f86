import type { SandboxState } from "../runtime/isolation.ts";
import { type ServerInfo, serverInfo } from "../services/server-info.ts";
import { builder } from "./builder.ts";

const SANDBOX_STATES = {
  FENCED: { description: "Replicas run fenced (own user or namespaces, read-only code, no view of Hangar)" },
  UNAVAILABLE: {
    description: "The machine does not allow fencing: replicas run unfenced (the log says why)",
  },
  OFF: { description: "Fencing is turned off (HANGAR_SANDBOX=off)" },
} satisfies Record<SandboxState, { description: string }>;

export const SandboxStateEnum = builder.enumType("SandboxState", { values: SANDBOX_STATES });

export const ServerInfoRef = builder.objectRef<ServerInfo>("ServerInfo").implement({
  description: "The Hangar process that answers: its version, database and what it enforces on replicas",
  fields: (t) => ({
    version: t.exposeString("version"),
    database: t.exposeString("database", { description: "pglite (embedded) or postgresql" }),
    sandbox: t.field({ type: SandboxStateEnum, resolve: (info) => info.sandbox }),
    limits: t.exposeBoolean("limits", { description: "Whether replicas' resources are enforced" }),
    member: t.exposeString("member", {
      description: "The name of the member that answered (HANGAR_MEMBER_NAME)",
    }),
  }),
});

builder.queryField("serverInfo", (t) =>
  t.field({
    type: ServerInfoRef,
    description: "The Hangar process that answers (any valid key)",
    skipTypeScopes: true,
    authScopes: { identify: true },
    resolve: (_root, _args, ctx) => serverInfo(ctx.services),
  }),
);

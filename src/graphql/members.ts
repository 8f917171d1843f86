import { listMembers, type MemberView } from "../store/members.ts";
import { builder } from "./builder.ts";

/** API.md section 10: the members of this Hangar, as the database last heard from them. */
const ClusterMemberRef = builder.objectRef<MemberView>("ClusterMember").implement({
  description: "A Hangar process sharing this Hangar's database (its latest start)",
  fields: (t) => ({
    name: t.exposeString("name", { description: "HANGAR_MEMBER_NAME" }),
    url: t.exposeString("url", { description: "How the other members reach it (HANGAR_MEMBER_URL)" }),
    startedAt: t.expose("startedAt", { type: "DateTime" }),
    lastSeenAt: t.expose("lastSeenAt", { type: "DateTime", description: "Its last heartbeat" }),
    alive: t.exposeBoolean("alive", {
      description: "Whether its heartbeat is current (the database's clock)",
    }),
    replicaCount: t.exposeInt("replicaCount", { description: "Replicas it runs (starting or ready)" }),
  }),
});

builder.queryField("members", (t) =>
  t.field({
    type: [ClusterMemberRef],
    description: "This Hangar's members by name; a gone member stays listed for an hour",
    resolve: (_root, _args, ctx) => listMembers(ctx.prisma),
  }),
);

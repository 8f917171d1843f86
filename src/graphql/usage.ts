import { GraphQLError } from "graphql";
import { type UsageRow, usage } from "../services/usage.ts";
import { builder } from "./builder.ts";
import { DeploymentRef } from "./deployment.ts";

const DeploymentUsageRef = builder.objectRef<UsageRow>("DeploymentUsage").implement({
  fields: (t) => ({
    deployment: t.field({
      type: DeploymentRef,
      resolve: (row, _args, ctx) =>
        ctx.prisma.deployment.findUniqueOrThrow({ where: { id: row.deploymentId } }),
    }),
    replicaSeconds: t.exposeFloat("replicaSeconds"),
  }),
});

builder.queryField("usage", (t) =>
  t.field({
    type: [DeploymentUsageRef],
    description: "Replica-seconds per deployment in [from, to), deleted deployments included",
    args: {
      from: t.arg({ type: "DateTime", required: true }),
      to: t.arg({ type: "DateTime", required: true }),
      modelId: t.arg.id(),
    },
    resolve: (_root, args, ctx) => {
      if (args.to.getTime() <= args.from.getTime()) throw new GraphQLError("`to` must be after `from`");
      return usage(ctx.prisma, args.from, args.to, args.modelId ?? null);
    },
  }),
);

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
    resolve: async (_root, args, ctx) => {
      if (args.to.getTime() <= args.from.getTime()) throw new GraphQLError("`to` must be after `from`");
      const { modelIds } = ctx.access;
      if (modelIds === null) return usage(ctx.prisma, args.from, args.to, args.modelId ?? null);
      // A key limited to models sees only theirs, whether or not it names one.
      const asked = args.modelId == null ? modelIds : modelIds.filter((id) => id === args.modelId);
      return (await Promise.all(asked.map((id) => usage(ctx.prisma, args.from, args.to, id)))).flat();
    },
  }),
);

import { parseAutoscaling } from "../domain/autoscaling.ts";
import { AutoscalingSettingsRef } from "./autoscaling.ts";
import { builder } from "./builder.ts";

export const EnvironmentRef = builder.prismaNode("Environment", {
  id: { field: "id" },
  fields: (t) => ({
    name: t.exposeString("name"),
    isProduction: t.exposeBoolean("isProduction"),
    model: t.relation("model"),
    createdAt: t.expose("createdAt", { type: "DateTime" }),
    deletedAt: t.expose("deletedAt", { type: "DateTime", nullable: true }),
    currentDeployment: t.prismaField({
      type: "Deployment",
      nullable: true,
      description: "The deployment serving this environment (null once that deployment is deleted)",
      resolve: (query, env, _args, ctx) =>
        env.currentDeploymentId
          ? ctx.prisma.deployment.findFirst({
              ...query,
              where: { id: env.currentDeploymentId, deletedAt: null },
            })
          : null,
    }),
    autoscalingSettings: t.field({
      type: AutoscalingSettingsRef,
      resolve: async (env, _args, ctx) => {
        // After ACTIVATE an environment's settings are its current deployment's.
        const current = env.currentDeploymentId
          ? await ctx.prisma.deployment.findFirst({
              where: { id: env.currentDeploymentId, deletedAt: null },
              select: { autoscaling: true },
            })
          : null;
        return parseAutoscaling(current?.autoscaling ?? env.autoscaling);
      },
    }),
    predictUrl: t.string({
      resolve: (env, _args, ctx) =>
        `${ctx.services.config.publicUrl}/models/${env.modelId}/environments/${encodeURIComponent(env.name)}/predict`,
    }),
  }),
});

builder.queryField("environment", (t) =>
  t.prismaField({
    type: "Environment",
    nullable: true,
    args: { modelId: t.arg.id({ required: true }), name: t.arg.string({ required: true }) },
    resolve: (query, _root, args, ctx) =>
      ctx.prisma.environment.findFirst({
        ...query,
        where: { modelId: args.modelId, liveName: args.name, model: { deletedAt: null } },
      }),
  }),
);

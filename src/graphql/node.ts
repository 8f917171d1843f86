import { allows, mayManageWebhook } from "../domain/access.ts";
import { idKind } from "../domain/ids.ts";
import { builder } from "./builder.ts";
import { inVisibleModels, visibleModels } from "./scope.ts";

const NodeInterface = builder.nodeInterfaceRef();

/**
 * node(id:) by hand: an unknown or malformed ID answers null rather than an
 * error, and so does one the caller's key may not see.
 */
builder.queryField("node", (t) =>
  t.field({
    type: NodeInterface,
    nullable: true,
    args: { id: t.arg.id({ required: true }) },
    resolve: async (_root, { id }, ctx) => {
      const kind = idKind(id);
      const inScope = { where: { id, ...inVisibleModels(ctx.access) } };
      const row =
        kind === "Model"
          ? await ctx.prisma.model.findUnique({ where: { id, ...visibleModels(ctx.access) } })
          : kind === "Deployment"
            ? await ctx.prisma.deployment.findUnique(inScope)
            : kind === "Environment"
              ? await ctx.prisma.environment.findUnique(inScope)
              : kind === "Promotion"
                ? await ctx.prisma.promotion.findUnique(inScope)
                : kind === "ApiKey" && (allows(ctx.access, "manageKeys") || id === ctx.access.keyId)
                  ? await ctx.prisma.apiKey.findUnique({ where: { id } })
                  : kind === "Webhook"
                    ? await ctx.prisma.webhook
                        .findFirst({ where: { id, deletedAt: null } })
                        .then((hook) => (hook && mayManageWebhook(ctx.access, hook.modelId) ? hook : null))
                    : null;
      // The relay plugin resolves the concrete type from this brand.
      return row && kind ? Object.assign(row, { __typename: kind }) : null;
    },
  }),
);

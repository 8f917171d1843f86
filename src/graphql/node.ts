import { idKind } from "../domain/ids.ts";
import { builder } from "./builder.ts";

const NodeInterface = builder.nodeInterfaceRef();

/** node(id:) by hand: an unknown or malformed ID answers null rather than an error. */
builder.queryField("node", (t) =>
  t.field({
    type: NodeInterface,
    nullable: true,
    args: { id: t.arg.id({ required: true }) },
    resolve: async (_root, { id }, ctx) => {
      const kind = idKind(id);
      const where = { where: { id } };
      const row =
        kind === "Model"
          ? await ctx.prisma.model.findUnique(where)
          : kind === "Deployment"
            ? await ctx.prisma.deployment.findUnique(where)
            : kind === "Environment"
              ? await ctx.prisma.environment.findUnique(where)
              : kind === "Promotion"
                ? await ctx.prisma.promotion.findUnique(where)
                : null;
      // The relay plugin resolves the concrete type from this brand.
      return row && kind ? Object.assign(row, { __typename: kind }) : null;
    },
  }),
);

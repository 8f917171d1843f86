import { GraphQLError } from "graphql";
import { isIdOf } from "../domain/ids.ts";
import { decodeEventCursor, encodeEventCursor } from "../events/log.ts";
import { eventsAfter, followEvents } from "../events/reader.ts";
import type { PrismaClient } from "../generated/prisma/client.ts";
import { ModelEventType } from "../generated/prisma/enums.ts";
import { builder, DEFAULT_PAGE, MAX_PAGE } from "./builder.ts";
import { visibleModels } from "./scope.ts";
import { SHARING, type SharingRule } from "./sharing.ts";

export const ModelEventTypeEnum = builder.enumType(ModelEventType, { name: "ModelEventType" });

export const ModelEventRef = builder.prismaObject("ModelEvent", {
  fields: (t) => ({
    cursor: t.string({ resolve: (event) => encodeEventCursor(event.seq) }),
    type: t.field({ type: ModelEventTypeEnum, resolve: (event) => event.type }),
    at: t.expose("at", { type: "DateTime" }),
    message: t.exposeString("message", { nullable: true }),
    actor: t.exposeString("actor", {
      nullable: true,
      description: "The name of the key whose mutation wrote this event; null for Hangar's own controllers",
    }),
    deployment: t.relation("deployment", { nullable: true }),
    environment: t.relation("environment", { nullable: true }),
    promotion: t.relation("promotion", { nullable: true }),
  }),
});

function afterSeq(after: string | null | undefined): number {
  if (after == null) return 0;
  const seq = decodeEventCursor(after);
  if (seq === null) throw new GraphQLError(`invalid cursor '${after}'`);
  return seq;
}

/** A page of a model's history, oldest first; cursors are the ones modelEvents uses. */
export async function eventPage(
  prisma: PrismaClient,
  modelId: string,
  args: { first?: number | null; after?: string | null },
) {
  const size = Math.max(0, Math.min(args.first ?? DEFAULT_PAGE, MAX_PAGE));
  const rows = await eventsAfter(prisma, modelId, afterSeq(args.after), {}, size + 1);
  const page = rows.slice(0, size);
  return {
    edges: page.map((node) => ({ cursor: encodeEventCursor(node.seq), node })),
    pageInfo: {
      hasNextPage: rows.length > size,
      hasPreviousPage: args.after != null,
      startCursor: page[0] ? encodeEventCursor(page[0].seq) : null,
      endCursor: page.at(-1) ? encodeEventCursor((page.at(-1) as { seq: number }).seq) : null,
    },
  };
}

builder.subscriptionFields((t) => ({
  modelEvents: t.field({
    type: ModelEventRef,
    description:
      "Every event of one model, in order, none lost. With `after` (a cursor from this subscription or Model.events) it replays what came after it first.",
    args: { modelId: t.arg.id({ required: true }), after: t.arg.string() },
    // Live events are the same for everyone from the moment they join; a replay from `after` is
    // the subscriber's own (a joiner would miss what was replayed before it came).
    extensions: { [SHARING]: ((args) => (args.after == null ? "live" : null)) satisfies SharingRule },
    subscribe: async (_root, args, ctx) => {
      const model = isIdOf("Model", args.modelId)
        ? await ctx.prisma.model.findUnique({
            where: { id: args.modelId, ...visibleModels(ctx.access) },
            select: { id: true, eventSeq: true },
          })
        : null;
      if (!model) throw new GraphQLError(`no model with ID '${args.modelId}'`);
      return followEvents(ctx.services.bus, ctx.prisma, {
        modelId: model.id,
        from: args.after != null ? afterSeq(args.after) : model.eventSeq,
        view: (events) => ({ items: events }),
      });
    },
    resolve: (event) => event,
  }),
}));

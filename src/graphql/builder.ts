import SchemaBuilder from "@pothos/core";
import ComplexityPlugin from "@pothos/plugin-complexity";
import PrismaPlugin from "@pothos/plugin-prisma";
import RelayPlugin from "@pothos/plugin-relay";
import { idKind } from "../domain/ids.ts";
import type PrismaTypes from "../generated/pothos-types.ts";
import { getDatamodel } from "../generated/pothos-types.ts";
import type { PrismaClient } from "../generated/prisma/client.ts";
import type { ServiceContext } from "../services/context.ts";

export interface GraphQLContext {
  services: ServiceContext;
  prisma: PrismaClient;
}

/** Connections answer at most this many edges; larger `first`/`last` are clamped (API.md section 5). */
export const MAX_PAGE = 500;
export const DEFAULT_PAGE = 100;

export const builder = new SchemaBuilder<{
  PrismaTypes: PrismaTypes;
  Context: GraphQLContext;
  DefaultFieldNullability: false;
  Scalars: {
    DateTime: { Input: Date; Output: Date };
    File: { Input: File; Output: never };
    ID: { Input: string; Output: string };
  };
}>({
  plugins: [RelayPlugin, PrismaPlugin, ComplexityPlugin],
  defaultFieldNullability: false,
  prisma: {
    client: (ctx) => ctx.prisma,
    dmmf: getDatamodel(),
    filterConnectionTotalCount: true,
    onUnusedQuery: null,
  },
  relay: {
    clientMutationId: "omit",
    cursorType: "String",
    // IDs are already global and URL-safe (see domain/ids.ts): the same string everywhere.
    encodeGlobalID: (_typename, id) => String(id),
    decodeGlobalID: (globalID) => ({ typename: idKind(globalID) ?? "Unknown", id: globalID }),
    nodeQueryOptions: false,
    nodesQueryOptions: false,
  },
  complexity: {
    defaultComplexity: 1,
    defaultListMultiplier: 10,
    limit: { depth: 12, breadth: 200, complexity: 20_000 },
  },
});

builder.queryType({});
builder.mutationType({});
builder.subscriptionType({});

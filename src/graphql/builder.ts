import SchemaBuilder from "@pothos/core";
import ComplexityPlugin from "@pothos/plugin-complexity";
import PrismaPlugin from "@pothos/plugin-prisma";
import RelayPlugin from "@pothos/plugin-relay";
import ScopeAuthPlugin from "@pothos/plugin-scope-auth";
import { GraphQLError } from "graphql";
import { type Access, allows, refusalMessage } from "../domain/access.ts";
import { idKind } from "../domain/ids.ts";
import type PrismaTypes from "../generated/pothos-types.ts";
import { getDatamodel } from "../generated/pothos-types.ts";
import type { PrismaClient } from "../generated/prisma/client.ts";
import type { RequestContext } from "../services/context.ts";
import { pageSize } from "./limits.ts";

export interface GraphQLContext {
  /** The use cases, run as the caller's key. */
  services: RequestContext;
  prisma: PrismaClient;
  /** What the caller's key allows (domain/access.ts). */
  access: Access;
}

/** The error every refused operation gets (API.md section 7). */
export function forbidden(message: string): GraphQLError {
  return new GraphQLError(message, { extensions: { code: "FORBIDDEN" } });
}

/** Connections answer at most this many edges; larger `first`/`last` are clamped (API.md section 5). */
export const MAX_PAGE = 500;
export const DEFAULT_PAGE = 100;

export const builder = new SchemaBuilder<{
  PrismaTypes: PrismaTypes;
  Context: GraphQLContext;
  // The role part of the permission matrix: root types and key fields name one of these.
  AuthScopes: { identify: boolean; read: boolean; write: boolean; manageKeys: boolean };
  DefaultFieldNullability: false;
  Scalars: {
    DateTime: { Input: Date; Output: Date };
    File: { Input: File; Output: never };
    ID: { Input: string; Output: string };
  };
}>({
  // Scope auth first, so that its checks wrap every other plugin's resolvers.
  plugins: [ScopeAuthPlugin, RelayPlugin, PrismaPlugin, ComplexityPlugin],
  scopeAuth: {
    authorizeOnSubscribe: true,
    authScopes: (ctx) => ({
      identify: allows(ctx.access, "identify"),
      read: allows(ctx.access, "read"),
      write: allows(ctx.access, "write"),
      manageKeys: allows(ctx.access, "manageKeys"),
    }),
    unauthorizedError: (_parent, ctx, info) =>
      forbidden(refusalMessage(ctx.access, `use ${info.parentType.name}.${info.fieldName}`)),
  },
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
  // The cost rule of API.md section 8, checked before execution by graphql/limits.ts (no `limit`
  // here: the plugin's own check runs only once execution has begun). Every field costs 1; a page
  // multiplies the cost of what it holds by its size as the connection clamps it, other lists by 1.
  complexity: {
    fieldComplexity: (args, _ctx, field) => ({
      field: 1,
      multiplier: field.args.some((arg) => arg.name === "first" || arg.name === "last")
        ? pageSize(args.first ?? args.last, DEFAULT_PAGE, MAX_PAGE)
        : 1,
    }),
  },
});

// Every root field needs its role's scope unless it says otherwise (viewer, serverInfo, keys).
builder.queryType({ authScopes: { read: true } });
builder.mutationType({ authScopes: { write: true } });
builder.subscriptionType({ authScopes: { read: true } });

import { API_KEY_ROLES } from "../domain/access.ts";
import { notFound } from "../domain/errors.ts";
import { isIdOf } from "../domain/ids.ts";
import type { ApiKey } from "../generated/prisma/client.ts";
import { createApiKey, revokeApiKey } from "../services/api-keys.ts";
import { scopeList } from "../store/api-keys.ts";
import { builder, DEFAULT_PAGE, MAX_PAGE } from "./builder.ts";
import { resultUnion, userErrors } from "./errors.ts";

export const ApiKeyRoleEnum = builder.enumType("ApiKeyRole", { values: API_KEY_ROLES });

/** A key as the API shows it: never its secret, which only createApiKey's answer holds. */
export const ApiKeyRef = builder.prismaNode("ApiKey", {
  id: { field: "id" },
  fields: (t) => ({
    name: t.exposeString("name"),
    role: t.field({ type: ApiKeyRoleEnum, resolve: (key) => key.role }),
    modelIds: t.idList({
      nullable: true,
      description: "null: every model, including ones created later",
      resolve: (key) => scopeList(key.modelIds),
    }),
    environments: t.stringList({
      nullable: true,
      description: "null: every environment; else only these names (restricted environments)",
      resolve: (key) => scopeList(key.environments),
    }),
    prefix: t.exposeString("prefix", { description: "The first 8 characters of the secret" }),
    createdAt: t.expose("createdAt", { type: "DateTime" }),
    expiresAt: t.expose("expiresAt", { type: "DateTime", nullable: true }),
    lastUsedAt: t.expose("lastUsedAt", { type: "DateTime", nullable: true }),
    revokedAt: t.expose("revokedAt", { type: "DateTime", nullable: true }),
  }),
});

interface CreatedApiKeyShape {
  apiKey: ApiKey;
  secret: string;
}

const CreatedApiKeyRef = builder.objectRef<CreatedApiKeyShape>("CreatedApiKey").implement({
  description: "The only answer that ever holds a key's secret: keep it, it is not shown again",
  fields: (t) => ({
    apiKey: t.field({ type: ApiKeyRef, resolve: (created) => created.apiKey }),
    secret: t.exposeString("secret"),
  }),
});

builder.queryFields((t) => ({
  apiKeys: t.prismaConnection(
    {
      type: "ApiKey",
      cursor: "id",
      maxSize: MAX_PAGE,
      defaultSize: DEFAULT_PAGE,
      authScopes: { manageKeys: true },
      description: "Every key, revoked ones included, oldest first (ADMIN only)",
      resolve: (query, _root, _args, ctx) =>
        ctx.prisma.apiKey.findMany({ ...query, orderBy: [{ createdAt: "asc" }, { id: "asc" }] }),
    },
    { name: "ApiKeyConnection" },
    { name: "ApiKeyEdge" },
  ),
  viewer: t.prismaField({
    type: "ApiKey",
    description: "The key this request is made with (for a browser, the key it signed in with)",
    skipTypeScopes: true,
    authScopes: { identify: true },
    resolve: (query, _root, _args, ctx) =>
      ctx.prisma.apiKey.findUniqueOrThrow({ ...query, where: { id: ctx.access.keyId } }),
  }),
}));

const CreateApiKeyInput = builder.inputType("CreateApiKeyInput", {
  fields: (t) => ({
    name: t.string({ required: true }),
    role: t.field({ type: ApiKeyRoleEnum, required: true }),
    modelIds: t.idList({ description: "null: every model" }),
    environments: t.stringList({ description: "null: every environment" }),
    expiresAt: t.field({ type: "DateTime" }),
  }),
});

const CreateApiKeyResult = resultUnion("CreateApiKeyResult", CreatedApiKeyRef);
const RevokeApiKeyResult = resultUnion("RevokeApiKeyResult", ApiKeyRef);

builder.mutationFields((t) => ({
  createApiKey: t.field({
    type: CreateApiKeyResult,
    authScopes: { manageKeys: true },
    args: { input: t.arg({ type: CreateApiKeyInput, required: true }) },
    resolve: (_root, { input }, ctx) =>
      userErrors(() =>
        createApiKey(ctx.services, {
          name: input.name,
          role: input.role,
          modelIds: input.modelIds ?? null,
          environments: input.environments ?? null,
          expiresAt: input.expiresAt ?? null,
        }),
      ),
  }),
  revokeApiKey: t.field({
    type: RevokeApiKeyResult,
    authScopes: { manageKeys: true },
    args: { id: t.arg.id({ required: true }) },
    resolve: (_root, { id }, ctx) =>
      userErrors(async () => {
        if (!isIdOf("ApiKey", id)) throw notFound("API key", id);
        return revokeApiKey(ctx.services, id);
      }),
  }),
}));

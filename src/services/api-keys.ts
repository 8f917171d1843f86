import { createHash } from "node:crypto";
import { type Access, API_KEY_PATTERN, type ApiKeyRole } from "../domain/access.ts";
import { newId } from "../domain/ids.ts";
import { nameProblem } from "../domain/names.ts";
import type { ApiKey, PrismaClient } from "../generated/prisma/client.ts";
import { newSecret } from "./bootstrap-key.ts";
import type { RequestContext } from "./context.ts";
import { isUniqueViolation, notFound, UserError } from "./errors.ts";

/** The bootstrap keys' name (API.md section 7); no created key may take it. */
export const BOOTSTRAP_KEY_NAME = "admin";

/** Keys and session tokens are stored and looked up by this hash only. */
export function secretHash(secret: string): string {
  return createHash("sha256").update(secret).digest("hex");
}

/** A stored scope list (JSON): null means every model or environment. */
export function scopeList(value: unknown): string[] | null {
  return Array.isArray(value) ? value.map(String) : null;
}

export function accessOf(key: Pick<ApiKey, "id" | "name" | "role" | "modelIds" | "environments">): Access {
  return {
    keyId: key.id,
    name: key.name,
    role: key.role,
    modelIds: scopeList(key.modelIds),
    environments: scopeList(key.environments),
  };
}

/** A key counts from creation until it is revoked or expires. */
export function isLive(key: Pick<ApiKey, "revokedAt" | "expiresAt">, now: Date): boolean {
  return key.revokedAt === null && (key.expiresAt === null || key.expiresAt > now);
}

/**
 * Records this member's bootstrap key (by hash) so that every member honours
 * it (API.md sections 7 and 10). Idempotent: restarts find the row.
 */
export async function registerBootstrapKey(prisma: PrismaClient, secret: string): Promise<ApiKey> {
  if (!API_KEY_PATTERN.test(secret)) {
    throw new Error("the admin key does not match ^hk_[A-Za-z0-9_-]{32,}$");
  }
  const hash = secretHash(secret);
  const existing = await prisma.apiKey.findUnique({ where: { secretHash: hash } });
  if (existing) return existing;
  try {
    return await prisma.apiKey.create({
      data: {
        id: newId("ApiKey"),
        name: BOOTSTRAP_KEY_NAME,
        liveName: null,
        role: "ADMIN",
        secretHash: hash,
        prefix: secret.slice(0, 8),
        bootstrap: true,
      },
    });
  } catch (error) {
    // Another member registered the same key at the same moment.
    if (isUniqueViolation(error)) return prisma.apiKey.findUniqueOrThrow({ where: { secretHash: hash } });
    throw error;
  }
}

export interface CreateApiKeyInput {
  name: string;
  role: ApiKeyRole;
  modelIds: readonly string[] | null;
  environments: readonly string[] | null;
  expiresAt: Date | null;
}

function checkList(list: readonly string[] | null, field: string): string[] | null {
  if (list === null) return null;
  if (list.length === 0) {
    throw new UserError("INVALID_INPUT", `${field} may not be an empty list (leave it out for all)`, field);
  }
  return [...new Set(list)];
}

/** createApiKey (ADMIN only: the schema checks the role). The secret is returned here and never again. */
export async function createApiKey(
  ctx: RequestContext,
  input: CreateApiKeyInput,
  now: Date = new Date(),
): Promise<{ apiKey: ApiKey; secret: string }> {
  const name = input.name;
  if (name.length < 1 || name.length > 63 || /[\p{Cc}]/u.test(name)) {
    throw new UserError("INVALID_INPUT", "a key name is 1-63 characters, without control characters", "name");
  }
  if (name === BOOTSTRAP_KEY_NAME) {
    throw new UserError("NAME_TAKEN", `'${BOOTSTRAP_KEY_NAME}' is the bootstrap key's name`, "name");
  }
  const modelIds = checkList(input.modelIds, "modelIds");
  const environments = checkList(input.environments, "environments");
  if (input.role === "ADMIN" && (modelIds !== null || environments !== null)) {
    throw new UserError(
      "INVALID_INPUT",
      "an ADMIN key may do everything: it takes neither modelIds nor environments",
      modelIds !== null ? "modelIds" : "environments",
    );
  }
  for (const environment of environments ?? []) {
    const problem = nameProblem("environment", environment);
    if (problem) throw new UserError("INVALID_INPUT", problem, "environments");
  }
  if (input.expiresAt !== null && input.expiresAt <= now) {
    throw new UserError("INVALID_INPUT", "expiresAt must be in the future", "expiresAt");
  }
  if (modelIds !== null) {
    const live = await ctx.db.prisma.model.findMany({
      where: { id: { in: modelIds }, deletedAt: null },
      select: { id: true },
    });
    const found = new Set(live.map((m) => m.id));
    const missing = modelIds.find((id) => !found.has(id));
    if (missing !== undefined)
      throw new UserError("INVALID_INPUT", `no live model with ID '${missing}'`, "modelIds");
  }
  const secret = newSecret();
  try {
    const apiKey = await ctx.db.prisma.apiKey.create({
      data: {
        id: newId("ApiKey"),
        name,
        liveName: name,
        role: input.role,
        modelIds: modelIds ?? undefined,
        environments: environments ?? undefined,
        secretHash: secretHash(secret),
        prefix: secret.slice(0, 8),
        expiresAt: input.expiresAt,
      },
    });
    return { apiKey, secret };
  } catch (error) {
    if (isUniqueViolation(error)) throw new UserError("NAME_TAKEN", `a key named '${name}' exists`, "name");
    throw error;
  }
}

/** revokeApiKey: the key and its sessions stop working (within the credential cache's few seconds). */
export async function revokeApiKey(ctx: RequestContext, id: string, now: Date = new Date()): Promise<ApiKey> {
  return ctx.db.prisma.$transaction(async (tx) => {
    const [row] = await tx.$queryRaw<{ id: string }[]>`SELECT id FROM "ApiKey" WHERE id = ${id} FOR UPDATE`;
    if (!row) throw notFound("API key", id);
    const key = await tx.apiKey.findUniqueOrThrow({ where: { id } });
    if (key.bootstrap) {
      throw new UserError(
        "INVALID_STATE",
        "the bootstrap admin key cannot be revoked (change HANGAR_ADMIN_KEY, or the admin-key file, and restart)",
        "id",
      );
    }
    if (key.revokedAt !== null) return key;
    await tx.session.updateMany({ where: { apiKeyId: id, endedAt: null }, data: { endedAt: now } });
    return tx.apiKey.update({ where: { id }, data: { revokedAt: now, liveName: null } });
  });
}

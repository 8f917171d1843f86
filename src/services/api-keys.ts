import type { ApiKeyRole } from "../domain/access.ts";
import { notFound, UserError } from "../domain/errors.ts";
import { newId } from "../domain/ids.ts";
import { nameProblem } from "../domain/names.ts";
import type { ApiKey } from "../generated/prisma/client.ts";
import { BOOTSTRAP_KEY_NAME, newSecret, secretHash } from "../store/api-keys.ts";
import { isUniqueViolation } from "../store/errors.ts";
import type { RequestContext } from "./context.ts";

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

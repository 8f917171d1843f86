/** ApiKey rows as every reader needs them: by hash, with their scopes and liveness. */
import { createHash, randomBytes } from "node:crypto";
import { type Access, API_KEY_PATTERN } from "../domain/access.ts";
import { newId } from "../domain/ids.ts";
import type { ApiKey, PrismaClient } from "../generated/prisma/client.ts";
import { isUniqueViolation } from "./errors.ts";

/** A new secret: `hk_` and 256 random bits, URL-safe. */
export function newSecret(): string {
  return `hk_${randomBytes(32).toString("base64url")}`;
}

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

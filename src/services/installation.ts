import { randomBytes } from "node:crypto";
import type { PrismaClient } from "../generated/prisma/client.ts";
import { isUniqueViolation } from "../store/errors.ts";

/**
 * A random value this Hangar (its database, shared by all its members) keeps once under `name`. The
 * first member to start creates it; members starting at the same moment all end up with the row that
 * won the insert.
 */
async function keptOnce(prisma: PrismaClient, name: string, bytes: number): Promise<string> {
  const existing = await prisma.serverSetting.findUnique({ where: { name } });
  if (existing) return existing.value;
  try {
    const created = await prisma.serverSetting.create({
      data: { name, value: randomBytes(bytes).toString("hex") },
    });
    return created.value;
  } catch (error) {
    if (!isUniqueViolation(error)) throw error;
    return (await prisma.serverSetting.findUniqueOrThrow({ where: { name } })).value;
  }
}

/** What tells this Hangar apart from other Hangars on the same host, e.g. in its session cookie's name. */
export function installationId(prisma: PrismaClient): Promise<string> {
  return keptOnce(prisma, "installation-id", 16);
}

/**
 * The secret members present to each other when one forwards a request to another's replicas (API.md
 * section 10): only a member of this Hangar, which reads it from the database, can call them that way.
 */
export function memberSecret(prisma: PrismaClient): Promise<string> {
  return keptOnce(prisma, "member-secret", 32);
}

import { randomBytes } from "node:crypto";
import type { PrismaClient } from "../generated/prisma/client.ts";
import { isUniqueViolation } from "../store/errors.ts";

const INSTALLATION_ID = "installation-id";

/**
 * A random value this Hangar (its database, shared by all its members) keeps
 * once: what tells it apart from other Hangars on the same host, e.g. in the
 * name of its session cookie. The first member to start creates it; members
 * starting at the same moment all end up with the row that won the insert.
 */
export async function installationId(prisma: PrismaClient): Promise<string> {
  const existing = await prisma.serverSetting.findUnique({ where: { name: INSTALLATION_ID } });
  if (existing) return existing.value;
  try {
    const created = await prisma.serverSetting.create({
      data: { name: INSTALLATION_ID, value: randomBytes(16).toString("hex") },
    });
    return created.value;
  } catch (error) {
    if (!isUniqueViolation(error)) throw error;
    const winner = await prisma.serverSetting.findUniqueOrThrow({ where: { name: INSTALLATION_ID } });
    return winner.value;
  }
}

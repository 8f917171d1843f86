import { randomBytes } from "node:crypto";
import { type Access, maySignIn } from "../domain/access.ts";
import { newId } from "../domain/ids.ts";
import type { PrismaClient } from "../generated/prisma/client.ts";
import { accessOf, isLive, secretHash } from "../store/api-keys.ts";

/** A browser session lasts at most this long (API.md section 7). */
export const SESSION_HOURS = 12;
/** The sign-in link printed at start is good for one use within this many minutes. */
export const SIGN_IN_LINK_MINUTES = 15;

function newToken(): string {
  return randomBytes(32).toString("base64url");
}

/** Starts a session for a key; the token goes into the cookie, only its hash into the database. */
export async function createSession(
  prisma: PrismaClient,
  key: { id: string; expiresAt: Date | null },
  now: Date = new Date(),
): Promise<{ token: string; expiresAt: Date }> {
  const token = newToken();
  const limit = new Date(now.getTime() + SESSION_HOURS * 3600_000);
  const expiresAt = key.expiresAt && key.expiresAt < limit ? key.expiresAt : limit;
  await prisma.session.create({
    data: { id: newId("Session"), tokenHash: secretHash(token), apiKeyId: key.id, expiresAt, createdAt: now },
  });
  return { token, expiresAt };
}

/** Sign-out: the session ends at once, on every member. */
export async function endSession(prisma: PrismaClient, token: string, now: Date = new Date()): Promise<void> {
  await prisma.session.updateMany({
    where: { tokenHash: secretHash(token), endedAt: null },
    data: { endedAt: now },
  });
}

/** The one-use link of this start, for the bootstrap key. */
export async function createSignInLink(
  prisma: PrismaClient,
  apiKeyId: string,
  now: Date = new Date(),
): Promise<{ token: string; expiresAt: Date }> {
  const token = newToken();
  const expiresAt = new Date(now.getTime() + SIGN_IN_LINK_MINUTES * 60_000);
  await prisma.signInLink.create({
    data: { id: newId("SignInLink"), tokenHash: secretHash(token), apiKeyId, expiresAt, createdAt: now },
  });
  return { token, expiresAt };
}

/**
 * Uses a sign-in link: at most once (the conditional update is the claim, so
 * two browsers racing get one session), within its time. Null when it is not
 * (or no longer) good.
 */
export async function redeemSignInLink(
  prisma: PrismaClient,
  token: string,
  now: Date = new Date(),
): Promise<{ token: string; expiresAt: Date } | null> {
  const tokenHash = secretHash(token);
  const claimed = await prisma.signInLink.updateMany({
    where: { tokenHash, usedAt: null, expiresAt: { gt: now } },
    data: { usedAt: now },
  });
  if (claimed.count !== 1) return null;
  const link = await prisma.signInLink.findUniqueOrThrow({ where: { tokenHash }, include: { apiKey: true } });
  // Bootstrap keys neither expire nor get revoked today; the link must not outlive its key if that changes.
  if (!isLive(link.apiKey, now)) return null;
  return createSession(prisma, link.apiKey, now);
}

export type KeySignIn =
  | { ok: true; session: { token: string; expiresAt: Date }; access: Access }
  /** wrong: no such live key (unknown, revoked, expired); role: a key whose role may not sign in. */
  | { ok: false; reason: "wrong" | "role" };

/** The sign-in form: a live key of a role that may sign in starts a session with its permissions. */
export async function signInWithKey(
  prisma: PrismaClient,
  secret: string,
  now: Date = new Date(),
): Promise<KeySignIn> {
  const key = await prisma.apiKey.findUnique({ where: { secretHash: secretHash(secret) } });
  if (!key || !isLive(key, now)) return { ok: false, reason: "wrong" };
  const access = accessOf(key);
  if (!maySignIn(access)) return { ok: false, reason: "role" };
  return { ok: true, session: await createSession(prisma, key, now), access };
}

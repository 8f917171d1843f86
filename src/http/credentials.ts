import { isDatabaseUnavailable } from "../db/unavailable.ts";
import type { Access } from "../domain/access.ts";
import type { Clock } from "../domain/clock.ts";
import type { PrismaClient } from "../generated/prisma/client.ts";
import type { Logger } from "../logger.ts";
import { accessOf, isLive, secretHash } from "../store/api-keys.ts";

/**
 * How long a verified (or refused) credential is trusted without asking the
 * database again. Revocation must bite within 5 s (API.md section 7): this,
 * plus the WebSocket sweep's interval, stays under it.
 */
export const CREDENTIAL_TTL_MS = 2_000;
/** lastUsedAt is written at most this often per key. */
const LAST_USED_EVERY_MS = 60_000;
/** Cache entries kept at most; a flood of wrong keys must not grow memory without bound. */
const MAX_ENTRIES = 10_000;

interface Entry {
  access: Access | null;
  /** When the cached answer stops counting: the TTL, or sooner if the key or session expires. */
  until: number;
}

/**
 * Turns a bearer secret or a session token into what it allows, by hash,
 * with a short cache in front of the database.
 */
export class Credentials {
  private readonly cache = new Map<string, Entry>();
  /**
   * Per Authorization header value seen: its cache key (`k:` and the secret's hash), or null for one
   * that holds no bearer key. Saves the parse and the SHA-256 on every request of a known key. Bounded
   * as the cache, and emptied with it. Looked up by hash, never compared with another client's value
   * as a string (that comparison's time would tell how much of a guess matches a key).
   */
  private readonly headerKeys = new Map<string, string | null>();
  private readonly lastUsedWritten = new Map<string, number>();

  constructor(
    private readonly prisma: PrismaClient,
    private readonly clock: Clock,
    private readonly log: Logger,
  ) {}

  /** The key's access, or null for a wrong, revoked or expired key. */
  key(secret: string): Promise<Access | null> {
    return this.keyByCacheKey(`k:${secretHash(secret)}`);
  }

  private keyByCacheKey(cacheKey: string): Promise<Access | null> {
    return this.cached(cacheKey, async (hash, now) => {
      const key = await this.prisma.apiKey.findUnique({ where: { secretHash: hash } });
      if (!key || !isLive(key, now)) return { access: null, until: now.getTime() + CREDENTIAL_TTL_MS };
      this.touch(key.id, key.lastUsedAt, now);
      return { access: accessOf(key), until: this.until(now, key.expiresAt) };
    });
  }

  /**
   * What an `Authorization: Bearer <key>` value allows: null for none, another scheme, or a wrong,
   * revoked or expired key. The one reading of a bearer header (HTTP /graphql, the gateway, and
   * graphql-ws connection_init, where any JSON may come: only a string counts).
   */
  bearer(header: unknown): Promise<Access | null> {
    const cacheKey = this.headerKey(header);
    return cacheKey ? this.keyByCacheKey(cacheKey) : Promise.resolve(null);
  }

  /**
   * bearer()'s answer when it needs neither the database nor a wait: the cached access of a key whose
   * answer still counts, null for a header that holds no key; undefined when bearer() must be asked.
   */
  bearerNow(header: unknown): Access | null | undefined {
    const cacheKey = this.headerKey(header);
    if (!cacheKey) return null;
    const hit = this.cache.get(cacheKey);
    return hit && hit.until > this.clock.now() ? hit.access : undefined;
  }

  private headerKey(header: unknown): string | null {
    if (typeof header !== "string") return null;
    let cacheKey = this.headerKeys.get(header);
    if (cacheKey === undefined) {
      const secret = bearerSecret(header);
      cacheKey = secret ? `k:${secretHash(secret)}` : null;
      if (this.headerKeys.size >= MAX_ENTRIES) this.headerKeys.clear();
      this.headerKeys.set(header, cacheKey);
    }
    return cacheKey;
  }

  /** A browser session's access (its key's), or null once it has ended. */
  session(token: string): Promise<Access | null> {
    return this.cached(`s:${secretHash(token)}`, async (hash, now) => {
      const session = await this.prisma.session.findUnique({
        where: { tokenHash: hash },
        include: { apiKey: true },
      });
      if (!session || session.endedAt !== null || session.expiresAt <= now || !isLive(session.apiKey, now)) {
        return { access: null, until: now.getTime() + CREDENTIAL_TTL_MS };
      }
      this.touch(session.apiKey.id, session.apiKey.lastUsedAt, now);
      const ends = session.apiKey.expiresAt && session.apiKey.expiresAt < session.expiresAt;
      return {
        access: accessOf(session.apiKey),
        until: this.until(now, ends ? session.apiKey.expiresAt : session.expiresAt),
      };
    });
  }

  /** Forgets a credential at once (sign-out on this member). */
  forgetSession(token: string): void {
    this.cache.delete(`s:${secretHash(token)}`);
  }

  private until(now: Date, expiresAt: Date | null): number {
    const ttl = now.getTime() + CREDENTIAL_TTL_MS;
    return expiresAt ? Math.min(ttl, expiresAt.getTime()) : ttl;
  }

  private async cached(
    cacheKey: string,
    load: (hash: string, now: Date) => Promise<Entry>,
  ): Promise<Access | null> {
    const now = this.clock.now();
    const hit = this.cache.get(cacheKey);
    if (hit && hit.until > now) return hit.access;
    let entry: Entry;
    try {
      entry = await load(cacheKey.slice(2), new Date(now));
    } catch (error) {
      // The database is away: a credential seen before keeps its last answer until it is back, so that
      // running deployments go on serving (API.md section 10). One never seen has no answer to give.
      if (hit && isDatabaseUnavailable(error)) return hit.access;
      throw error;
    }
    if (this.cache.size >= MAX_ENTRIES) {
      this.cache.clear();
      this.headerKeys.clear();
    }
    this.cache.set(cacheKey, entry);
    return entry.access;
  }

  private touch(keyId: string, lastUsedAt: Date | null, now: Date): void {
    const written = Math.max(this.lastUsedWritten.get(keyId) ?? 0, lastUsedAt?.getTime() ?? 0);
    if (now.getTime() - written < LAST_USED_EVERY_MS) return;
    this.lastUsedWritten.set(keyId, now.getTime());
    // Off the request's path: a slow write must not slow the request it was seen on.
    this.prisma.apiKey
      .update({ where: { id: keyId }, data: { lastUsedAt: now } })
      .catch((error: unknown) => this.log.warn({ err: error, keyId }, "recording lastUsedAt failed"));
  }
}

/** The secret of an `Authorization: Bearer <key>` value, or null. */
function bearerSecret(header: string): string | null {
  const match = /^Bearer +(\S+)\s*$/i.exec(header);
  return match?.[1] ?? null;
}

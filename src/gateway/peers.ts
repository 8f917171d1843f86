import { createHash, timingSafeEqual } from "node:crypto";
import type { Pool } from "undici";
import type { Clock } from "../domain/clock.ts";
import type { ChangeBus } from "../events/bus.ts";
import type { PrismaClient } from "../generated/prisma/client.ts";
import { type PeerReplicas, readyElsewhere } from "../store/members.ts";
import { peerPool } from "./peer-pool.ts";

/**
 * How one member's gateway hands a request to another member's replicas (API.md section 10). The
 * member that received the request has already checked its key, resolved its path and chosen the
 * deployment (a canary's split included); the member that runs the replicas only checks that the
 * caller is a member (the secret every member reads from the database), serves the request with a
 * replica of its own, and never forwards it again.
 */
export const PEER_PATH_PREFIX = "/internal/v1/deployments/";
export const MEMBER_SECRET_HEADER = "x-hangar-member-secret";
/** On a 503: the member has no ready replica of the deployment (any more); ask another. */
export const PEER_MISS_HEADER = "x-hangar-peer-miss";

/** The path another member's replica of `deploymentId` is called at. */
export function peerPredictPath(deploymentId: string): string {
  return `${PEER_PATH_PREFIX}${encodeURIComponent(deploymentId)}/predict`;
}

/** The deployment a forwarded request names, or null for any other path. */
export function parsePeerPath(pathname: string): string | null {
  if (!pathname.startsWith(PEER_PATH_PREFIX) || !pathname.endsWith("/predict")) return null;
  const segment = pathname.slice(PEER_PATH_PREFIX.length, -"/predict".length);
  if (!segment || segment.includes("/")) return null;
  try {
    return decodeURIComponent(segment);
  } catch {
    return null;
  }
}

/** Checks a presented member secret in constant time (digests, so lengths never leak either). */
export class MemberSecret {
  private readonly digest: Buffer;
  /** The secret as a set's one member: admits() finds it by the string's hash, before any digest. */
  private readonly known: Set<string>;

  constructor(readonly value: string) {
    this.digest = createHash("sha256").update(value).digest();
    this.known = new Set([value]);
  }

  /**
   * The right secret is found by a hash-table lookup (a SHA-256 per handed-over request saved): it
   * compares characters only with a string of the same hash, so a wrong guess learns nothing of the
   * secret from its time; every other value is checked against the digest, as before.
   */
  admits(presented: string | string[] | undefined): boolean {
    if (typeof presented !== "string" || presented.length === 0) return false;
    if (this.known.has(presented)) return true;
    return timingSafeEqual(createHash("sha256").update(presented).digest(), this.digest);
  }
}

/** The way to another member's ready replicas of one deployment, as the gateway picks among routes. */
export class PeerRoute {
  inFlight = 0;
  ready: number;
  readonly predictPath: string;
  /** The members' secret, sent as MEMBER_SECRET_HEADER. */
  readonly secret: string;

  constructor(
    readonly memberId: string,
    readonly memberName: string,
    readonly pool: Pool,
    deploymentId: string,
    ready: number,
    secret: MemberSecret,
  ) {
    this.ready = ready;
    this.predictPath = peerPredictPath(deploymentId);
    this.secret = secret.value;
  }
}

/** A member that refused a connection stays out of rotation this long (its replica rows may lag). */
export const PEER_DOWN_MS = 10_000;
/** A cached answer is asked again after this long even without a change notice (a notice can be lost). */
const DIRECTORY_TTL_MS = 5_000;
/**
 * Between active probes (`GET /healthz`) of the members requests are handed to: a member that hangs
 * (its event loop blocked, its process stopped, its network gone quiet) refuses nothing, so only a
 * probe sees it before its heartbeat expires.
 */
export const PROBE_INTERVAL_MS = 2_000;
/** A healthy member answers /healthz from its listener at once; a second is a hang. */
export const PROBE_TIMEOUT_MS = 1_000;

interface Entry {
  at: number;
  routes: Promise<PeerRoute[]>;
  /** The routes once loaded (for routesNow). */
  loaded?: PeerRoute[];
}

/**
 * Which other members run ready replicas of a deployment, from the replica registry in the database,
 * cached per deployment until a replica change of it is announced. One keep-alive pool per member.
 */
export class PeerDirectory {
  private readonly entries = new Map<string, Entry>();
  /** Per member and deployment: one route object, so its in-flight count outlives cache refreshes. */
  private readonly known = new Map<string, PeerRoute>();
  private readonly pools = new Map<string, Pool>();
  private readonly downUntil = new Map<string, number>();
  /** Members whose probe is under way (one at a time each). */
  private readonly probing = new Set<string>();
  private unsubscribe: (() => void) | null = null;
  private probeTimer: NodeJS.Timeout | null = null;

  constructor(
    private readonly prisma: PrismaClient,
    private readonly selfId: string,
    private readonly secret: MemberSecret,
    private readonly clock: Clock,
    private readonly probeIntervalMs = PROBE_INTERVAL_MS,
  ) {}

  start(bus: ChangeBus): void {
    this.unsubscribe = bus.on((change) => {
      if (change.kind === "resync") this.entries.clear();
      else if (change.kind === "deployment") this.forget(change.deploymentId);
      else if (change.kind === "event" && change.deploymentId) this.forget(change.deploymentId);
    });
    this.probeTimer = setInterval(() => void this.probe(), this.probeIntervalMs);
    this.probeTimer.unref();
  }

  /**
   * Probes each member that routes point at: one that does not answer /healthz with 200 in time goes
   * out of rotation, one that answers comes back (a refused connection may have been a restart).
   */
  async probe(): Promise<void> {
    const members = new Map<string, Pool>();
    for (const route of this.known.values()) members.set(route.memberId, route.pool);
    await Promise.all(
      [...members].map(async ([memberId, pool]) => {
        if (this.probing.has(memberId)) return;
        this.probing.add(memberId);
        try {
          const answer = await pool.request({
            method: "GET",
            path: "/healthz",
            headersTimeout: PROBE_TIMEOUT_MS,
            bodyTimeout: PROBE_TIMEOUT_MS,
          });
          await answer.body.dump();
          if (answer.statusCode === 200) this.downUntil.delete(memberId);
          else this.markDown(memberId);
        } catch {
          this.markDown(memberId);
        } finally {
          this.probing.delete(memberId);
        }
      }),
    );
  }

  async close(): Promise<void> {
    if (this.probeTimer) clearInterval(this.probeTimer);
    this.unsubscribe?.();
    this.entries.clear();
    await Promise.all([...this.pools.values()].map((pool) => pool.destroy()));
    this.pools.clear();
  }

  /** The routes to other members' ready replicas of the deployment, members out of rotation left out. */
  async routes(deploymentId: string): Promise<PeerRoute[]> {
    const now = this.clock.now();
    let entry = this.entries.get(deploymentId);
    if (!entry || now - entry.at > DIRECTORY_TTL_MS) {
      const loading = this.load(deploymentId);
      entry = { at: now, routes: loading };
      this.entries.set(deploymentId, entry);
      // A failed lookup is not kept: the next request asks again.
      const kept = entry;
      loading.then(
        (routes) => {
          kept.loaded = routes;
        },
        () => {
          if (this.entries.get(deploymentId) === kept) this.entries.delete(deploymentId);
        },
      );
    }
    return this.inRotation(await entry.routes, now);
  }

  /**
   * routes() when its answer is cached and fresh, without waiting (undefined when it would have to
   * look the deployment up). The array is shared: not to be changed.
   */
  routesNow(deploymentId: string): PeerRoute[] | undefined {
    const entry = this.entries.get(deploymentId);
    const now = this.clock.now();
    if (!entry?.loaded || now - entry.at > DIRECTORY_TTL_MS) return undefined;
    return this.inRotation(entry.loaded, now);
  }

  private inRotation(routes: PeerRoute[], now: number): PeerRoute[] {
    if (this.downUntil.size === 0) return routes;
    return routes.filter((route) => (this.downUntil.get(route.memberId) ?? 0) <= now);
  }

  /** Drops what is cached for the deployment: the next request looks it up again. */
  forget(deploymentId: string): void {
    this.entries.delete(deploymentId);
  }

  /** Takes a member out of rotation for a while: it did not answer. */
  markDown(memberId: string): void {
    this.downUntil.set(memberId, this.clock.now() + PEER_DOWN_MS);
  }

  private async load(deploymentId: string): Promise<PeerRoute[]> {
    const found = await readyElsewhere(this.prisma, deploymentId, this.selfId);
    const routes = found.map((peer) => this.route(deploymentId, peer));
    // Routes of members that no longer run it are dropped with the lookup that no longer finds them.
    for (const [key, route] of this.known) {
      if (key.endsWith(`/${deploymentId}`) && !routes.includes(route)) this.known.delete(key);
    }
    return routes;
  }

  private route(deploymentId: string, peer: PeerReplicas): PeerRoute {
    const key = `${peer.memberId}/${deploymentId}`;
    let route = this.known.get(key);
    if (route) {
      route.ready = peer.ready;
      return route;
    }
    route = new PeerRoute(
      peer.memberId,
      peer.name,
      this.pool(peer.url),
      deploymentId,
      peer.ready,
      this.secret,
    );
    this.known.set(key, route);
    return route;
  }

  private pool(url: string): Pool {
    const origin = new URL(url).origin;
    let pool = this.pools.get(origin);
    if (!pool) {
      pool = peerPool(origin);
      this.pools.set(origin, pool);
    }
    return pool;
  }
}

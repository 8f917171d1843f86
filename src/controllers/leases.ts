import { hostname } from "node:os";

/**
 * Leases on rows a controller works on (deployments, promotions): the one
 * Hangar process holding a row's lease acts on it. A lease is held for as
 * long as its owner is alive (store/members.ts, by the database's clock); the
 * lease of a gone owner may be taken over (controllers/membership.ts says who
 * is gone). The expiry written with it says when it was last renewed.
 */
export const LEASE_MS = 30_000;

/**
 * A Hangar process's start id as the owner of leases and of the replicas it runs (the Member row's id;
 * its member name is another setting): host, PID and the time it started, so that a restarted Hangar is
 * another owner. `host:pid` is how the deployment controller tells that an owner on this host is gone.
 */
export function leaseOwnerName(startedAt: number): string {
  return `${hostname()}:${process.pid}:${startedAt.toString(36)}`;
}

/** Who holds leases, as the controllers need it (controllers/membership.ts; soleHolder in tests). */
export interface LeaseHolder {
  /** The owner its leases are written with. */
  readonly id: string;
  /** Whether it may act now: take or renew leases, start or stop replicas, move promotions. */
  canAct(): boolean;
  /** Which of `owners` are gone, so that their leases may be taken. */
  gone(owners: Iterable<string>): Promise<Set<string>>;
}

/** The only process on its database (the embedded one, a unit test): every other owner is gone. */
export function soleHolder(id: string): LeaseHolder {
  return {
    id,
    canAct: () => true,
    gone: async (owners) => new Set([...owners].filter((owner) => owner !== id)),
  };
}

/** Rows `owner` may claim now: unclaimed, its own, or held by an owner that is gone. */
export function claimable(owner: string, gone: ReadonlySet<string>) {
  return { OR: [{ leaseOwner: null }, { leaseOwner: owner }, { leaseOwner: { in: [...gone] } }] };
}

/** The same rule as claimable(), for a row already read: whether `owner` may claim it now. */
export function mayClaim(leaseOwner: string | null, owner: string, gone: ReadonlySet<string>): boolean {
  return leaseOwner === null || leaseOwner === owner || gone.has(leaseOwner);
}

/** The lease columns of a row claimed (or renewed) by `owner` at `now`. */
export function leasedTo(owner: string, now: Date) {
  return { leaseOwner: owner, leaseExpiresAt: new Date(now.getTime() + LEASE_MS) };
}

/**
 * Whether `owner` holds the row's lease with more than half of it left: a move
 * then needs no renewal first (the controllers' ticks renew it long before it
 * lapses), which spares a write per move of a busy row.
 */
export function holdsFreshLease(
  row: { leaseOwner: string | null; leaseExpiresAt: Date | null },
  owner: string,
  now: Date,
): boolean {
  return (
    row.leaseOwner === owner &&
    row.leaseExpiresAt !== null &&
    row.leaseExpiresAt.getTime() - now.getTime() > LEASE_MS / 2
  );
}

/** The lease columns of a released row. */
export const RELEASED = { leaseOwner: null, leaseExpiresAt: null };

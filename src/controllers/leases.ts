import { hostname } from "node:os";

/**
 * Leases on rows a controller works on (deployments, promotions): the one
 * Hangar process holding a row's lease acts on it; a lease that is not
 * renewed lapses, and another process may take it over.
 */
export const LEASE_MS = 30_000;

/**
 * A Hangar process's name as the owner of leases and of the replicas it runs (its member name,
 * serverInfo's `member`): host, PID and the time it started, so that a restarted Hangar is another
 * owner. `host:pid` is how the deployment controller tells that an owner on this host is gone.
 */
export function leaseOwnerName(startedAt: number): string {
  return `${hostname()}:${process.pid}:${startedAt.toString(36)}`;
}

/** Rows `owner` may claim now: unclaimed, its own, or with a lapsed lease. */
export function claimable(owner: string, now: Date) {
  return { OR: [{ leaseOwner: null }, { leaseOwner: owner }, { leaseExpiresAt: { lt: now } }] };
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

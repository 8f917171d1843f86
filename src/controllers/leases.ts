/**
 * Leases on rows a controller works on (deployments, promotions): the one
 * Hangar process holding a row's lease acts on it; a lease that is not
 * renewed lapses, and another process may take it over.
 */
export const LEASE_MS = 30_000;

/** Rows `owner` may claim now: unclaimed, its own, or with a lapsed lease. */
export function claimable(owner: string, now: Date) {
  return { OR: [{ leaseOwner: null }, { leaseOwner: owner }, { leaseExpiresAt: { lt: now } }] };
}

/** The lease columns of a row claimed (or renewed) by `owner` at `now`. */
export function leasedTo(owner: string, now: Date) {
  return { leaseOwner: owner, leaseExpiresAt: new Date(now.getTime() + LEASE_MS) };
}

/** The lease columns of a released row. */
export const RELEASED = { leaseOwner: null, leaseExpiresAt: null };

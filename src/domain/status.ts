/**
 * Deployment statuses (API.md section 6) and the named groups every rule
 * reads them through: each group is defined here once. Which status follows
 * which is domain/deployment-lifecycle.ts's transition table.
 *
 * UPDATING is in the public enum, but nothing in API.md enters it (a live
 * reload keeps the deployment ACTIVE, a re-push rebuilds it): no transition
 * leads there, so no group holds it.
 */
export const DEPLOYMENT_STATUSES = [
  "BUILDING",
  "DEPLOYING",
  "LOADING_MODEL",
  "ACTIVE",
  "UPDATING",
  "SCALED_TO_ZERO",
  "WAKING_UP",
  "DEACTIVATING",
  "INACTIVE",
  "BUILD_FAILED",
  "DEPLOY_FAILED",
  "UNHEALTHY",
  "FAILED",
  "DELETED",
] as const;

export type DeploymentStatus = (typeof DEPLOYMENT_STATUSES)[number];

const group = (...statuses: DeploymentStatus[]): ReadonlySet<DeploymentStatus> => new Set(statuses);

/** Replicas are starting and none is ready yet: a ready one makes the deployment ACTIVE. */
export const AWAITING_REPLICA_STATUSES = group("DEPLOYING", "LOADING_MODEL", "WAKING_UP");

/** Still on the way up: the gateway holds requests rather than failing them. */
export const STARTING_STATUSES = group("BUILDING", ...AWAITING_REPLICA_STATUSES);

/** Serving: at least one replica is ready. */
export const READY_STATUSES = group("ACTIVE");

/** Statuses in which replicas should be running or coming up. */
export const RUNNING_STATUSES = group(...STARTING_STATUSES, ...READY_STATUSES);

/** Running or scaled to zero: a controller runs these, and a request to one is held and served. */
export const SERVABLE_STATUSES = group(...RUNNING_STATUSES, "SCALED_TO_ZERO");

/** Deactivated (or on the way there): its endpoints answer 404 deployment_inactive. */
export const INACTIVE_STATUSES = group("DEACTIVATING", "INACTIVE");

/**
 * Halted: no replica should run (deactivated, or given up on). activateDeployment
 * brings these back, and they cannot be promoted until it has (DEPLOYMENT_NOT_ACTIVE).
 */
export const HALTED_STATUSES = group(
  ...INACTIVE_STATUSES,
  "BUILD_FAILED",
  "DEPLOY_FAILED",
  "UNHEALTHY",
  "FAILED",
);

/** Statuses in which a deployment's replicas must be stopped. */
export const STOPPED_STATUSES = group(...HALTED_STATUSES, "DELETED");

/** A promoted deployment in one of these will not come up: the promotion fails. */
export const BROKEN_STATUSES = STOPPED_STATUSES;

/** Statuses deactivateDeployment applies to (anything running or able to run). */
export function canDeactivate(status: DeploymentStatus): boolean {
  return SERVABLE_STATUSES.has(status);
}

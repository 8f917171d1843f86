/**
 * Deployment statuses (API.md section 6) and the named groups every rule
 * reads them through: each group is defined here once.
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

/** Statuses in which replicas should be running or coming up. */
export const RUNNING_STATUSES = group(
  "BUILDING",
  "DEPLOYING",
  "LOADING_MODEL",
  "ACTIVE",
  "UPDATING",
  "WAKING_UP",
);

/** Still on the way up: the gateway holds requests rather than failing them. */
export const STARTING_STATUSES = group("BUILDING", "DEPLOYING", "LOADING_MODEL", "WAKING_UP");

/** Serving: at least one replica is ready. */
export const READY_STATUSES = group("ACTIVE", "UPDATING");

/**
 * Halted: no replica should run (deactivated, or given up on). activateDeployment
 * brings these back, and they cannot be promoted until it has (DEPLOYMENT_NOT_ACTIVE).
 */
export const HALTED_STATUSES = group(
  "INACTIVE",
  "DEACTIVATING",
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
  return RUNNING_STATUSES.has(status) || status === "SCALED_TO_ZERO";
}

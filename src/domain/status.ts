import type { DeploymentStatus } from "../generated/prisma/enums.ts";

export type { DeploymentStatus };

/** Statuses in which replicas should be running or coming up. */
export const RUNNING_STATUSES: ReadonlySet<DeploymentStatus> = new Set<DeploymentStatus>([
  "BUILDING",
  "DEPLOYING",
  "LOADING_MODEL",
  "ACTIVE",
  "UPDATING",
  "WAKING_UP",
]);

/** Still on the way up: the gateway holds requests rather than failing them. */
export const STARTING_STATUSES: ReadonlySet<DeploymentStatus> = new Set<DeploymentStatus>([
  "BUILDING",
  "DEPLOYING",
  "LOADING_MODEL",
  "WAKING_UP",
]);

/**
 * Halted: no replica should run (deactivated, or given up on). activateDeployment
 * brings these back, and they cannot be promoted until it has (DEPLOYMENT_NOT_ACTIVE).
 */
export const HALTED_STATUSES: ReadonlySet<DeploymentStatus> = new Set<DeploymentStatus>([
  "INACTIVE",
  "DEACTIVATING",
  "BUILD_FAILED",
  "DEPLOY_FAILED",
  "UNHEALTHY",
  "FAILED",
]);

/** Statuses deactivateDeployment applies to (anything running or able to run). */
export function canDeactivate(status: DeploymentStatus): boolean {
  return RUNNING_STATUSES.has(status) || status === "SCALED_TO_ZERO";
}

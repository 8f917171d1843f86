/**
 * Who may do what (API.md section 7): the one permission matrix. GraphQL (the
 * scope-auth plugin and the services), the gateway and uploads all ask here,
 * so a rule cannot hold on one path and not on another.
 */

export const API_KEY_ROLES = ["ADMIN", "DEPLOYER", "VIEWER", "INFERENCE"] as const;
export type ApiKeyRole = (typeof API_KEY_ROLES)[number];

/** The pattern of a key's secret. */
export const API_KEY_PATTERN = /^hk_[A-Za-z0-9_-]{32,}$/;

/** What a request's key (or the key behind a browser session) allows. */
export interface Access {
  keyId: string;
  /** The key's name: what ModelEvent.actor records. */
  name: string;
  role: ApiKeyRole;
  /** null: every model, including ones created later. */
  modelIds: readonly string[] | null;
  /** null: every environment; else only these names may be acted on. */
  environments: readonly string[] | null;
}

/** Kinds of GraphQL operation, for the role part of the matrix. */
export type Operation =
  /** `viewer`, `serverInfo`, `__typename`, introspection. */
  | "identify"
  /** Queries and subscriptions on models and everything under them. */
  | "read"
  /** Mutations on models, deployments, environments, promotions. */
  | "write"
  /** apiKeys, createApiKey, revokeApiKey. */
  | "manageKeys";

const ROLE_OPERATIONS: Record<ApiKeyRole, ReadonlySet<Operation>> = {
  ADMIN: new Set(["identify", "read", "write", "manageKeys"]),
  DEPLOYER: new Set(["identify", "read", "write"]),
  VIEWER: new Set(["identify", "read"]),
  INFERENCE: new Set(["identify"]),
};

export function allows(access: Access, operation: Operation): boolean {
  return ROLE_OPERATIONS[access.role].has(operation);
}

/** A model outside the key's scope does not exist for it. */
export function seesModel(access: Access, modelId: string): boolean {
  return access.modelIds === null || access.modelIds.includes(modelId);
}

/** A key limited to models or environments may not create or delete models and environments. */
export function isUnrestricted(access: Access): boolean {
  return access.modelIds === null && access.environments === null;
}

/** Promote into, push into, control or update the environment of that name. */
export function mayActInEnvironment(access: Access, environmentName: string): boolean {
  return access.environments === null || access.environments.includes(environmentName);
}

/**
 * Activate, deactivate, delete or change the autoscaling of a deployment:
 * allowed only when every environment it serves or is being promoted into is
 * the key's to act on.
 */
export function mayActOnDeployment(access: Access, environmentNames: readonly string[]): boolean {
  return environmentNames.every((name) => mayActInEnvironment(access, name));
}

/** What a gateway path names (API.md section 3). */
export type GatewayTarget =
  | { kind: "environment"; name: string }
  | { kind: "deployment" }
  | { kind: "development" };

export type GatewayDecision = "allow" | "model_does_not_exist" | "forbidden";

/** The gateway part of the matrix: which inference paths a key may call. */
export function gatewayDecision(access: Access, modelId: string, target: GatewayTarget): GatewayDecision {
  if (!seesModel(access, modelId)) return "model_does_not_exist";
  if (access.role === "VIEWER") return "forbidden";
  if (access.role === "INFERENCE" && access.environments !== null) {
    // The model-level path is production's (parsePath names it so).
    if (target.kind !== "environment" || !access.environments.includes(target.name)) return "forbidden";
  }
  return "allow";
}

/**
 * Two keys whose subscriptions may share one execution: they see and may do
 * exactly the same things. Key identity is left out on purpose, so that many
 * clients of one role share; revoking a key closes its sockets anyway.
 */
export function accessFingerprint(access: Access): string {
  const sorted = (list: readonly string[] | null) => (list === null ? null : [...list].sort());
  return JSON.stringify([access.role, sorted(access.modelIds), sorted(access.environments)]);
}

/** The words of every refusal, so that GraphQL, the services and the gateway say it alike. */
export function refusalMessage(access: Access, what: string): string {
  return `the API key '${access.name}' (${access.role}) may not ${what}`;
}

/** Why a sign-in form refuses a key of this role (INFERENCE keys only call models). */
export function maySignIn(access: Access): boolean {
  return access.role !== "INFERENCE";
}

/**
 * `GET /metrics` (API.md section 11): a key that may read, over every model (the figures name every
 * model's deployments, so a key limited to some would learn of the others).
 */
export function mayReadMetrics(access: Access): boolean {
  return allows(access, "read") && access.modelIds === null;
}

/**
 * Webhooks (API.md section 11): ADMIN; DEPLOYER for models it sees, and a webhook for every model
 * (`modelId` null) only with a key limited to no models, since it would send the others' events.
 * VIEWER and INFERENCE keys neither list nor manage them: a webhook's URL often holds a token.
 */
export function mayManageWebhook(access: Access, modelId: string | null): boolean {
  if (!allows(access, "write")) return false;
  return modelId === null ? access.modelIds === null : seesModel(access, modelId);
}

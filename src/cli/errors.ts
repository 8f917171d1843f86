import type { ErrorCode } from "../domain/error-codes.ts";

/** Errors the `hangar` command reports: a message for the user and the exit code (API.md section 4). */

/** A failed operation (exit 1) or, through UsageError, a usage error (exit 2). */
export class CliError extends Error {
  constructor(
    message: string,
    readonly exitCode: 1 | 2 = 1,
  ) {
    super(message);
    this.name = "CliError";
  }
}

/** The command line itself is wrong (conflicting flags, bad JSON, nothing to act on): exit 2. */
export class UsageError extends CliError {
  constructor(message: string) {
    super(message, 2);
    this.name = "UsageError";
  }
}

/** The gateway's error_codes (API.md section 3). */
export const GATEWAY_ERROR_CODES = [
  "model_does_not_exist",
  "environment_does_not_exist",
  "deployment_does_not_exist",
  "deployment_inactive",
  "no_deployment",
  "model_unavailable",
  "timeout",
  "application_error",
  "client_error",
  "payload_too_large",
  "unauthorized",
  "forbidden",
] as const;

/** The `extensions.code`s of GraphQL errors (not mutation results) that the CLI explains (sections 7, 8). */
export const GRAPHQL_ERROR_CODES = ["FORBIDDEN", "QUERY_TOO_COMPLEX"] as const;

const PERMISSION_HINT =
  "use a key whose role and scope (models, environments) allow it: --api-key, HANGAR_API_KEY or " +
  "`hangar login`; an ADMIN key can create one with `hangar keys create`";

/**
 * What to do about each mutation ErrorCode (API.md section 5), gateway error_code (section 3) and
 * GraphQL error extension code.
 */
const HINTS: Record<
  ErrorCode | (typeof GATEWAY_ERROR_CODES)[number] | (typeof GRAPHQL_ERROR_CODES)[number],
  string
> = {
  // GraphQL mutation errors
  NOT_FOUND:
    "check the name or ID: `hangar models`, `hangar deployments MODEL` and `hangar environments MODEL` list them",
  INVALID_INPUT: "fix the value and try again",
  NAME_TAKEN: "choose another name",
  RESERVED_NAME: "`production` is reserved for environments and `development` for the development deployment",
  PRODUCTION_ENVIRONMENT_PROTECTED: "the production environment cannot be deleted",
  DEPLOYMENT_IN_USE: "promote another deployment first, or wait for the promotion to end",
  DEPLOYMENT_NOT_ACTIVE: "activate it first: `hangar activate DEPLOYMENT`",
  PROMOTION_IN_PROGRESS:
    "wait for it to end, or stop it with `hangar cancel ENVIRONMENT --model MODEL`; `hangar environments MODEL` shows it",
  NO_PROMOTION_IN_PROGRESS: "`hangar environments MODEL` shows each environment's promotion in progress",
  INVALID_STATE:
    "not possible in its current state; `hangar environments MODEL` and `hangar deployments MODEL` show states",
  // Gateway errors
  model_does_not_exist: "check the model name or ID; `hangar models` lists them",
  environment_does_not_exist: "check the environment name; `hangar environments MODEL` lists them",
  deployment_does_not_exist: "check the deployment ID; `hangar deployments MODEL` lists them",
  deployment_inactive: "the deployment is deactivated: `hangar activate DEPLOYMENT` brings it back",
  no_deployment:
    "nothing serves there yet: promote a deployment into it (`hangar promote DEPLOYMENT`), or push one with --development for the development path",
  model_unavailable: "the model could not start or was not ready in time: see `hangar logs DEPLOYMENT`",
  timeout: "the model took too long to answer (the server's HANGAR_PREDICT_TIMEOUT)",
  application_error: "the model's predict() failed: see `hangar logs DEPLOYMENT`",
  client_error: "the request body must be JSON",
  payload_too_large: "the request body is larger than the server accepts (HANGAR_MAX_REQUEST_BYTES)",
  unauthorized:
    "the server refused the API key: check --api-key or HANGAR_API_KEY, or run `hangar login` again",
  forbidden: PERMISSION_HINT,
  // GraphQL errors
  FORBIDDEN: PERMISSION_HINT,
  QUERY_TOO_COMPLEX:
    "the request is over one of the server's GraphQL limits (HANGAR_GRAPHQL_MAX_DEPTH, _TOKENS, _ALIASES, _COST)",
};

/**
 * The error for a mutation's `Error { code message }`, a gateway's `{ error, error_code }` or a GraphQL
 * error's `extensions.code`. `hints` replaces the general hint where a command knows better (the
 * INVALID_STATE of revoking a key is not about environments).
 */
export function errorForCode(
  code: string,
  message: string,
  hints: Partial<Record<string, string>> = {},
): CliError {
  const hint = hints[code] ?? (HINTS as Record<string, string>)[code];
  const text = `${message || code.replaceAll("_", " ").toLowerCase()} [${code}]`;
  return new CliError(hint ? `${text}\n  hint: ${hint}` : text);
}

/** Whether the CLI knows what to do about an error code. */
export function hasHint(code: string): boolean {
  return Object.hasOwn(HINTS, code);
}

/** The key that made a request, as the API's `viewer` names it. */
export interface KeyIdentity {
  name: string;
  role: string;
}

/** A valid key that may not do what was asked (so that a command can tell it from other failures). */
export class ForbiddenError extends CliError {
  constructor(message: string) {
    super(message, 1);
    this.name = "ForbiddenError";
  }
}

/**
 * A permission refusal (GraphQL FORBIDDEN or the gateway's 403 `forbidden`): a valid key that may not
 * do this, which is not the same as a wrong key, so the message names the key and its role.
 */
export function forbiddenError(key: KeyIdentity | null, message: string, code = "FORBIDDEN"): ForbiddenError {
  const who = key ? `the API key '${key.name}' (${key.role})` : "the API key";
  return new ForbiddenError(
    `${who} may not do this: ${message || "forbidden"} [${code}]\n  hint: ${PERMISSION_HINT}`,
  );
}

/** Writes `hangar: <message>` to stderr and returns the exit code an error stands for. */
export function reportError(error: unknown): 1 | 2 {
  if (error instanceof CliError) {
    process.stderr.write(`hangar: ${error.message}\n`);
    return error.exitCode;
  }
  const message = error instanceof Error ? (error.stack ?? error.message) : String(error);
  process.stderr.write(`hangar: unexpected error: ${message}\n`);
  return 1;
}

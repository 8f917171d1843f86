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
] as const;

/** What to do about each GraphQL ErrorCode (API.md section 5) and gateway error_code (section 3). */
const HINTS: Record<ErrorCode | (typeof GATEWAY_ERROR_CODES)[number], string> = {
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
};

/** The error for a mutation's `Error { code message }` or a gateway's `{ error, error_code }`. */
export function errorForCode(code: string, message: string): CliError {
  const hint = (HINTS as Record<string, string>)[code];
  const text = `${message || code.replaceAll("_", " ").toLowerCase()} [${code}]`;
  return new CliError(hint ? `${text}\n  hint: ${hint}` : text);
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

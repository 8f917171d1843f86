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

/** What to do about each GraphQL ErrorCode (API.md section 5) and gateway error_code (section 3). */
const HINTS: Record<string, string> = {
  // GraphQL mutation errors
  NOT_FOUND:
    "check the name or ID (`hangar models`, `hangar deployments MODEL`, `hangar environments MODEL`)",
  INVALID_INPUT: "fix the value and try again",
  NAME_TAKEN: "choose another name",
  RESERVED_NAME: "that name is reserved (`production` for environments, `development` for deployments)",
  PRODUCTION_ENVIRONMENT_PROTECTED: "the production environment cannot be deleted",
  DEPLOYMENT_IN_USE: "promote another deployment first, or wait for the promotion to end",
  DEPLOYMENT_NOT_ACTIVE: "activate it first: `hangar activate DEPLOYMENT`",
  PROMOTION_IN_PROGRESS:
    "wait for it to end, or stop it: `hangar cancel ENVIRONMENT --model MODEL` (`hangar environments MODEL` shows it)",
  NO_PROMOTION_IN_PROGRESS:
    "this environment has no active promotion (`hangar environments MODEL` shows them)",
  INVALID_STATE: "not possible in its current state (`hangar environments MODEL` shows promotions)",
  // Gateway errors
  model_does_not_exist: "check the model name or ID (`hangar models`)",
  environment_does_not_exist: "check the environment name (`hangar environments MODEL`)",
  deployment_does_not_exist: "check the deployment ID (`hangar deployments MODEL`)",
  deployment_inactive: "the deployment is deactivated: `hangar activate DEPLOYMENT` brings it back",
  no_deployment:
    "nothing serves there yet: promote a deployment into the environment (or push with --development for /development)",
  model_unavailable: "the model could not start or was not ready in time: see `hangar logs DEPLOYMENT`",
  timeout: "the model took too long to answer (the server's HANGAR_PREDICT_TIMEOUT)",
  application_error: "the model's predict() failed: see `hangar logs DEPLOYMENT`",
  client_error: "the request body must be JSON",
  payload_too_large: "the request body is larger than the server accepts (HANGAR_MAX_REQUEST_BYTES)",
  unauthorized:
    "the server refused the API key: check --api-key / HANGAR_API_KEY, or run `hangar login` again",
};

const LABELS: Record<string, string> = {
  NOT_FOUND: "not found",
  INVALID_INPUT: "invalid input",
  NAME_TAKEN: "name taken",
  RESERVED_NAME: "reserved name",
  PRODUCTION_ENVIRONMENT_PROTECTED: "production is protected",
  DEPLOYMENT_IN_USE: "deployment in use",
  DEPLOYMENT_NOT_ACTIVE: "deployment not active",
  PROMOTION_IN_PROGRESS: "a promotion is in progress",
  NO_PROMOTION_IN_PROGRESS: "no promotion in progress",
  INVALID_STATE: "invalid state",
};

/** The error for a mutation's `Error { code message }` or a gateway's `{ error, error_code }`. */
export function errorForCode(code: string, message: string): CliError {
  const label = LABELS[code] ?? code;
  const hint = HINTS[code];
  const text = message ? `${label}: ${message}` : label;
  return new CliError(hint ? `${text}\n  (${hint})` : text);
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

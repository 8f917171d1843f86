import type { ErrorCode } from "../domain/error-codes.ts";

/**
 * A refusal the user can act on. Services throw it; the GraphQL layer returns
 * it as the `UserError` member of the mutation's result union.
 */
export class UserError extends Error {
  constructor(
    readonly code: ErrorCode,
    message: string,
    readonly field: string | null = null,
  ) {
    super(message);
    this.name = "UserError";
  }
}

export function notFound(what: string, id: string, field: string | null = "id"): UserError {
  return new UserError("NOT_FOUND", `no ${what} with ID '${id}'`, field);
}

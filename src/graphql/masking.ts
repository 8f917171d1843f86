/**
 * Internal errors stay masked (API.md section 8): the client sees "Unexpected error." with an
 * `extensions.errorId`, and the server's log line for the error carries the same `errorId`, so that an
 * operator can find the cause of what a user reports.
 */
import { randomBytes } from "node:crypto";
import { GraphQLError } from "graphql";
import { maskError as yogaMaskError } from "graphql-yoga";
import { DATABASE_UNAVAILABLE_MESSAGE, isDatabaseUnavailable } from "../db/unavailable.ts";
import type { Logger } from "../logger.ts";

type MaskError = (error: unknown, message: string, isDev?: boolean) => Error;

export interface ErrorMasking {
  /** For createYoga's `maskedErrors.maskError`. */
  maskError: MaskError;
  /** Whether this error was logged already (with its id), so yoga's own log line for it can be skipped. */
  logged(error: unknown): boolean;
}

export function errorMasking(log: Pick<Logger, "error">): ErrorMasking {
  const logged = new WeakSet<object>();
  const maskError: MaskError = (error, message, isDev) => {
    const masked = yogaMaskError(error, message, isDev);
    // Errors meant for the client (GraphQLErrors thrown on purpose, validation) pass as they are.
    if (masked === error || !(masked instanceof GraphQLError)) return masked;
    const original = error instanceof GraphQLError ? (error.originalError ?? error) : error;
    if (isDatabaseUnavailable(original)) {
      // Not a defect to look up by id: the database is away (API.md section 10), and it says so.
      return new GraphQLError(DATABASE_UNAVAILABLE_MESSAGE, {
        nodes: masked.nodes,
        source: masked.source,
        positions: masked.positions,
        path: masked.path,
        extensions: { code: "DATABASE_UNAVAILABLE", http: { status: 503 } },
      });
    }
    const errorId = randomBytes(6).toString("hex");
    const cause = error instanceof GraphQLError ? (error.originalError ?? error) : error;
    log.error({ err: cause, errorId }, "GraphQL request failed");
    if (typeof error === "object" && error !== null) logged.add(error);
    return new GraphQLError(masked.message, {
      nodes: masked.nodes,
      source: masked.source,
      positions: masked.positions,
      path: masked.path,
      extensions: { ...masked.extensions, errorId },
    });
  };
  return {
    maskError,
    logged: (error) => typeof error === "object" && error !== null && logged.has(error),
  };
}

import type { ObjectRef } from "@pothos/core";
import { ERROR_CODES, type ErrorCode } from "../domain/error-codes.ts";
import { UserError } from "../domain/errors.ts";
import { Forbidden } from "../services/authorize.ts";
import { builder, forbidden } from "./builder.ts";

export const ErrorCodeEnum = builder.enumType("ErrorCode", { values: ERROR_CODES });

/**
 * What a mutation returns for a refusal. Not an Error instance: graphql-js
 * turns a returned Error into a field error, and this is data.
 */
export class UserErrorPayload {
  constructor(
    readonly code: ErrorCode,
    readonly message: string,
    readonly field: string | null,
  ) {}
}

export const ErrorInterface = builder.interfaceRef<UserErrorPayload>("Error").implement({
  fields: (t) => ({
    code: t.field({ type: ErrorCodeEnum, resolve: (e) => e.code }),
    message: t.exposeString("message"),
  }),
});

export const UserErrorType = builder.objectRef<UserErrorPayload>("UserError").implement({
  interfaces: [ErrorInterface],
  isTypeOf: (value) => value instanceof UserErrorPayload,
  fields: (t) => ({
    field: t.string({ nullable: true, resolve: (e) => e.field }),
  }),
});

/**
 * `union <Name> = <Object> | UserError`, the result type of every mutation
 * (API.md section 5).
 */
// biome-ignore lint/suspicious/noExplicitAny: the member may be any object ref.
export function resultUnion<T extends object>(name: string, member: ObjectRef<any, T>) {
  return builder.unionType(name, {
    types: [member, UserErrorType],
    resolveType: (value) => (value instanceof UserErrorPayload ? UserErrorType : member),
  });
}

/**
 * Runs a service call, turning a UserError into the union's error member and
 * a permission refusal into the FORBIDDEN GraphQL error.
 */
export async function userErrors<T>(run: () => Promise<T>): Promise<T | UserErrorPayload> {
  try {
    return await run();
  } catch (error) {
    if (error instanceof UserError) return new UserErrorPayload(error.code, error.message, error.field);
    if (error instanceof Forbidden) throw forbidden(error.message);
    throw error;
  }
}

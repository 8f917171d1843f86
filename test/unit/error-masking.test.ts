/**
 * Error masking (src/graphql/masking.ts) with a recording logger: an unexpected error reaches the
 * client as "Unexpected error." with an errorId that its one log line also has; an error meant for
 * the client passes unchanged and unlogged. (test/integration/graphql-limits.test.ts does the same
 * through a real server.)
 */
import { GraphQLError } from "graphql";
import { describe, expect, it } from "vitest";
import { errorMasking } from "../../src/graphql/masking.ts";

function recorder() {
  const lines: { fields: Record<string, unknown>; message: string }[] = [];
  const log = {
    error: (fields: Record<string, unknown>, message: string) => lines.push({ fields, message }),
  };
  return { lines, masking: errorMasking(log as never) };
}

describe("errorMasking", () => {
  it("masks an unexpected error and logs its cause with the same errorId", () => {
    const { lines, masking } = recorder();
    const cause = new Error("connection reset by the database");
    const wrapped = new GraphQLError(cause.message, { originalError: cause, path: ["model"] });
    const masked = masking.maskError(wrapped, "Unexpected error.", false) as GraphQLError;
    expect(masked).toBeInstanceOf(GraphQLError);
    expect(masked.message).toBe("Unexpected error.");
    expect(masked.path).toEqual(["model"]);
    expect(masked.extensions).toMatchObject({ code: "INTERNAL_SERVER_ERROR" });
    expect(masked.extensions.errorId).toMatch(/^[0-9a-f]{12}$/);
    expect(JSON.stringify(masked)).not.toContain("connection reset");
    expect(lines).toEqual([
      { fields: { err: cause, errorId: masked.extensions.errorId }, message: "GraphQL request failed" },
    ]);
    expect(masking.logged(wrapped)).toBe(true);
    const again = masking.maskError(new Error("other"), "Unexpected error.", false) as GraphQLError;
    expect(again.extensions.errorId).not.toBe(masked.extensions.errorId);
  });

  it("lets errors meant for the client through, unlogged", () => {
    const { lines, masking } = recorder();
    const error = new GraphQLError("give exactly one of id or name");
    expect(masking.maskError(error, "Unexpected error.", false)).toBe(error);
    expect(lines).toEqual([]);
    expect(masking.logged(error)).toBe(false);
  });
});

import { describe, expect, it } from "vitest";
import { isWriteConflict } from "../../src/store/errors.ts";

// The shapes Prisma 7 gives a deadlock: P2034 from its own queries, P2010 from a raw query (FOR UPDATE).
describe("isWriteConflict", () => {
  it("knows a deadlock or serialization failure, from Prisma's queries and from raw ones", () => {
    expect(isWriteConflict({ code: "P2034" })).toBe(true);
    const raw = (cause: object) => ({ code: "P2010", meta: { driverAdapterError: { cause } } });
    expect(isWriteConflict(raw({ kind: "TransactionWriteConflict" }))).toBe(true);
    expect(isWriteConflict(raw({ kind: "postgres", originalCode: "40P01" }))).toBe(true);
    expect(isWriteConflict(raw({ kind: "postgres", originalCode: "40001" }))).toBe(true);
  });

  it("leaves every other failure to its caller", () => {
    expect(isWriteConflict({ code: "P2002" })).toBe(false);
    expect(
      isWriteConflict({ code: "P2010", meta: { driverAdapterError: { cause: { originalCode: "42P01" } } } }),
    ).toBe(false);
    expect(isWriteConflict(new Error("deadlock detected"))).toBe(false);
    expect(isWriteConflict(null)).toBe(false);
  });
});

import { describe, expect, it } from "vitest";
import { holdsFreshLease, LEASE_MS, leasedTo } from "../../src/controllers/leases.ts";

describe("a controller's lease on a row", () => {
  const now = new Date("2026-12-02T10:00:00Z");
  const later = (ms: number) => new Date(now.getTime() + ms);

  it("needs no renewal while its owner holds it with more than half left", () => {
    const row = leasedTo("hangar-a", now);
    expect(holdsFreshLease(row, "hangar-a", now)).toBe(true);
    expect(holdsFreshLease(row, "hangar-a", later(LEASE_MS / 2 - 1))).toBe(true);
  });

  it("is renewed from half its time on, and never counts for another owner or a released row", () => {
    const row = leasedTo("hangar-a", now);
    expect(holdsFreshLease(row, "hangar-a", later(LEASE_MS / 2))).toBe(false);
    expect(holdsFreshLease(row, "hangar-a", later(LEASE_MS + 1))).toBe(false);
    expect(holdsFreshLease(row, "hangar-b", now)).toBe(false);
    expect(holdsFreshLease({ leaseOwner: null, leaseExpiresAt: null }, "hangar-a", now)).toBe(false);
  });
});

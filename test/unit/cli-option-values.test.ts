import { InvalidArgumentError } from "commander";
import { describe, expect, it } from "vitest";
import {
  choiceIgnoringCase,
  listValues,
  parseDuration,
  parseExpiry,
  parseIsoDate,
} from "../../src/cli/option-values.ts";

const NOW = new Date("2026-12-01T10:00:00.000Z");

describe("listValues", () => {
  it("collects repeated and comma-separated values in order, without repeats", () => {
    let values = listValues("a", undefined);
    values = listValues("b, c", values);
    values = listValues("a,d", values);
    expect(values).toEqual(["a", "b", "c", "d"]);
  });

  it("refuses an empty name", () => {
    expect(() => listValues("", undefined)).toThrow(InvalidArgumentError);
    expect(() => listValues("a,,b", undefined)).toThrow(/empty name/);
    expect(() => listValues("a,", ["x"])).toThrow(InvalidArgumentError);
  });
});

describe("choiceIgnoringCase", () => {
  const role = choiceIgnoringCase(["ADMIN", "VIEWER"] as const);

  it("takes a choice in any case and answers it upper-cased", () => {
    expect(role("viewer")).toBe("VIEWER");
    expect(role("Admin")).toBe("ADMIN");
  });

  it("names the choices when the value is none of them", () => {
    expect(() => role("root")).toThrow("Allowed choices are ADMIN, VIEWER.");
  });
});

describe("parseDuration", () => {
  it("reads weeks, days, hours, minutes and seconds, alone or together", () => {
    expect(parseDuration("30d")).toBe(30 * 86_400_000);
    expect(parseDuration("12h")).toBe(12 * 3_600_000);
    expect(parseDuration("90m")).toBe(90 * 60_000);
    expect(parseDuration("45s")).toBe(45_000);
    expect(parseDuration("2w")).toBe(14 * 86_400_000);
    expect(parseDuration("1d12h")).toBe(36 * 3_600_000);
  });

  it("is null for anything else", () => {
    for (const text of ["", "30", "d", "1y", "1.5d", "-1d", "30 d", "1d 12h", "2026-12-31"]) {
      expect(parseDuration(text), text).toBeNull();
    }
  });
});

describe("parseIsoDate", () => {
  it("reads a date as the start of that day in UTC", () => {
    expect(parseIsoDate("2027-01-31")?.toISOString()).toBe("2027-01-31T00:00:00.000Z");
    expect(parseIsoDate("2028-02-29")?.toISOString()).toBe("2028-02-29T00:00:00.000Z");
  });

  it("reads date-times with an offset exactly", () => {
    expect(parseIsoDate("2027-01-31T18:30:00Z")?.toISOString()).toBe("2027-01-31T18:30:00.000Z");
    expect(parseIsoDate("2027-01-31T18:30:00.250+02:00")?.toISOString()).toBe("2027-01-31T16:30:00.250Z");
    expect(parseIsoDate("2027-01-31T18:30Z")?.toISOString()).toBe("2027-01-31T18:30:00.000Z");
  });

  it("reads a date-time without an offset as local time", () => {
    expect(parseIsoDate("2027-01-31T18:30:00")?.getTime()).toBe(new Date(2027, 0, 31, 18, 30, 0).getTime());
    expect(parseIsoDate("2027-01-31 18:30")?.getTime()).toBe(new Date(2027, 0, 31, 18, 30, 0).getTime());
  });

  it("refuses impossible dates and times instead of rolling them over", () => {
    for (const text of [
      "2027-02-30",
      "2027-02-29",
      "2027-13-01",
      "2027-00-10",
      "2027-04-31",
      "2027-01-31T24:00:00Z",
      "2027-01-31T12:60:00Z",
      "2027-01-31T12:00:61Z",
    ]) {
      expect(parseIsoDate(text), text).toBeNull();
    }
  });

  it("refuses what is not ISO 8601", () => {
    for (const text of ["31/01/2027", "Jan 31 2027", "2027-1-31", "2027-01-31Z", "tomorrow", "1798761600"]) {
      expect(parseIsoDate(text), text).toBeNull();
    }
  });
});

describe("parseExpiry", () => {
  it("adds a duration to now", () => {
    expect(parseExpiry("30d", NOW).toISOString()).toBe("2026-12-31T10:00:00.000Z");
    expect(parseExpiry("12h", NOW).toISOString()).toBe("2026-12-01T22:00:00.000Z");
    expect(parseExpiry(" 1d12h ", NOW).toISOString()).toBe("2026-12-02T22:00:00.000Z");
  });

  it("takes an ISO date in the future", () => {
    expect(parseExpiry("2027-01-31", NOW).toISOString()).toBe("2027-01-31T00:00:00.000Z");
    expect(parseExpiry("2026-12-01T10:00:01Z", NOW).toISOString()).toBe("2026-12-01T10:00:01.000Z");
  });

  it("refuses now and the past, saying which time that is", () => {
    expect(() => parseExpiry("0d", NOW)).toThrow("2026-12-01T10:00:00.000Z is not in the future.");
    expect(() => parseExpiry("2026-12-01T10:00:00Z", NOW)).toThrow(/is not in the future/);
    expect(() => parseExpiry("2020-01-01", NOW)).toThrow("2020-01-01T00:00:00.000Z is not in the future.");
  });

  it("refuses what is neither, naming both forms", () => {
    for (const text of ["", "soon", "30", "30 days", "2027-02-30"]) {
      expect(() => parseExpiry(text, NOW), text).toThrow(/duration such as 30d.*ISO date such as 2027-01-31/);
    }
  });

  it("refuses a duration too long for a date", () => {
    expect(() => parseExpiry("999999999999w", NOW)).toThrow("That is too far in the future.");
  });

  it("throws what commander reports as a usage error", () => {
    expect(() => parseExpiry("soon", NOW)).toThrow(InvalidArgumentError);
  });
});

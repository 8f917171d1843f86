/**
 * Parsers of option values, for commander's argParser: each throws InvalidArgumentError, which commander
 * reports as a usage error (exit 2) naming the option. Pure, so that they are unit-tested.
 */
import { InvalidArgumentError } from "commander";

/**
 * A repeatable option whose values may also be comma-separated (`--model a --model b,c`): every value so
 * far, in order, without repeats.
 */
export function listValues(value: string, previous: string[] | undefined): string[] {
  const parts = value.split(",").map((part) => part.trim());
  if (parts.some((part) => part === "")) {
    throw new InvalidArgumentError("An empty name: give names separated by commas, or repeat the option.");
  }
  return [...new Set([...(previous ?? []), ...parts])];
}

/** An upper-case choice given in any case (`--role deployer`). */
export function choiceIgnoringCase<T extends string>(choices: readonly T[]): (value: string) => T {
  return (value) => {
    const upper = value.toUpperCase();
    const choice = choices.find((c) => c === upper);
    if (!choice) throw new InvalidArgumentError(`Allowed choices are ${choices.join(", ")}.`);
    return choice;
  };
}

const UNIT_SECONDS: Record<string, number> = { w: 604_800, d: 86_400, h: 3_600, m: 60, s: 1 };

/** `30d`, `12h`, `1d12h`, `90m`, `2w` (weeks, days, hours, minutes, seconds), in milliseconds; else null. */
export function parseDuration(text: string): number | null {
  if (!/^(\d+[wdhms])+$/.test(text)) return null;
  let seconds = 0;
  for (const [, amount, unit] of text.matchAll(/(\d+)([wdhms])/g)) {
    seconds += Number(amount) * UNIT_SECONDS[unit!]!;
  }
  return seconds * 1000;
}

const ISO_DATE =
  /^(\d{4})-(\d{2})-(\d{2})(?:[T ](\d{2}):(\d{2})(?::(\d{2})(?:\.\d{1,9})?)?(Z|[+-]\d{2}:?\d{2})?)?$/i;

/**
 * An ISO 8601 date or date-time as a Date; else null. A date alone is the start of that day in UTC (as
 * ISO 8601 and JavaScript read it); a date-time without an offset is local time. Impossible dates
 * (2026-02-30, 25:00) are refused rather than rolled over into the next month or day.
 */
export function parseIsoDate(text: string): Date | null {
  const match = ISO_DATE.exec(text);
  if (!match) return null;
  const [year, month, day, hours = 0, minutes = 0, seconds = 0] = match
    .slice(1, 7)
    .map((part) => (part === undefined ? undefined : Number(part)));
  const calendar = new Date(Date.UTC(year!, month! - 1, day!));
  if (calendar.getUTCMonth() !== month! - 1 || calendar.getUTCDate() !== day) return null;
  if (hours > 23 || minutes > 59 || seconds > 59) return null;
  const date = new Date(text.replace(" ", "T"));
  return Number.isNaN(date.getTime()) ? null : date;
}

/** `--expires`: a duration from `now` (30d, 12h) or an ISO date, which must lie in the future. */
export function parseExpiry(text: string, now: Date = new Date()): Date {
  const trimmed = text.trim();
  const duration = parseDuration(trimmed);
  const date = duration === null ? parseIsoDate(trimmed) : new Date(now.getTime() + duration);
  if (date === null) {
    throw new InvalidArgumentError(
      "Expected a duration such as 30d, 12h, 1d12h or 2w (w, d, h, m, s), or an ISO date such as 2027-01-31 " +
        "or 2027-01-31T18:00:00Z.",
    );
  }
  if (Number.isNaN(date.getTime())) throw new InvalidArgumentError("That is too far in the future.");
  if (date.getTime() <= now.getTime()) {
    throw new InvalidArgumentError(`${date.toISOString()} is not in the future.`);
  }
  return date;
}

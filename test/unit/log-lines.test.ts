import { describe, expect, it } from "vitest";
import { FakeClock } from "../../src/domain/clock.ts";
import {
  CUT_MARK,
  LineRateLimit,
  LineSplitter,
  limitLine,
  MAX_LINE_BYTES,
  ReplicaOutput,
  type Schedule,
} from "../../src/domain/log-lines.ts";

const bytes = (text: string) => Buffer.from(text, "utf8");

describe("limitLine", () => {
  it("keeps a line of up to 16 KiB as it is", () => {
    const line = "a".repeat(MAX_LINE_BYTES);
    expect(limitLine(line)).toBe(line);
    expect(limitLine("tab\tstays")).toBe("tab\tstays");
  });

  it("cuts a longer line to 16 KiB ending with [cut], never inside a character", () => {
    const cut = limitLine("a".repeat(MAX_LINE_BYTES + 1));
    expect(cut.endsWith(CUT_MARK)).toBe(true);
    expect(Buffer.byteLength(cut)).toBe(MAX_LINE_BYTES);
    // 3-byte characters: the prefix ends on a whole one, so no U+FFFD appears at the cut.
    const wide = limitLine("€".repeat(MAX_LINE_BYTES));
    expect(Buffer.byteLength(wide)).toBeLessThanOrEqual(MAX_LINE_BYTES);
    expect(wide).toMatch(/^€+\[cut\]$/);
  });

  it("replaces NUL and the other control characters but tab with U+FFFD", () => {
    expect(limitLine("a\u0000b\u0007c\u001bd\u007fe\tf\rg")).toBe("a\uFFFDb\uFFFDc\uFFFDd\uFFFDe\tf\uFFFDg");
  });

  it("changes nothing when applied again (LogWriter applies it to lines already limited)", () => {
    for (const raw of ["a".repeat(MAX_LINE_BYTES * 2), "x\u0000".repeat(9000), "plain", "€".repeat(7000)]) {
      const once = limitLine(raw);
      expect(limitLine(once)).toBe(once);
    }
  });
});

describe("LineSplitter", () => {
  it("splits on newlines across chunks, a CRLF ending included, and keeps the unfinished line", () => {
    const splitter = new LineSplitter();
    expect(splitter.push(bytes("first\nsec"))).toEqual(["first"]);
    expect(splitter.push(bytes("ond\r\nthird\n\nfou"))).toEqual(["second", "third", ""]);
    expect(splitter.push(bytes("rth"))).toEqual([]);
    expect(splitter.end()).toEqual(["fourth"]);
    expect(splitter.end()).toEqual([]);
  });

  it("joins a character split between chunks", () => {
    const splitter = new LineSplitter();
    const euro = bytes("€\n");
    expect(splitter.push(euro.subarray(0, 1))).toEqual([]);
    expect(splitter.push(euro.subarray(1))).toEqual(["€"]);
  });

  it("holds at most the cap of a long line and drops the rest until the newline", () => {
    const splitter = new LineSplitter();
    const chunk = Buffer.alloc(64 * 1024, "x");
    // A megabyte without a newline, then the end of the line and a normal one.
    for (let i = 0; i < 16; i++) expect(splitter.push(chunk)).toEqual([]);
    const [long, next] = splitter.push(bytes("tail\nnext\n"));
    expect(long).toBe(`${"x".repeat(MAX_LINE_BYTES - CUT_MARK.length)}${CUT_MARK}`);
    expect(next).toBe("next");
  });

  it("cuts a line that is over the cap by one byte, and not one that is at it", () => {
    const splitter = new LineSplitter();
    const [atCap, overCap] = splitter.push(
      bytes(`${"a".repeat(MAX_LINE_BYTES)}\n${"b".repeat(MAX_LINE_BYTES + 1)}\n`),
    );
    expect(atCap).toBe("a".repeat(MAX_LINE_BYTES));
    expect(overCap?.endsWith(`b${CUT_MARK}`)).toBe(true);
  });

  it("decodes invalid UTF-8 as U+FFFD and cleans control bytes", () => {
    const splitter = new LineSplitter();
    expect(splitter.push(Buffer.from([0x61, 0xff, 0x00, 0x62, 0x0a]))).toEqual(["a\uFFFD\uFFFDb"]);
  });
});

describe("LineRateLimit", () => {
  it("admits 200 lines a second and reports the rest once the next second starts", () => {
    const clock = new FakeClock(10_000);
    const limit = new LineRateLimit(clock);
    for (let i = 0; i < 200; i++) expect(limit.admit()).toEqual({ admitted: true, notice: null });
    for (let i = 0; i < 50; i++) expect(limit.admit()).toEqual({ admitted: false, notice: null });
    expect(limit.tick()).toBeNull();
    clock.advance(999);
    expect(limit.admit()).toEqual({ admitted: false, notice: null });
    clock.advance(1);
    expect(limit.admit()).toEqual({ admitted: true, notice: "[51 lines dropped]" });
    expect(limit.admit()).toEqual({ admitted: true, notice: null });
  });

  it("reports on tick() when output stopped, and only once", () => {
    const clock = new FakeClock(0);
    const limit = new LineRateLimit(clock, 2);
    limit.admit();
    limit.admit();
    limit.admit();
    expect(limit.msToNextSecond()).toBe(1000);
    clock.advance(1000);
    expect(limit.tick()).toBe("[1 lines dropped]");
    expect(limit.tick()).toBeNull();
    expect(limit.admit()).toEqual({ admitted: true, notice: null });
  });
});

describe("ReplicaOutput", () => {
  function harness(perSecond = 3) {
    const clock = new FakeClock(5_000);
    const lines: [string, string][] = [];
    const timers: { at: number; fn: () => void; cancelled: boolean }[] = [];
    const schedule: Schedule = (ms, fn) => {
      const timer = { at: clock.now() + ms, fn, cancelled: false };
      timers.push(timer);
      return () => {
        timer.cancelled = true;
      };
    };
    const output = new ReplicaOutput(
      clock,
      (stream, line) => lines.push([stream, line]),
      schedule,
      perSecond,
    );
    /** Moves the clock and fires the timers that are due. */
    const advance = (ms: number) => {
      clock.advance(ms);
      for (const timer of timers.splice(0)) {
        if (timer.cancelled) continue;
        if (timer.at <= clock.now()) timer.fn();
        else timers.push(timer);
      }
    };
    return { output, lines, timers, advance, clock };
  }

  it("limits both streams together and says how many lines were dropped when the second ends", () => {
    const { output, lines, timers, advance } = harness();
    output.write("stdout", bytes("1\n2\n"));
    output.write("stderr", bytes("3\n4\n"));
    output.write("stdout", bytes("5\n"));
    expect(lines).toEqual([
      ["stdout", "1"],
      ["stdout", "2"],
      ["stderr", "3"],
    ]);
    // One timer for the end of the second, however many lines are dropped.
    expect(timers.filter((t) => !t.cancelled)).toHaveLength(1);
    advance(1000);
    expect(lines.at(-1)).toEqual(["system", "[2 lines dropped]"]);
    output.write("stdout", bytes("6\n"));
    expect(lines.at(-1)).toEqual(["stdout", "6"]);
    expect(lines.filter(([, line]) => line.includes("dropped"))).toHaveLength(1);
  });

  it("waits again when its timer fires before the second has ended (a timer on a lagging loop clock)", () => {
    const { output, lines, timers, clock } = harness(1);
    output.write("stdout", bytes("a\nb\n"));
    // The loop's clock lagged the wall clock when the timer was set: it fires 3 ms early.
    const [early] = timers.splice(0);
    clock.advance(1000 - (clock.now() % 1000) - 3);
    early?.fn();
    expect(lines).toEqual([["stdout", "a"]]);
    const [again] = timers.filter((t) => !t.cancelled);
    expect(again).toBeDefined();
    clock.advance(3);
    again?.fn();
    expect(lines.at(-1)).toEqual(["system", "[1 lines dropped]"]);
  });

  it("says so before the next line when output resumes in a later second", () => {
    const { output, lines, clock } = harness(1);
    output.write("stdout", bytes("a\nb\nc\n"));
    // The timer has not fired yet (a busy event loop): the next line brings the notice with it.
    clock.advance(1000);
    output.write("stderr", bytes("d\n"));
    expect(lines).toEqual([
      ["stdout", "a"],
      ["system", "[2 lines dropped]"],
      ["stderr", "d"],
    ]);
  });

  it("reports drops and the unfinished line when the process ends", () => {
    const { output, lines, timers } = harness(1);
    output.write("stdout", bytes("a\nb\npartial"));
    output.close();
    expect(lines).toEqual([
      ["stdout", "a"],
      ["system", "[2 lines dropped]"],
    ]);
    expect(timers.every((t) => t.cancelled)).toBe(true);
  });
});
